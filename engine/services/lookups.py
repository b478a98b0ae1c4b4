"""Finding a campaign by its slug: for the public (only an open one) and for staff (any).

Every use case that starts from a slug starts here, so that a slug that cannot exist is
refused the same way everywhere, and "no such campaign" is one exception to catch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from flask_babel import lazy_gettext
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from engine.db import utcnow
from engine.models import Campaign, CampaignStatus


class CampaignNotFound(LookupError):
    """No campaign has this slug."""


class CampaignUnavailable(Exception):
    """The campaign does not exist, or the public may not see it now; `status` is the HTTP status to answer."""

    def __init__(self, message: object, status: int, language: CampaignLanguage | None = None) -> None:
        super().__init__(message)
        self.status = status
        # The campaign's languages, when there is a campaign: its error page speaks one of them.
        self.language = language


@dataclass(frozen=True)
class CampaignLanguage:
    """What a campaign's public pages need to pick their language and read phone numbers."""

    locales: tuple[str, ...]
    address_form: str
    # In order: where a number typed without a country code is read first, then the others.
    phone_regions: tuple[str, ...]

    @classmethod
    def of(cls, campaign: Campaign, fallback_region: str) -> CampaignLanguage:
        return cls(tuple(campaign.locales or ("en",)), campaign.address_form, campaign.phone_regions(fallback_region))


def campaign_language(session: Session, slug: str, fallback_region: str) -> CampaignLanguage | None:
    """The languages and phone regions of the campaign with this slug (open or not), or None.
    One small read: the forward form is checked with it before the campaign itself is loaded."""
    if not SLUG.fullmatch(slug):
        return None
    row = session.execute(
        select(Campaign.locales, Campaign.address_form, Campaign.phone_region, Campaign.extra_phone_regions).where(
            Campaign.slug == slug
        )
    ).first()
    if row is None:
        return None
    first = row.phone_region or fallback_region
    regions = (first, *(r for r in row.extra_phone_regions or () if r != first))
    return CampaignLanguage(tuple(row.locales or ("en",)), row.address_form, regions)


# Lazy: translated when the view shows them, once it has picked the campaign's language.
ENDED = lazy_gettext("This offer has ended.")
NOT_NOW = lazy_gettext("This offer is not available right now.")
NO_OFFER = lazy_gettext("There is no offer at this address.")

SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


def load_open_campaign(
    session: Session, slug: str, now: datetime | None = None, *, with_templates: bool = True, with_logo: bool = False
) -> Campaign:
    """`with_logo` for what renders a page or a message (Campaign.logo is never loaded lazily)."""
    # A slug that cannot exist is not looked up (PostgreSQL refuses a NUL byte in text outright).
    if not SLUG.fullmatch(slug):
        raise CampaignUnavailable(NO_OFFER, 404)
    query = select(Campaign).where(Campaign.slug == slug)
    if with_templates:
        query = query.options(selectinload(Campaign.templates))
    if with_logo:
        query = query.options(selectinload(Campaign.logo))
    campaign = session.scalar(query)
    if campaign is None:
        raise CampaignUnavailable(NO_OFFER, 404)
    check_open(campaign, now)
    return campaign


def check_open(campaign: Campaign, now: datetime | None = None) -> None:
    """Raises CampaignUnavailable unless the public may see and forward the campaign at `now`
    (the wall clock when not given): a draft is no offer, an ended one has ended."""
    if campaign.status == CampaignStatus.DRAFT:
        raise CampaignUnavailable(NO_OFFER, 404)
    language = CampaignLanguage.of(campaign, "")
    if campaign.status == CampaignStatus.ENDED or (
        campaign.ends_at is not None and (now or utcnow()) >= campaign.ends_at
    ):
        raise CampaignUnavailable(ENDED, 410, language)
    if not campaign.is_open(now or utcnow()):
        raise CampaignUnavailable(NOT_NOW, 404, language)


def find_campaign(
    session: Session, slug: str, *, with_templates: bool = False, with_logo: bool = False, for_update: bool = False
) -> Campaign:
    """The campaign with this slug, whatever its status (staff see drafts and ended ones too);
    `with_logo` for what renders a page or a message (Campaign.logo is never loaded lazily).
    Raises CampaignNotFound. A slug that cannot exist is not looked up (PostgreSQL refuses a
    NUL byte in text outright)."""
    if not SLUG.fullmatch(slug):
        raise CampaignNotFound(f"no campaign {slug!r}")
    query = select(Campaign).where(Campaign.slug == slug)
    if with_templates:
        query = query.options(selectinload(Campaign.templates))
    if with_logo:
        query = query.options(selectinload(Campaign.logo))
    if for_update:
        query = query.with_for_update()
    campaign = session.scalar(query)
    if campaign is None:
        raise CampaignNotFound(f"no campaign {slug!r}")
    return campaign
