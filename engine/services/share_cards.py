"""What a shared link shows before anyone opens it, and the campaign's printed QR code.

- The card image: a marketer uploads it (checked and re-encoded by engine.card_images) and may
  remove it; each change is a row of the campaign's history. Without one, pages name the
  built-in default card. The logo (engine.services.logos) is stored, replaced and removed the
  same way (`store_image`, `remove_image`), as a campaign image of another kind.
- The poster code: one tracked forward per campaign (channel `share-qr`, nobody's contact),
  made the first time staff download the campaign's QR code and reused after, so every scan
  of every printed copy is attributed to it like a click on any shared link.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from engine.card_images import CardImage, checked_card_image, checked_logo_image
from engine.contacts import ContactHasher
from engine.db import Database
from engine.ids import new_public_id
from engine.models import Campaign, CampaignImage, CampaignStatus, Click, Forward
from engine.policy import policy_for
from engine.services.history import Actor, EventAction, record_event
from engine.services.lookups import CampaignNotFound, find_campaign
from engine.services.webhooks import publish
from engine.sharing import POSTER_QR_CHANNEL

CARD = "card"
# The brand's logo at the top of the built-in e-mail (engine.services.logos).
LOGO = "logo"


@dataclass(frozen=True)
class CardRef:
    """Enough of a stored card image to name it in a page: its URL carries the version."""

    sha256: str
    content_type: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        return CARD_EXTENSIONS[self.content_type]

    @property
    def version(self) -> str:
        return self.sha256[:16]


@dataclass(frozen=True)
class StoredCard:
    ref: CardRef
    data: bytes


CARD_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


@dataclass(frozen=True)
class CardFacts:
    """What a link preview of a campaign's page says: its offer as the campaign words it."""

    slug: str
    offer_title: str
    offer_description: str
    brand_name: str
    locales: tuple[str, ...]
    card: CardRef | None


def card_facts(db: Database, slug: str) -> CardFacts | None:
    """A campaign's card facts; None for no such campaign."""
    with db.reading() as session:
        try:
            campaign = find_campaign(session, slug)
        except CampaignNotFound:
            return None
        return CardFacts(
            campaign.slug,
            campaign.offer_title,
            campaign.offer_description or "",
            campaign.brand_name,
            tuple(campaign.locales or ()),
            card_ref(session, campaign.id),
        )


@dataclass(frozen=True)
class CardSettings:
    """The console's page of a campaign's card image and printed QR code."""

    slug: str
    name: str
    status: str
    card: CardRef | None
    # Scans of the printed code so far (clicks on its forward); None: no code downloaded yet.
    poster_scans: int | None


def card_settings(db: Database, slug: str) -> CardSettings:
    """Raises CampaignNotFound."""
    with db.reading() as session:
        campaign = find_campaign(session, slug)
        poster = session.scalar(
            select(Forward.id).where(Forward.campaign_id == campaign.id, Forward.channel == POSTER_QR_CHANNEL).limit(1)
        )
        scans = None
        if poster is not None:
            scans = session.scalar(select(func.count()).select_from(Click).where(Click.forward_id == poster)) or 0
        return CardSettings(campaign.slug, campaign.name, campaign.status, card_ref(session, campaign.id), scans)


class CampaignEnded(Exception):
    """An ended campaign's page never comes back: no new printed code leads to it."""


def card_ref(session: Session, campaign_id: int) -> CardRef | None:
    """The campaign's card image, without its bytes (what a page needs to name it)."""
    return image_ref(session, campaign_id, CARD)


def image_ref(session: Session, campaign_id: int, kind: str) -> CardRef | None:
    """The campaign's image of this kind (`card`, `logo`), without its bytes."""
    row = session.execute(
        select(CampaignImage.sha256, CampaignImage.content_type, CampaignImage.width, CampaignImage.height).where(
            CampaignImage.campaign_id == campaign_id, CampaignImage.kind == kind
        )
    ).first()
    return CardRef(row.sha256, row.content_type, row.width, row.height) if row else None


def public_card(db: Database, slug: str) -> StoredCard | None:
    """The card image of a campaign the public may see (not a draft), or None. Raises CampaignNotFound."""
    with db.reading() as session:
        campaign = find_campaign(session, slug)
        if campaign.status == CampaignStatus.DRAFT:
            return None
        return stored_image(session, campaign.id, CARD)


def staff_card(db: Database, slug: str) -> StoredCard | None:
    """The card image, whatever the campaign's status (staff see a draft's). Raises CampaignNotFound."""
    with db.reading() as session:
        return stored_image(session, find_campaign(session, slug).id, CARD)


