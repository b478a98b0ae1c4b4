"""Campaign use cases: the public landing page, seeding the demo; and for staff, create and
edit campaigns, move them through their states, and show their history. What other use cases
share about campaigns lives apart: finding one (engine.services.lookups), who changed it and
its history rows (engine.services.history), what its templates print about it
(engine.services.template_context), and storing template versions (engine.services.templates).

A campaign is `draft` until someone activates it, then `active`, `paused` (by hand, or by
the send loop when its messages keep failing) and at last `ended`, for good:

    draft → active ⇄ paused;  draft | active | paused → ended

Activation is checked: the templates it would send with pass the upload checks under its
policy, the sender identity and postal address the policy asks for are there, and coupons
are on only where the policy allows incentives. Every change (settings, status, templates,
coupon mode) writes a `campaign_events` row in the same transaction: who, what (each changed
field as [old, new]) and why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.caps import CapSettings
from engine.channels import channel as channel_named
from engine.channels import names as channel_names
from engine.channels import registered as registered_channels
from engine.db import Database, utcnow
from engine.embedding import origins_problem, parsed_origins
from engine.i18n import AddressForm, LocaleError, current_language, validate_locales
from engine.models import (
    Campaign,
    CampaignEvent,
    CampaignStatus,
    Forward,
    Message,
    MessageStatus,
    TemplateName,
)
from engine.policy import (
    POLICY_NAMES,
    ConsentPolicy,
    PolicyError,
    policy_for,
)
from engine.rendering import RenderError, TemplateRenderer, default_templates
from engine.services.composer import locale_values
from engine.services.contests import ContestView, open_contest
from engine.services.coupons import CouponMode, coupons_refusal
from engine.services.history import Actor, EventAction, record_event
from engine.services.lookups import SLUG, CampaignLanguage, find_campaign, load_open_campaign
from engine.services.share_cards import CardRef, card_ref
from engine.services.snapshots import CampaignSnapshot, CampaignSnapshots
from engine.services.template_context import LANDING_VALUES, campaign_context
from engine.services.templates import (
    add_template_versions,
    campaign_snapshot,
    current_template_problems,
    step_hook_gaps,
)
from engine.services.variants import CampaignVariants, Variant
from engine.services.webhooks import publish
from engine.services.wrappers import NO_QUIZ, PAST_THE_STEP, QuizStep, StepReply, quiz_step
from engine.video import (
    REVEAL_AFTER_STEP,
    REVEAL_AFTER_VIDEO,
    REVEAL_ALWAYS,
    REVEAL_CHOICES,
    VIDEO_SETTINGS,
    LandingVideo,
    landing_video,
    media_hosts_problem,
    normalised_hosts,
    video_problems,
)

log = logging.getLogger(__name__)


DEMO_SLUG = "demo"


def seed_demo_campaign(db: Database) -> bool:
    """Create the `demo` campaign if it is missing; True when it was created."""
    with db.transaction() as session:
        if session.scalar(select(Campaign.id).where(Campaign.slug == DEMO_SLUG)) is not None:
            return False
        campaign = Campaign(
            slug=DEMO_SLUG,
            name="Demo: a free coffee for a friend",
            status=CampaignStatus.ACTIVE,
            offer_title="A free coffee at Koffie & Co",
            offer_description="Show this offer at any Koffie & Co and your first coffee is on us.",
            brand_name="Koffie & Co",
            sender_email="offers@koffie.example",
            postal_address="Prinsengracht 1, 1015 DK Amsterdam, The Netherlands",
            support_contact="help@koffie.example",
            channels=["email", "sms"],
            policy_name="custom",
            policy_settings={
                "version": 1,
                "channels": {"email": "allowed", "sms": "allowed"},
                "incentives": False,
                "retention": "days_after_send",
                "retention_days": 30,
                # Nobody's phone rings: the demo texts any time of day.
                "sms_hours": [0, 24],
                "justification": "Demo campaign: every message goes to the local outbox, never to a real person.",
            },
            max_friends_per_submission=5,
            # An Amsterdam coffee bar: Dutch first, English for visitors; numbers typed the Dutch way.
            locales=["nl", "en"],
            phone_region="NL",
            # Belgian customers cross the border too: `0470 12 34 56` is read as a Belgian mobile.
            extra_phone_regions=["BE"],
        )
        session.add(campaign)
        add_template_versions(session, campaign, default_templates())
        return True


@dataclass(frozen=True)
class LandingPage:
    slug: str
    name: str
    brand_name: str
    offer_title: str
    channels: tuple[str, ...]
    max_friends: int
    content_html: str
    # What the page's own checks need, read with the rest (a landing GET is read often).
    campaign_id: int = 0
    caps: Mapping[str, Any] = field(default_factory=dict)
    # Its sending paused itself (engine.services.delivery): forwards are taken and wait.
    sending_held: bool = False
    # The channels, (name, label), the sender picks among for a contact that several channels
    # reach (a phone number: a text or a WhatsApp message), in the registry's order; empty
    # when there is nothing to pick (the contact goes by the one channel that reads it).
    contact_choices: tuple[tuple[str, str], ...] = ()
    # Its languages (the first its default), address form and phone regions (engine.i18n).
    language: CampaignLanguage = field(default_factory=lambda: CampaignLanguage(("en",), "informal", ("US",)))
    # What a link preview of the page says and shows (engine.web.public.cards).
    offer_description: str = ""
    card: CardRef | None = None
    # Its hero video (engine.video), and what the form waits for: the video (REVEAL_AFTER_VIDEO) or
    # a step of its landing template (REVEAL_AFTER_STEP).
    video: LandingVideo | None = None
    reveal_form: str = REVEAL_ALWAYS
    # It hands coupon codes out (which ones, to whom: engine.services.coupons): a visitor's code is
    # looked up only then, not on every visit of every campaign.
    gives_codes: bool = False
    # The contest running now, which the page announces with a link to its official rules.
    contest: ContestView | None = None
    # The A/B variant this visitor is shown (engine.services.variants); None: no experiment.
    variant: Variant | None = None
    # A quiz variant's question and the visitor's answer (NO_QUIZ on any other page).
    quiz: QuizStep = NO_QUIZ

    @property
    def wrapper(self) -> str:
        """The variant's wrapper ("" without variants): a quiz or a scratch card is a step."""
        return self.variant.wrapper if self.variant is not None else ""


