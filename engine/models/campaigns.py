"""A campaign: the offer, who sends it, which channels and which consent policy apply."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import Base, UTCDateTime, utcnow
from engine.template_files import resolve

if TYPE_CHECKING:
    from engine.models.contests import Contest


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    # Whose campaign it is: marketers see and change their own team's (engine.models.users).
    team: Mapped[str] = mapped_column(String(64), default="default", server_default="default", index=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=CampaignStatus.DRAFT)
    # Why the campaign is in its status, when the system put it there (an automatic pause).
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Paused by the send loop (its sends kept failing for reasons of ours), not by a person:
    # only sending stops. The offer stays up and forwards are taken and held until a resume.
    paused_automatically: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    offer_title: Mapped[str] = mapped_column(String(200))
    offer_description: Mapped[str] = mapped_column(Text, default="")

    # The sender identity: under CAN-SPAM the brand is the sender of a rewarded forward.
    brand_name: Mapped[str] = mapped_column(String(200))
    sender_email: Mapped[str] = mapped_column(String(254))
    postal_address: Mapped[str] = mapped_column(Text)
    support_contact: Mapped[str] = mapped_column(String(254), default="")

    channels: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["email"])
    policy_name: Mapped[str] = mapped_column(String(32), default="us")
    # Only for the `custom` policy: each rule set explicitly, with its justification.
    policy_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # What a channel needs of this campaign, by channel name (WhatsApp: its Content Template,
    # the template's approved body and which of our values fills each of its variables).
    channel_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    max_friends_per_submission: Mapped[int] = mapped_column(Integer, default=5)
    # Overrides of the default volume caps (engine.caps.CapSettings), by name.
    caps: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    # Every segment is billed: a text that renders longer than this is not sent.
    sms_segment_limit: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    # Curly quotes, dashes and the like become their GSM-7 look-alikes, which keeps a text
    # at 160 characters a segment instead of 70.
    sms_smart_encoding: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    # "none", "pool" (codes uploaded by the brand) or "generated" (engine.models.coupons): a
    # coupon is an incentive, which a policy without incentives (eu-strict) does not allow.
    coupon_mode: Mapped[str] = mapped_column(String(16), default="none", server_default="none")

    # The languages its pages and messages speak (engine.i18n), ordered: the first is the
    # default, for a visitor whose browser asks for none of them. Each has a catalog.
    locales: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["en"], server_default='["en"]')
    # How Dutch addresses consumers: "informal" (je/jij) or "formal" (u) (engine.i18n.AddressForm).
    address_form: Mapped[str] = mapped_column(String(16), default="informal", server_default="informal")
    # Where its consumers' phone numbers are typed without a country code (ISO 3166 region,
    # "NL"), then the other regions it also reads ("BE"); None: the installation's
    # DEFAULT_PHONE_REGION, as for every campaign made before campaigns had regions.
    phone_region: Mapped[str | None] = mapped_column(String(2), nullable=True)
    extra_phone_regions: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    # The sites allowed to embed its form (engine.embedding): exact origins, as a browser
    # writes them (`https://shop.example`); empty, as for every campaign before: nobody.
    embed_origins: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    # The hosts its landing page may load a self-hosted video, poster or captions from
    # (engine.video), and its hero video: {"url", "poster", "caption", "captions", "reveal_form"}.
    media_hosts: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    landing_video: Mapped[dict[str, str]] = mapped_column(JSON, default=dict, server_default="{}")

    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Put out of the console's list by a person (engine.services.archive): only a campaign that is
    # not live, and it may not go live until it is taken out of the archive. None: not archived.
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # How a friend who arrives through a tracked link is assigned a variant (engine.services.variants):
    # "inherit" (the sender's: which wrapper spreads) or "fresh" (a draw of their own: first touch).
    variant_inheritance: Mapped[str] = mapped_column(String(16), default="inherit", server_default="inherit")
    # What the experiment's verdict compares its variants on (engine.verdict.Metric), and whether
    # new visitors' shares follow the verdict (Thompson sampling, engine.services.experiments).
    variant_metric: Mapped[str] = mapped_column(String(24), default="k", server_default="k")
    variant_autopilot: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    templates: Mapped[list[CampaignTemplate]] = relationship(
        back_populates="campaign", order_by="CampaignTemplate.version", cascade="all, delete-orphan"
    )
    # Read by the landing page (the contest running now); written through engine.services.contests.
    contests: Mapped[list[Contest]] = relationship(order_by="Contest.starts_at", viewonly=True)
    # Its logo (engine.services.logos; its bytes stay deferred), loaded only where a page or a
    # message renders (`selectinload(Campaign.logo)`: a process's copy of a campaign in
    # engine.services.snapshots, delivery, previews, find_campaign(with_logo=True)): most reads
    # of a campaign show no logo. Reading it unloaded raises, rather than costing a hidden query.
    logo: Mapped[CampaignImage | None] = relationship(
        primaryjoin="and_(Campaign.id == foreign(CampaignImage.campaign_id), CampaignImage.kind == 'logo')",
        viewonly=True,
        uselist=False,
        lazy="raise",
    )
    # Its A/B variants, in key order; none: the campaign is its own single variant.
    variants: Mapped[list[CampaignVariant]] = relationship(order_by="CampaignVariant.key", cascade="all, delete-orphan")

    def is_open(self, now: datetime) -> bool:
        """Whether the public may see the offer and forward it right now."""
        sending_paused = self.status == CampaignStatus.PAUSED and self.paused_automatically
        if self.status != CampaignStatus.ACTIVE and not sending_paused:
            return False
        if self.starts_at is not None and now < self.starts_at:
            return False
        return not (self.ends_at is not None and now >= self.ends_at)

    @property
    def default_locale(self) -> str:
        return self.locales[0] if self.locales else "en"

    def phone_regions(self, fallback: str) -> tuple[str, ...]:
        """The regions a phone number typed on its pages is read in, in order: its own region
        (or `fallback`, the installation's default), then the others it accepts."""
        first = self.phone_region or fallback
        return (first, *(r for r in self.extra_phone_regions or () if r != first))

    def template_sources(self, defaults: Mapping[str, str], locale: str | None = None) -> dict[str, str]:
        """The source of each template this campaign renders with in `locale` (None: its
        default files): its own newest version for that locale, else its own default file,
        else the built-in default (engine.template_files.resolve). An own HTML email without
        a text part as specific gets a text part derived from that HTML, not a text that
        would say something else (or say it in another language)."""
        return dict(resolve(self.own_sources(), defaults, locale).sources)

    def own_sources(self) -> dict[str, str]:
        """The newest body of each file of its own, by file name (`email.nl.html`)."""
        return {name: template.body for name, template in self.current_templates().items()}

    def current_templates(self) -> dict[str, CampaignTemplate]:
        """The newest version of each template file the campaign has."""
        current: dict[str, CampaignTemplate] = {}
        for template in self.templates:
            if template.name not in current or template.version > current[template.name].version:
                current[template.name] = template
        return current


class CampaignTemplate(Base):
    """One immutable version of one template file of a campaign."""

    __tablename__ = "campaign_templates"
    __table_args__ = (UniqueConstraint("campaign_id", "name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    campaign: Mapped[Campaign] = relationship(back_populates="templates")


class CampaignVariant(Base):
    """One arm of a campaign's A/B test: its share of new visitors (`weight`), the wrapper it is
    reported as, and what it says instead of the campaign (None: the campaign's own words). A
    stopped variant takes no new visitors; its forwards and figures stay."""

    __tablename__ = "campaign_variants"
    __table_args__ = (UniqueConstraint("campaign_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    # Short and stable ("a", "b"): what cookies, stamps and reports name it by.
    key: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(80))
    weight: Mapped[int] = mapped_column(Integer)
    # A label for reporting (engine.services.variants.Wrapper): plain, story, video, quiz, contest, coupon,
    # scratch (a quiz and a scratch card are also steps of the landing page: engine.services.wrappers).
    wrapper: Mapped[str] = mapped_column(String(16), default="plain", server_default="plain")
    offer_title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    offer_description: Mapped[str | None] = mapped_column(Text, nullable=True)
    share_text: Mapped[str | None] = mapped_column(String(280), nullable=True)
    # The quiz a `quiz` variant asks before it shows the offer (engine.services.wrappers): its
    # question, answers and which of them is right, if any. None for every other wrapper.
    quiz: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Whether this variant's friends get the campaign's coupon (when the campaign gives codes):
    # an arm without the incentive tests what the incentive is worth.
    gives_coupon: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    stopped: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CampaignEvent(Base):
    """One entry of a campaign's history: who changed what, when, and why.

    `changes` maps a field to [old, new]; it never holds secrets (a campaign has none, and
    template bodies are named by version rather than copied)."""

    __tablename__ = "campaign_events"
    __table_args__ = (Index("ix_campaign_events_campaign_at", "campaign_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A staff member's email, or "system" (the send loop) or "cli" (an operator's command).
    actor: Mapped[str] = mapped_column(String(254))
    actor_kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str] = mapped_column(Text, default="")


class CampaignImage(Base):
    """An image of a campaign's own, by kind (`card`: the picture link previews show; `logo`:
    the brand's logo at the top of the built-in e-mail), as checked and re-encoded
    (engine.card_images): the bytes themselves, never a path. One per kind; an upload
    replaces it."""

    __tablename__ = "campaign_images"
    __table_args__ = (UniqueConstraint("campaign_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(32))
    # Read only when the image itself is served: a campaign loads its logo's row without it.
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    # Hex digest of `data`: its version in the public URL and its ETag.
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CampaignSnapshotVersion(Base):
    """One row: a number every change to a campaign, a campaign's template or a webhook
    endpoint moves on, in the transaction that makes the change (engine.db.Database installs
    the hook). A process keeps campaigns as it last read them and trusts its copy while this
    number has not moved (engine.services.snapshots)."""

    __tablename__ = "campaign_snapshot_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
