"""Finding a campaign by its slug: for the public (only an open one) and for staff (any).

Every use case that starts from a slug starts here, so that a slug that cannot exist is
refused the same way everywhere, and "no such campaign" is one exception to catch.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from engine.db import utcnow
from engine.models import Campaign, CampaignStatus


class CampaignNotFound(LookupError):
    """No campaign has this slug."""


class CampaignUnavailable(Exception):
    """The campaign does not exist, or the public may not see it now; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


def load_open_campaign(
    session: Session, slug: str, now: datetime | None = None, *, with_templates: bool = True
) -> Campaign:
    # A slug that cannot exist is not looked up (PostgreSQL refuses a NUL byte in text outright).
    if not SLUG.fullmatch(slug):
        raise CampaignUnavailable("There is no offer at this address.", 404)
    query = select(Campaign).where(Campaign.slug == slug)
    if with_templates:
        query = query.options(selectinload(Campaign.templates))
    campaign = session.scalar(query)
    if campaign is None or campaign.status == CampaignStatus.DRAFT:
        raise CampaignUnavailable("There is no offer at this address.", 404)
    if campaign.status == CampaignStatus.ENDED or (
        campaign.ends_at is not None and (now or utcnow()) >= campaign.ends_at
    ):
        raise CampaignUnavailable("This offer has ended.", 410)
    if not campaign.is_open(now or utcnow()):
        raise CampaignUnavailable("This offer is not available right now.", 404)
    return campaign


def find_campaign(session: Session, slug: str, *, with_templates: bool = False, for_update: bool = False) -> Campaign:
    """The campaign with this slug, whatever its status (staff see drafts and ended ones too).
    Raises CampaignNotFound. A slug that cannot exist is not looked up (PostgreSQL refuses a
    NUL byte in text outright)."""
    if not SLUG.fullmatch(slug):
        raise CampaignNotFound(f"no campaign {slug!r}")
    query = select(Campaign).where(Campaign.slug == slug)
    if with_templates:
        query = query.options(selectinload(Campaign.templates))
    if for_update:
        query = query.with_for_update()
    campaign = session.scalar(query)
    if campaign is None:
        raise CampaignNotFound(f"no campaign {slug!r}")
    return campaign