def server_channels(campaign: Campaign) -> tuple[str, ...]:
    """The channels the form may offer: the campaign's, as far as its policy lets the server send
    to a friend who has not consented (so that `us` does not invite phone numbers it refuses)."""
    try:
        policy = policy_for(campaign.policy_name, campaign.policy_settings)
    except PolicyError:
        return ()
    return tuple(c for c in campaign.channels if policy.server_sends(c))


def contact_choices(campaign: Campaign) -> tuple[tuple[str, str], ...]:
    """The campaign's channels (its policy may take friends on them) that share their kind of
    contact with another registered channel: the sender says which one a friend gets. One alone
    is still named when it is not the channel such a contact is read as by default."""
    try:
        policy = policy_for(campaign.policy_name, campaign.policy_settings)
    except PolicyError:
        return ()
    offered = [c for c in registered_channels() if c.name in campaign.channels and policy.may_offer(c.name)]
    for kind in dict.fromkeys(c.contact_noun for c in offered):  # in the registry's order
        rivals = [c for c in registered_channels() if c.contact_noun == kind]
        choices = [c for c in offered if c.contact_noun == kind]
        if len(rivals) > 1 and (len(choices) > 1 or choices[0] is not rivals[0]):
            return tuple((c.name, c.label) for c in choices)
    return ()