def stored_image(session: Session, campaign_id: int, kind: str) -> StoredCard | None:
    """The campaign's image of this kind, its bytes too."""
    image = session.scalar(
        select(CampaignImage).where(CampaignImage.campaign_id == campaign_id, CampaignImage.kind == kind)
    )
    if image is None:
        return None
    return StoredCard(CardRef(image.sha256, image.content_type, image.width, image.height), image.data)


# How an upload of each kind is checked and re-encoded (engine.card_images): a logo has limits
# of its own, and each kind's line in the campaign's history (its action, the name of what changed).
_CHECKS: Mapping[str, Callable[[bytes], CardImage]] = {CARD: checked_card_image, LOGO: checked_logo_image}
_HISTORY = {CARD: (EventAction.CARD_IMAGE, "card_image"), LOGO: (EventAction.LOGO, "logo")}


def store_image(db: Database, slug: str, upload: bytes, kind: str, actor: Actor, now: datetime) -> CardImage:
    """Check the upload as an image of this kind (`card`, `logo`), store it as the campaign's
    image of that kind in place of any other, and say so in its history. Raises
    CardImageRefused (nothing stored) or CampaignNotFound."""
    image = _CHECKS[kind](upload)
    action, field = _HISTORY[kind]
    with db.transaction() as session:
        campaign = find_campaign(session, slug, for_update=True)
        before = image_ref(session, campaign.id, kind)
        session.execute(
            delete(CampaignImage).where(CampaignImage.campaign_id == campaign.id, CampaignImage.kind == kind)
        )
        session.add(
            CampaignImage(
                campaign_id=campaign.id,
                kind=kind,
                content_type=image.content_type,
                data=image.data,
                sha256=image.sha256,
                width=image.width,
                height=image.height,
                created_at=now,
            )
        )
        after = f"{image.content_type} {image.width}x{image.height} {image.sha256[:12]}"
        record_event(session, campaign.id, actor, action, {field: [_named(before), after]})
    return image


def remove_image(db: Database, slug: str, kind: str, actor: Actor) -> bool:
    """Remove the campaign's image of this kind (pages then show the default card; the e-mail, the
    brand's name). False when it had none. Raises CampaignNotFound."""
    action, field = _HISTORY[kind]
    with db.transaction() as session:
        campaign = find_campaign(session, slug, for_update=True)
        before = image_ref(session, campaign.id, kind)
        if before is None:
            return False
        session.execute(
            delete(CampaignImage).where(CampaignImage.campaign_id == campaign.id, CampaignImage.kind == kind)
        )
        record_event(session, campaign.id, actor, action, {field: [_named(before), None]})
    return True


def _named(ref: CardRef | None) -> str | None:
    return f"{ref.content_type} {ref.width}x{ref.height} {ref.sha256[:12]}" if ref else None


def poster_forward(db: Database, hasher: ContactHasher, slug: str, now: datetime) -> str:
    """The public id of the campaign's `share-qr` forward, made on first use. Raises
    CampaignNotFound, CampaignEnded."""
    with db.transaction() as session:
        # Locked: two downloads at once still make one forward.
        campaign = find_campaign(session, slug, for_update=True)
        if campaign.status == CampaignStatus.ENDED:
            raise CampaignEnded(slug)
        existing = session.scalar(
            select(Forward.public_id)
            .where(Forward.campaign_id == campaign.id, Forward.channel == POSTER_QR_CHANNEL)
            .order_by(Forward.id)
            .limit(1)
        )
        if existing is not None:
            return existing
        return _new_poster_forward(session, campaign, hasher, now)


def _new_poster_forward(session: Session, campaign: Campaign, hasher: ContactHasher, now: datetime) -> str:
    policy = policy_for(campaign.policy_name, campaign.policy_settings)
    public_id = new_public_id()
    forward = Forward(
        public_id=public_id,
        campaign_id=campaign.id,
        generation=1,
        channel=POSTER_QR_CHANNEL,
        # Nobody sent it, and it goes to whoever scans it: no name, no contact.
        sender_name="",
        recipient_contact_hash=hasher.hash_text(f"share:{public_id}"),
        policy_name=policy.name,
        policy_version=policy.version,
        locale=campaign.default_locale,
    )
    session.add(forward)
    session.flush()
    event = {
        "campaign": campaign.slug,
        "forward": public_id,
        "parent_forward": None,
        "generation": 1,
        "channel": POSTER_QR_CHANNEL,
        "via": "qr",
    }
    publish(session, "forward.created", event, now=now)
    return public_id
