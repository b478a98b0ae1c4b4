"""What every template of a campaign may print about the campaign itself."""

from __future__ import annotations

from markupsafe import Markup

from engine.models import Campaign
from engine.video import VIDEO_PLACEHOLDER

# What a landing template may print besides: `{{ video }}`, where the campaign's hero video goes
# (the page swaps the placeholder for the player; docs/landing-video.md).
LANDING_VALUES: dict[str, Markup] = {"video": VIDEO_PLACEHOLDER}


def campaign_context(campaign: Campaign) -> dict[str, str]:
    """What every template of a campaign may print about it (messages add their own values)."""
    return {
        "campaign_name": campaign.name,
        "offer_title": campaign.offer_title,
        "offer_description": campaign.offer_description,
        "brand_name": campaign.brand_name,
        "postal_address": campaign.postal_address,
        "support_contact": campaign.support_contact,
    }