def landing_page(
    db: Database,
    renderer: TemplateRenderer,
    slug: str,
    now: datetime | None = None,
    *,
    phone_region: str = "US",
    choose_locale: Callable[[CampaignLanguage], object] | None = None,
    snapshots: CampaignSnapshots | None = None,
    public_base_url: str = "",
    choose_variant: Callable[[int, CampaignVariants], Variant | None] | None = None,
    step: StepReply = PAST_THE_STEP,
) -> LandingPage:
    """What the public landing page shows (at `now`, the runtime's clock); `phone_region` is the
    installation's, for a campaign without one of its own. `choose_locale` picks the language
    among the campaign's before its landing template renders (the page then speaks it; the
    template gets it as `locale`, and each language's rendering is kept apart). Raises
    CampaignUnavailable. With `snapshots`, the process's copy of the campaign is used while the
    snapshot version says it is current: one read of that number instead of the campaign and its
    templates. `choose_variant` picks the visitor's A/B variant among the campaign's (none
    without variants), whose words the page then uses. `step`: what the visitor's request says of
    a quiz variant's question (engine.services.wrappers); by default they are past it."""
    with db.reading() as session:
        snapshot = snapshots.open(session, slug, now) if snapshots is not None else None
        campaign = snapshot.campaign if snapshot is not None else load_open_campaign(session, slug, now, with_logo=True)
        language = CampaignLanguage.of(campaign, phone_region)
        if choose_locale is not None:
            choose_locale(language)
        # The campaign's own landing file for that language (`landing.nl.html`), else its
        # default file, else the built-in one, which speaks every language through {% trans %}.
        locale = current_language()
        variant = _variant_for(campaign, snapshot, choose_variant)
        sources = campaign.template_sources(default_templates(), locale)
        quiz = quiz_step(variant.quiz if variant is not None else None, step)
        words = campaign_context(campaign, public_base_url, variant)
        context: dict[str, object] = {
            **words,
            **locale_values(campaign.locales, campaign.address_form, locale),
            **LANDING_VALUES,
            "quiz": quiz,
            # A plain value for the page cache's key: formal and informal Dutch are two pages.
            "address_form": campaign.address_form,
        }
        try:
            content = renderer.render_page(TemplateName.LANDING, sources[TemplateName.LANDING], context)
        except RenderError as error:
            # A stored version that no longer renders within the budget (it was checked under
            # older rules): the page still works, with the default landing template.
            log.warning("landing page of %s falls back to the default template: %s", campaign.slug, error)
            content = renderer.render_page(TemplateName.LANDING, default_templates()[TemplateName.LANDING], context)
        video = landing_video(campaign.landing_video or {}, tuple(campaign.media_hosts or ()))
        return LandingPage(
            slug=campaign.slug,
            name=campaign.name,
            brand_name=campaign.brand_name,
            offer_title=words["offer_title"],
            channels=server_channels(campaign),
            max_friends=campaign.max_friends_per_submission,
            content_html=content,
            campaign_id=campaign.id,
            caps=dict(campaign.caps or {}),
            sending_held=campaign.status == CampaignStatus.PAUSED,
            contact_choices=contact_choices(campaign),
            language=language,
            offer_description=words["offer_description"],
            variant=variant,
            card=snapshot.card(session) if snapshot is not None else card_ref(session, campaign.id),
            video=video,
            reveal_form=_reveal_form(campaign, video),
            gives_codes=campaign.coupon_mode != CouponMode.NONE,
            contest=open_contest(campaign, campaign.contests, now) if now is not None else None,
            quiz=quiz,
        )


def _variant_for(
    campaign: Campaign,
    snapshot: CampaignSnapshot | None,
    choose: Callable[[int, CampaignVariants], Variant | None] | None,
) -> Variant | None:
    if choose is None:
        return None
    variants = (
        snapshot.variants
        if snapshot is not None
        else CampaignVariants.of(campaign.variants, campaign.variant_inheritance)
    )
    return choose(campaign.id, variants) if variants.variants else None


def _reveal_form(campaign: Campaign, video: LandingVideo | None) -> str:
    """What the landing page's form waits for: a video it shows, or a step of its template."""
    wanted = (campaign.landing_video or {}).get("reveal_form", REVEAL_ALWAYS)
    if wanted == REVEAL_AFTER_VIDEO and video is None:
        return REVEAL_ALWAYS
    return wanted if wanted in REVEAL_CHOICES else REVEAL_ALWAYS


@dataclass(frozen=True)
class CampaignSummary:
    slug: str
    name: str
    brand_name: str
    status: str
    status_reason: str | None
    policy_name: str


def list_campaigns(db: Database, *, team: str | None = None) -> list[CampaignSummary]:
    """Every campaign (of `team`, when given), newest first, as staff lists show them."""
    with db.reading() as session:
        query = select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id.desc())
        if team is not None:
            query = query.where(Campaign.team == team)
        campaigns = session.scalars(query)
        return [
            CampaignSummary(c.slug, c.name, c.brand_name, c.status, c.status_reason, c.policy_name) for c in campaigns
        ]


def campaign_team(db: Database, slug: str) -> str:
    """The team a campaign belongs to. Raises CampaignNotFound."""
    with db.reading() as session:
        return find_campaign(session, slug).team


# -- a campaign's settings, as staff set them ------------------------------------------------------

COUPON_MODES = tuple(mode.value for mode in CouponMode)
# /console/campaigns/new is the creation form: a campaign called `new` would have no overview.
RESERVED_SLUGS = frozenset({"new"})
MAX_FRIENDS = 50
MAX_SMS_SEGMENTS = 10
MIN_JUSTIFICATION = 20  # engine.policy's rule for a custom policy


