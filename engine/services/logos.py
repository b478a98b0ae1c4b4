"""A campaign's logo: the brand's image at the top of the built-in e-mail.

A marketer uploads it in the console (checked and re-encoded by engine.card_images, stored as
the campaign's image of kind `logo` by engine.services.share_cards.store_image, as the card
image is) and may remove it; each change is a row of the campaign's history. Messages name it
by an absolute address versioned by its content (engine.services.template_context.logo_url,
served by engine.web.public.cards.logo_image): templates print it as `{{ logo_url }}`, empty
without a logo.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.db import Database
from engine.models import CampaignStatus
from engine.services.lookups import find_campaign
from engine.services.share_cards import LOGO, CardRef, StoredCard, image_ref, stored_image
from engine.services.template_context import logo_size


@dataclass(frozen=True)
class LogoSettings:
    """The console's page of a campaign's logo."""

    slug: str
    name: str
    brand_name: str
    logo: CardRef | None

    @property
    def shown_size(self) -> tuple[int, int] | None:
        """The size the built-in e-mail shows the logo at."""
        return logo_size(self.logo.width, self.logo.height) if self.logo else None


def logo_settings(db: Database, slug: str) -> LogoSettings:
    """Raises CampaignNotFound."""
    with db.reading() as session:
        campaign = find_campaign(session, slug)
        return LogoSettings(campaign.slug, campaign.name, campaign.brand_name, image_ref(session, campaign.id, LOGO))


def public_logo(db: Database, slug: str, version: str | None) -> StoredCard | None:
    """The logo as e-mail clients fetch it, or None. A draft's only at its current version: a
    preview or test message of a draft shows it, and nobody finds it without the address.
    Raises CampaignNotFound."""
    with db.reading() as session:
        campaign = find_campaign(session, slug)
        stored = stored_image(session, campaign.id, LOGO)
        if stored is None or (campaign.status == CampaignStatus.DRAFT and version != stored.ref.version):
            return None
        return stored


def staff_logo(db: Database, slug: str) -> StoredCard | None:
    """The logo, whatever the campaign's status. Raises CampaignNotFound."""
    with db.reading() as session:
        return stored_image(session, find_campaign(session, slug).id, LOGO)
