"""What several use cases raise alike, so that callers catch one thing."""

from __future__ import annotations


class CampaignNotFound(LookupError):
    """No campaign has this slug."""