@dataclass(frozen=True)
class CampaignSettings:
    """What staff set on a campaign, as stored (not checked: see CampaignDraft)."""

    slug: str
    name: str
    offer_title: str
    brand_name: str
    offer_description: str = ""
    sender_email: str = ""
    postal_address: str = ""
    support_contact: str = ""
    channels: tuple[str, ...] = ("email",)
    policy_name: str = "us"
    # Only for the custom policy: each rule, and the written justification.
    policy_settings: Mapping[str, Any] = field(default_factory=dict)
    # What a channel needs of the campaign, by channel name (WhatsApp: its Content Template).
    channel_settings: Mapping[str, Any] = field(default_factory=dict)
    caps: Mapping[str, int | None] = field(default_factory=dict)
    max_friends_per_submission: int = 5
    sms_segment_limit: int = 3
    sms_smart_encoding: bool = True
    coupon_mode: str = "none"
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    # Its languages (the first the default), how Dutch addresses consumers, and where phone
    # numbers typed without a country code are read (None: DEFAULT_PHONE_REGION), then where else.
    locales: tuple[str, ...] = ("en",)
    address_form: str = AddressForm.INFORMAL
    phone_region: str | None = None
    extra_phone_regions: tuple[str, ...] = ()
    # The sites that may embed its send-to-friend button and form (engine.embedding).
    embed_origins: tuple[str, ...] = ()
    # Where its landing page may load a video, poster and captions from, and its hero video
    # (engine.video): {"url", "poster", "caption", "captions", "reveal_form"}, empty for none.
    media_hosts: tuple[str, ...] = ()
    landing_video: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, campaign: Campaign) -> CampaignSettings:
        return cls(**{f.name: _stored_value(getattr(campaign, f.name)) for f in fields(cls)})

    def as_record(self) -> dict[str, Any]:
        """Each setting as JSON keeps it in the history."""
        return {name: _json_value(value) for name, value in asdict(self).items()}


class DraftInvalid(ValueError):
    """Settings that cannot be saved; `problems` says why, by field."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in problems.items()))
        self.problems = dict(problems)


@dataclass(frozen=True)
class CampaignDraft(CampaignSettings):
    """Settings that may be saved: each field checked on its own and against the others.
    Whether the campaign may go live is decided later, on activation (`readiness_problems`)."""

    def __post_init__(self) -> None:
        # Compared as written in a URL: lower case, without a trailing dot; blanks dropped.
        object.__setattr__(self, "media_hosts", normalised_hosts(self.media_hosts))
        object.__setattr__(self, "landing_video", _video_settings(self.landing_video))
        problems = {name: problem for name, problem in self._problems() if problem}
        if problems:
            raise DraftInvalid(problems)
        # Normalised: the sender as email-validator writes it, settings only for custom.
        object.__setattr__(self, "sender_email", _normalised_email(self.sender_email))
        if self.policy_name != "custom":
            object.__setattr__(self, "policy_settings", {})
        # Stored as checked (`nl`, not `NL-be`): compared as such on every public page.
        object.__setattr__(self, "locales", validate_locales(self.locales))
        # As a browser writes them: `https://Shop.example:443/` is `https://shop.example`.
        object.__setattr__(self, "embed_origins", parsed_origins(self.embed_origins))

    @property
    def policy(self) -> ConsentPolicy:
        return policy_for(self.policy_name, self.policy_settings)

    def _problems(self) -> list[tuple[str, str | None]]:
        return [
            ("slug", slug_problem(self.slug)),
            ("name", _text_problem(self.name, 200, required=True)),
            ("offer_title", _text_problem(self.offer_title, 200, required=True)),
            ("offer_description", _text_problem(self.offer_description, 5000)),
            ("brand_name", _text_problem(self.brand_name, 200, required=True)),
            ("sender_email", _email_problem(self.sender_email)),
            ("postal_address", _text_problem(self.postal_address, 1000)),
            ("support_contact", _text_problem(self.support_contact, 254)),
            ("channels", _channels_problem(self.channels)),
            ("policy_name", _policy_name_problem(self.policy_name)),
            ("policy_settings", self._policy_settings_problem()),
            ("channel_settings", _channel_settings_problem(self.channels, self.channel_settings)),
            ("caps", _caps_problem(self.caps)),
            ("max_friends_per_submission", _range_problem(self.max_friends_per_submission, 1, MAX_FRIENDS)),
            ("sms_segment_limit", _range_problem(self.sms_segment_limit, 1, MAX_SMS_SEGMENTS)),
            ("coupon_mode", self._coupon_mode_problem()),
            ("ends_at", _dates_problem(self.starts_at, self.ends_at)),
            ("locales", _locales_problem(self.locales)),
            ("address_form", _choice_problem(self.address_form, tuple(AddressForm))),
            ("phone_region", _region_problem(self.phone_region)),
            ("extra_phone_regions", _regions_problem(self.extra_phone_regions)),
            ("embed_origins", origins_problem(self.embed_origins)),
            ("media_hosts", media_hosts_problem(self.media_hosts)),
            *(
                (f"video_{name}", problem)
                for name, problem in video_problems(self.landing_video, self.media_hosts).items()
            ),
        ]

    def _policy_settings_problem(self) -> str | None:
        if self.policy_name != "custom":
            return None
        justification = str(self.policy_settings.get("justification", "")).strip()
        if len(justification) < MIN_JUSTIFICATION:
            return f"a custom policy needs a written justification of {MIN_JUSTIFICATION} characters or more"
        try:
            policy_for("custom", self.policy_settings)
        except PolicyError as error:
            return str(error)
        return None

    def _coupon_mode_problem(self) -> str | None:
        if self.coupon_mode not in COUPON_MODES:
            return f"choose one of {', '.join(COUPON_MODES)}"
        if self.coupon_mode == "none":
            return None
        try:
            policy = self.policy
        except PolicyError:
            return None  # the policy's own problem is reported on its field
        if not policy.incentives:
            return f"a coupon is an incentive, and the {self.policy_name} policy allows none: coupons must stay off"
        return None


def slug_problem(slug: str) -> str | None:
    """Why this is no slug a new campaign may have (None: it may; whether it is taken is not checked)."""
    if not SLUG.fullmatch(slug):
        return "1 to 64 lower-case letters, digits and hyphens, not starting or ending with a hyphen"
    if slug in RESERVED_SLUGS:
        return f"{slug!r} is reserved; choose another"
    return None


def _text_problem(text: str, limit: int, *, required: bool = False) -> str | None:
    if required and not text.strip():
        return "required"
    if len(text) > limit:
        return f"at most {limit:,} characters"
    if "\x00" in text:
        return "contains a NUL character"
    return None


def _email_problem(email: str) -> str | None:
    if not email:
        return None  # needed only where the policy sends email: checked on activation
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as error:
        return str(error)
    return None


def _normalised_email(email: str) -> str:
    return validate_email(email, check_deliverability=False).normalized if email else ""


def _channels_problem(channels: tuple[str, ...]) -> str | None:
    if not channels:
        return "choose at least one channel"
    known = set(channel_names())
    unknown = sorted(set(channels) - known)
    if unknown:
        return f"unknown channels {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
    if len(set(channels)) != len(channels):
        return "a channel is given twice"
    return None


def _channel_settings_problem(channels: tuple[str, ...], settings: Mapping[str, Any]) -> str | None:
    """Each channel judges its own settings: those of an enabled channel, and any given."""
    known = set(channel_names())
    unknown = sorted(set(settings) - known)
    if unknown:
        return f"settings for unknown channels {', '.join(unknown)}"
    for name in sorted(known & (set(channels) | set(settings))):
        problem = channel_named(name).settings_problem(settings.get(name), enabled=name in channels)
        if problem:
            return problem
    return None


def _policy_name_problem(name: str) -> str | None:
    return None if name in POLICY_NAMES else f"choose one of {', '.join(POLICY_NAMES)}"


def _caps_problem(caps: Mapping[str, int | None]) -> str | None:
    try:
        CapSettings.from_overrides(caps)
    except ValueError as error:
        return str(error)
    return None


def _range_problem(value: int, low: int, high: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return f"a whole number from {low} to {high}"
    return None


def _dates_problem(starts_at: datetime | None, ends_at: datetime | None) -> str | None:
    if any(d is not None and d.tzinfo is None for d in (starts_at, ends_at)):
        return "dates need a time zone"
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        return "the end must come after the start"
    return None


def _locales_problem(locales: tuple[str, ...]) -> str | None:
    try:
        validate_locales(locales)
    except LocaleError as error:
        return str(error)
    return None


def _choice_problem(value: str, choices: tuple[str, ...]) -> str | None:
    return None if value in choices else f"choose one of {', '.join(choices)}"


def _region_problem(region: str | None) -> str | None:
    if region is None:
        return None
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return f"{region!r} is not a region phone numbers are known for (two capital letters, such as NL or BE)"
    return None


def _regions_problem(regions: tuple[str, ...]) -> str | None:
    return next((problem for region in regions if (problem := _region_problem(region))), None)


def _video_settings(settings: Mapping[str, Any]) -> dict[str, str]:
    """The video settings as stored: each one typed, stripped; none without a value."""
    return {name: text for name in VIDEO_SETTINGS if (text := str(settings.get(name) or "").strip())}


def _stored_value(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


# -- create and edit ---------------------------------------------------------------------------------


class ChangeRefused(Exception):
    """A change the campaign's state or its rules do not allow; `reasons` says each thing to fix."""

    def __init__(self, reasons: list[str] | tuple[str, ...]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = tuple(reasons)


class CapRemovalRefused(ChangeRefused):
    """A cap set to no cap by someone who may not, or without a reason: which caps, and whether
    only the reason was missing (a form shows each beside its own field)."""

    def __init__(self, reasons: list[str], caps: tuple[str, ...], *, needs_reason: bool = False) -> None:
        super().__init__(reasons)
        self.caps = caps
        self.needs_reason = needs_reason


def create_campaign(
    db: Database,
    draft: CampaignDraft,
    actor: Actor,
    reason: str = "",
    *,
    channels_without_transport: frozenset[str] = frozenset(),
) -> Campaign:
    """A new campaign, in draft, of the actor's team. Raises ChangeRefused (the slug is taken; a
    custom policy, or a cap removed, by someone who may not; a channel this installation has no
    transport for)."""
    _refuse_channels_without_transport(draft, channels_without_transport)
    _refuse_custom_policy(draft, actor, changed=draft.policy_name == "custom")
    _refuse_cap_removal({}, draft, actor, reason)
    try:
        with db.transaction() as session:
            if session.scalar(select(Campaign.id).where(Campaign.slug == draft.slug)) is not None:
                raise ChangeRefused([f"there is already a campaign {draft.slug!r}"])
            campaign = Campaign(status=CampaignStatus.DRAFT, team=actor.team, **_columns(draft))
            session.add(campaign)
            session.flush()
            record_event(session, campaign.id, actor, EventAction.CREATED, _created_changes(draft), reason)
            return campaign
    except IntegrityError:  # the same slug, created at the same moment
        raise ChangeRefused([f"there is already a campaign {draft.slug!r}"]) from None


def edit_campaign(
    db: Database,
    slug: str,
    draft: CampaignDraft,
    actor: Actor,
    *,
    renderer: TemplateRenderer | None = None,
    reason: str = "",
    now: datetime | None = None,
    channels_without_transport: frozenset[str] = frozenset(),
) -> dict[str, list[Any]]:
    """Save new settings; the changed fields as {field: [old, new]} (empty: nothing changed).
    Raises CampaignNotFound, or ChangeRefused: an ended campaign, a new slug once the campaign
    has been live (its links are out there), a live campaign that would fail activation, or a
    channel this installation has no transport for."""
    _refuse_channels_without_transport(draft, channels_without_transport)
    try:
        with db.transaction() as session:
            campaign = _locked(session, slug)
            changes = _changes(CampaignSettings.of(campaign), draft)
            _refuse_edit(campaign, changes, draft, actor)
            _refuse_cap_removal(campaign.caps or {}, draft, actor, reason)
            if not changes:
                return {}
            for name, value in _columns(draft).items():
                setattr(campaign, name, value)
            if campaign.status == CampaignStatus.ACTIVE:
                # A live campaign stays fit to send: the same checks as when it was activated.
                problems = readiness_problems(campaign, renderer or TemplateRenderer(), now or utcnow())
                if problems:
                    raise ChangeRefused(problems)
            record_event(session, campaign.id, actor, EventAction.EDITED, changes, reason)
            return changes
    except IntegrityError:
        raise ChangeRefused([f"there is already a campaign {draft.slug!r}"]) from None


def _refuse_channels_without_transport(draft: CampaignDraft, unavailable: frozenset[str]) -> None:
    missing = sorted(set(draft.channels) & unavailable)
    if missing:
        raise ChangeRefused(
            [f"this installation has no transport for {', '.join(missing)} (its *_TRANSPORT setting is none)"]
        )


def _refuse_cap_removal(old: Mapping[str, Any], draft: CampaignDraft, actor: Actor, reason: str) -> None:
    """A cap newly set to null (no cap) needs an admin, and a reason for the history."""
    removed = sorted(name for name, value in draft.caps.items() if value is None and old.get(name, 0) is not None)
    if not removed:
        return
    if not actor.may_remove_caps:
        raise CapRemovalRefused(
            [f"Only an admin may remove a cap ({', '.join(removed)}); set a number instead"], tuple(removed)
        )
    if actor.role is not None and not reason.strip():
        raise CapRemovalRefused(
            [f"Removing a cap ({', '.join(removed)}) needs a reason, kept in the campaign's history"],
            tuple(removed),
            needs_reason=True,
        )


def _refuse_edit(campaign: Campaign, changes: Mapping[str, Any], draft: CampaignDraft, actor: Actor) -> None:
    if campaign.status == CampaignStatus.ENDED:
        raise ChangeRefused(["the campaign has ended; it is kept as it ran"])
    if "slug" in changes and campaign.status != CampaignStatus.DRAFT:
        raise ChangeRefused(["the slug cannot change once the campaign has been active: its links are out there"])
    _refuse_custom_policy(
        draft,
        actor,
        changed=draft.policy_name == "custom" and ("policy_name" in changes or "policy_settings" in changes),
    )


def _refuse_custom_policy(draft: CampaignDraft, actor: Actor, *, changed: bool) -> None:
    if changed and not actor.may_set_custom_policy:
        raise ChangeRefused(["only an admin may set a custom consent policy (each rule is compliance's call)"])


def _columns(draft: CampaignDraft) -> dict[str, Any]:
    """The draft as the Campaign model stores it (JSON columns take lists and dicts)."""
    values = asdict(draft)
    for name in ("channels", "locales", "extra_phone_regions", "embed_origins", "media_hosts"):
        values[name] = list(getattr(draft, name))
    return values


def _changes(old: CampaignSettings, new: CampaignSettings) -> dict[str, list[Any]]:
    before, after = old.as_record(), new.as_record()
    return {name: [before[name], after[name]] for name in after if before[name] != after[name]}


def _created_changes(draft: CampaignDraft) -> dict[str, list[Any]]:
    return {name: [None, value] for name, value in draft.as_record().items()}


def _locked(session: Session, slug: str) -> Campaign:
    # Locked, so that two staff saving at once change it one after the other (each sees the
    # other's change as `old` in the history).
    return find_campaign(session, slug, with_templates=True, for_update=True)


# -- states ------------------------------------------------------------------------------------------

TRANSITIONS: Mapping[CampaignStatus, frozenset[CampaignStatus]] = {
    CampaignStatus.DRAFT: frozenset({CampaignStatus.ACTIVE, CampaignStatus.ENDED}),
    CampaignStatus.ACTIVE: frozenset({CampaignStatus.PAUSED, CampaignStatus.ENDED}),
    CampaignStatus.PAUSED: frozenset({CampaignStatus.ACTIVE, CampaignStatus.ENDED}),
    CampaignStatus.ENDED: frozenset(),  # an ended campaign never comes back: its links say so
}


# What may be archived (engine.services.archive): a campaign that is not live. A campaign that
# paused its own sending is live (its page takes forwards, which wait to be sent).
ARCHIVABLE = frozenset({CampaignStatus.DRAFT, CampaignStatus.PAUSED, CampaignStatus.ENDED})


def may_archive(status: str, paused_automatically: bool) -> bool:
    return status in ARCHIVABLE and not paused_automatically


def next_statuses(status: str, paused_automatically: bool = False) -> tuple[CampaignStatus, ...]:
    """Where a campaign in this status may go, in the order the console offers them (a campaign
    that paused its own sending may also be paused by a person, which closes its page)."""
    allowed = TRANSITIONS.get(CampaignStatus(status), frozenset())
    if paused_automatically:
        allowed = allowed | {CampaignStatus.PAUSED}
    return tuple(s for s in CampaignStatus if s in allowed)


def change_status(
    db: Database,
    slug: str,
    status: CampaignStatus,
    actor: Actor,
    reason: str = "",
    *,
    renderer: TemplateRenderer | None = None,
    now: datetime | None = None,
) -> Campaign:
    """Move a campaign to `status` (see TRANSITIONS); activation is checked first
    (readiness_problems) at `now`, the app's clock (the wall clock when not given).
    Raises CampaignNotFound (a LookupError) or ChangeRefused."""
    with db.transaction() as session:
        campaign = _locked(session, slug)
        old = CampaignStatus(campaign.status)
        # A person pausing a campaign that paused its own sending closes its page too.
        taking_over = old is status is CampaignStatus.PAUSED and campaign.paused_automatically
        if status not in TRANSITIONS[old] and not taking_over:
            raise ChangeRefused([_transition_refusal(old, status)])
        if status is CampaignStatus.ACTIVE:
            problems = readiness_problems(campaign, renderer or TemplateRenderer(), now or utcnow())
            if problems:
                raise ChangeRefused(problems)
        campaign.status = status.value
        campaign.status_reason = reason.strip() or None
        campaign.paused_automatically = False
        if old is CampaignStatus.PAUSED and status is CampaignStatus.ACTIVE:
            _clear_account_backoff(session, campaign.id)
        changes = {"status": [old.value, status.value]}
        record_event(session, campaign.id, actor, EventAction.STATUS_CHANGED, changes, reason.strip())
        if status is CampaignStatus.PAUSED:
            paused = {"campaign": campaign.slug, "automatic": False, "reason": campaign.status_reason}
            publish(session, "campaign.paused", paused, now=now)
        return campaign


def _clear_account_backoff(session: Session, campaign_id: int) -> None:
    """Messages held back because the provider refused our account go as soon as a person
    resumes the campaign (having fixed the account), not after the rest of their wait."""
    forwards = select(Forward.id).where(Forward.campaign_id == campaign_id)
    session.execute(
        update(Message)
        .where(
            Message.forward_id.in_(forwards),
            Message.status == MessageStatus.QUEUED,
            Message.fault == "account",
        )
        .values(not_before=None)
        .execution_options(synchronize_session=False)
    )


def _transition_refusal(old: CampaignStatus, new: CampaignStatus) -> str:
    if old == new:
        return f"the campaign is already {old}"
    if old is CampaignStatus.ENDED:
        return "the campaign has ended; an ended campaign never comes back"
    allowed = " or ".join(s.value for s in next_statuses(old))
    return f"a campaign that is {old} cannot become {new}; it can become {allowed}"


def readiness_problems(campaign: Campaign, renderer: TemplateRenderer, now: datetime) -> list[str]:
    """Every reason this campaign may not go live at `now` (empty: it may). Its templates are
    loaded. The policy decides what is needed: who sends, a postal address, what the
    templates print, whether coupons are allowed."""
    try:
        policy = policy_for(campaign.policy_name, campaign.policy_settings)
    except PolicyError as error:
        return [_("the consent policy is invalid: %(error)s", error=str(error))]
    problems = _sender_problems(campaign, policy)
    if campaign.archived_at is not None:
        # Nothing goes live from a list nobody looks at (engine.services.archive).
        problems.insert(0, _("it is archived; take it out of the archive first"))
    if campaign.coupon_mode != "none":
        refusal = coupons_refusal(campaign)
        if refusal:
            problems.append(_("coupons are on: %(refusal)s", refusal=refusal))
    if campaign.ends_at is not None and campaign.ends_at <= now:
        problems.append(_("its end date has passed; set a later one"))
    problems.extend(
        _("templates: %(problem)s", problem=problem) for problem in current_template_problems(renderer, campaign)
    )
    if (campaign.landing_video or {}).get("reveal_form") == REVEAL_AFTER_STEP:
        problems.extend(step_hook_gaps(renderer, campaign_snapshot(campaign), {}))
    return problems


def _sender_problems(campaign: Campaign, policy: ConsentPolicy) -> list[str]:
    """What each channel the policy lets the server send on needs of the campaign first."""
    return [
        problem
        for channel in registered_channels()
        if policy.may_offer(channel.name)
        for problem in channel.activation_problems(campaign, policy)
    ]


# -- what the console shows ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateVersionRow:
    version: int
    created_at: datetime
    current: bool


@dataclass(frozen=True)
class TemplateHistory:
    name: str
    versions: tuple[TemplateVersionRow, ...]  # newest first; none: the default is used


@dataclass(frozen=True)
class HistoryRow:
    at: datetime
    actor: str
    actor_kind: str
    action: str
    changes: Mapping[str, list[Any]]
    reason: str


@dataclass(frozen=True)
class CampaignOverview:
    settings: CampaignSettings
    status: str
    status_reason: str | None
    created_at: datetime
    updated_at: datetime
    next_statuses: tuple[CampaignStatus, ...]
    templates: tuple[TemplateHistory, ...]
    history: tuple[HistoryRow, ...]  # newest first
    archived_at: datetime | None = None
    may_archive: bool = False  # not archived, and not live


def campaign_overview(db: Database, slug: str) -> CampaignOverview:
    """A campaign's settings, status, template versions and history. Raises CampaignNotFound."""
    with db.reading() as session:
        campaign = _with_templates(session, slug)
        events = session.scalars(
            select(CampaignEvent)
            .where(CampaignEvent.campaign_id == campaign.id)
            .order_by(CampaignEvent.at.desc(), CampaignEvent.id.desc())
        )
        return CampaignOverview(
            settings=CampaignSettings.of(campaign),
            status=campaign.status,
            status_reason=campaign.status_reason,
            created_at=campaign.created_at,
            updated_at=campaign.updated_at,
            next_statuses=next_statuses(campaign.status, campaign.paused_automatically),
            templates=_template_histories(campaign),
            history=tuple(HistoryRow(e.at, e.actor, e.actor_kind, e.action, e.changes, e.reason) for e in events),
            archived_at=campaign.archived_at,
            may_archive=campaign.archived_at is None and may_archive(campaign.status, campaign.paused_automatically),
        )


def activation_problems(db: Database, renderer: TemplateRenderer, slug: str, now: datetime | None = None) -> list[str]:
    """What stops the campaign going live at `now` (the wall clock when not given). Raises CampaignNotFound."""
    with db.reading() as session:
        return readiness_problems(_with_templates(session, slug), renderer, now or utcnow())


def _with_templates(session: Session, slug: str) -> Campaign:
    return find_campaign(session, slug, with_templates=True)


def _template_histories(campaign: Campaign) -> tuple[TemplateHistory, ...]:
    current = campaign.current_templates()
    histories = []
    for name in TemplateName:
        versions = sorted((t for t in campaign.templates if t.name == name), key=lambda t: t.version, reverse=True)
        rows = tuple(TemplateVersionRow(t.version, t.created_at, t is current.get(name)) for t in versions)
        histories.append(TemplateHistory(name.value, rows))
    return tuple(histories)
