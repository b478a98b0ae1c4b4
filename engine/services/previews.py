"""Preview a campaign's messages as they will be sent, and send a test to the marketer's own address.

The preview renders the campaign's current templates the way the delivery service does (the
same sandbox, CSS inlined, the text part, the SMS after smart encoding) with sample data a
marketer may edit, and example links that lead nowhere (`example.invalid`): a preview never
signs a real tracked or unsubscribe link. What does not render is listed, never raised.

A test send puts that rendering through the runtime's real transports, but only to the
signed-in person's own e-mail address, or to a number listed in `TEST_SMS_NUMBERS`: the send-
to-friend form must never become a relay, and neither may the console, whatever the role of
whoever signs in (an account can be stolen). Test sends are rate-limited per person, marked
"[Test] ", write no forward or message row, and are logged without the address.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from engine.caps import CapsUnavailable, Rule
from engine.channels import CampaignSending, ComposedMessage, MessageLinks, registered
from engine.channels import channel as channel_named
from engine.contacts import Contact, InvalidContact, parse_contact
from engine.db import Database
from engine.ids import new_public_id
from engine.models import Campaign, TemplateName
from engine.policy import BUILT_IN, ConsentPolicy, PolicyError, policy_for
from engine.rendering import RenderError, TemplateRenderer, default_templates
from engine.services.composer import campaign_sending, compose, language_values
from engine.services.coupons import CouponMode, code_problem, coupons_refusal
from engine.services.lookups import find_campaign
from engine.services.staff import StaffError, StaffMember, normalise_email
from engine.services.suppression import suppressed_hashes
from engine.services.template_context import LANDING_VALUES, campaign_context

# The limits of the send-to-friend form: a sample is something a sender could have typed.
from engine.text import NAME_MAX, NOTE_MAX, text_problem
from engine.transports import TransportError

if TYPE_CHECKING:
    from config import Settings
    from engine.runtime import Runtime

log = logging.getLogger(__name__)

T = TypeVar("T")
HOUR = timedelta(hours=1)
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")

# Clearly fake (RFC 2606 reserves .invalid): a preview never signs a real link.
EXAMPLE_LINK = "https://example.invalid/a-friends-personal-link"
EXAMPLE_UNSUBSCRIBE_LINK = "https://example.invalid/their-unsubscribe-link"
TEST_PREFIX = "[Test] "

# A person sends at most this many tests an hour: enough to check a change, too few to spam with.
TEST_SENDS_PER_HOUR = 10


# -- sample data --------------------------------------------------------------------------------


class InvalidSample(ValueError):
    """Sample data a sender could not have typed; `problems` maps each field to why."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in problems.items()))
        self.problems = problems


@dataclass(frozen=True)
class SampleData:
    """What a sender types (their name, a note) and the friend's coupon code, for a preview.

    Held to the public form's limits, so that a preview never shows what no real message
    could contain. An empty note or code is valid: it is how a message without them looks.
    """

    sender_name: str = "Alexandra van den Berg"
    note: str = "Thought of you when I saw this, see you Saturday!"
    coupon_code: str = "SAMPLE-7K3M9QX2HT"
    # The sender's language, one of the campaign's (empty: its default): the messages are
    # previewed as a friend of a sender who used it gets them.
    locale: str = ""

    def __post_init__(self) -> None:
        problems = {
            name: problem
            for name, problem in (
                ("sender_name", _name_problem(self.sender_name)),
                ("note", _plain_text_problem("The note", self.note, NOTE_MAX, allow_newlines=True)),
                ("coupon_code", code_problem(self.coupon_code) if self.coupon_code else None),
                (
                    "locale",
                    None if not self.locale or _LANGUAGE.match(self.locale) else "Choose one of the languages listed.",
                ),
            )
            if problem
        }
        if problems:
            raise InvalidSample(problems)

    def message_values(self, *, gives_codes: bool) -> dict[str, str]:
        """The recipient's own values of a message and its (example) links, as the composer
        puts them in its context (engine.services.composer.compose)."""
        return {
            "sender_name": self.sender_name,
            "note": self.note,
            "link": EXAMPLE_LINK,
            "unsubscribe_link": EXAMPLE_UNSUBSCRIBE_LINK,
            # A campaign without coupons prints none, whatever the sample says: as it will be sent.
            "coupon_code": self.coupon_code if gives_codes else "",
        }


def _name_problem(name: str) -> str | None:
    if not name.strip():
        return "Enter a sender name: every message names who sent it."
    return _plain_text_problem("The sender name", name, NAME_MAX, allow_newlines=False)


def _plain_text_problem(kind: str, value: str, max_length: int, *, allow_newlines: bool) -> str | None:
    # As the send-to-friend form refuses them in names and notes (engine.text).
    if len(value) > max_length:
        return f"{kind} can be at most {max_length} characters (the form's limit)."
    return text_problem(kind, value, allow_newlines=allow_newlines, in_subject=not allow_newlines)


# -- the preview ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelShown:
    """One channel's part of the preview: its preview object (None: it did not render) and
    the template partial that shows it."""

    channel: str
    label: str
    partial: str
    preview: Any


@dataclass(frozen=True)
class CampaignPreview:
    slug: str
    name: str
    brand_name: str
    policy_name: str
    sample: SampleData
    gives_codes: bool
    # Each previewed channel's part, in the registry's order.
    channels: tuple[ChannelShown, ...]
    landing_html: str | None
    errors: tuple[str, ...] = field(default=())
    # The language shown, and the campaign's languages (its default first) to switch between.
    locale: str = "en"
    locales: tuple[str, ...] = ("en",)
    # Why the sample's language cannot be shown (one the campaign does not speak): the
    # default language is shown instead.
    locale_problem: str | None = None

    def of(self, channel: str) -> Any:
        """The preview of that channel, if it is shown and rendered."""
        return next((shown.preview for shown in self.channels if shown.channel == channel), None)


@dataclass(frozen=True)
class _CampaignView:
    """What a preview reads of a campaign, loaded once and used outside the transaction."""

    slug: str
    name: str
    brand_name: str
    policy_name: str
    context: dict[str, str]
    gives_codes: bool
    campaign_id: int
    channels: tuple[str, ...]
    # What the composer builds its messages from, as delivery does, in the language shown.
    sending: CampaignSending
    locales: tuple[str, ...] = ("en",)


def preview_campaign(
    db: Database,
    renderer: TemplateRenderer,
    slug: str,
    sample: SampleData,
    *,
    settings: Settings | None = None,
    unsubscribe_mailto: str | None = None,
) -> CampaignPreview:
    """Every part of the campaign's messages and landing page, rendered with `sample` as they
    will be sent; each part that fails is left out and its reason listed. Raises CampaignNotFound."""
    campaign = _load(db, slug, sample.locale or None, settings.public_base_url if settings else "")
    locale_problem = None
    if sample.locale and sample.locale not in campaign.locales:
        locale_problem = (
            f"This campaign does not speak {sample.locale!r}; its languages are {', '.join(campaign.locales)}. "
            f"Shown in {campaign.sending.locale}."
        )
    errors: list[str] = []
    shown = []
    for channel in registered():
        if channel.preview_partial is None:
            continue
        if not (channel.previewed_always or channel.name in campaign.channels):
            continue
        composed = _compose(campaign, sample, Contact(channel.name, channel.preview_contact), unsubscribe_mailto)
        previewed = _attempt(errors, partial(channel.preview, renderer, composed, settings))
        errors.extend(getattr(previewed, "problems", ()))
        shown.append(ChannelShown(channel.name, channel.label, channel.preview_partial, previewed))
    landing = _attempt(
        errors,
        lambda: renderer.render(
            TemplateName.LANDING,
            campaign.sending.sources[TemplateName.LANDING],
            {**campaign.context, **language_values(campaign.sending), **LANDING_VALUES},
        ),
    )
    return CampaignPreview(
        slug=campaign.slug,
        name=campaign.name,
        brand_name=campaign.brand_name,
        policy_name=campaign.policy_name,
        sample=sample,
        gives_codes=campaign.gives_codes,
        channels=tuple(shown),
        landing_html=landing,
        errors=tuple(errors),
        locale=campaign.sending.locale,
        locales=campaign.locales,
        locale_problem=locale_problem,
    )


def _load(db: Database, slug: str, locale: str | None, public_base_url: str) -> _CampaignView:
    """The campaign as a preview reads it, its messages in `locale` (when it speaks it), its
    logo served from `public_base_url` (as a friend's e-mail shows it)."""
    with db.reading() as session:
        # Any campaign, drafts and paused ones too: staff check templates before a campaign opens.
        campaign = find_campaign(session, slug, with_templates=True, with_logo=True)
        return _CampaignView(
            slug=campaign.slug,
            name=campaign.name,
            brand_name=campaign.brand_name,
            policy_name=campaign.policy_name,
            context=campaign_context(campaign, public_base_url),
            gives_codes=campaign.coupon_mode != CouponMode.NONE and coupons_refusal(campaign) is None,
            campaign_id=campaign.id,
            channels=tuple(campaign.channels),
            sending=campaign_sending(
                campaign, default_templates(), _policy_of(campaign), locale, public_base_url=public_base_url
            ),
            locales=tuple(campaign.locales or ("en",)),
        )


def _policy_of(campaign: Campaign) -> ConsentPolicy:
    # A draft's policy may not be valid yet; its templates are shown all the same, and no
    # rendering depends on the policy.
    try:
        return policy_for(campaign.policy_name, campaign.policy_settings)
    except PolicyError:
        return BUILT_IN["share-only"]


def _attempt(errors: list[str], render: Callable[[], T]) -> T | None:
    """`render()`, or None with its reason added to `errors`: a broken template is something to
    show the marketer, not a server error."""
    try:
        return render()
    except RenderError as error:
        errors.append(str(error))
    except Exception as error:  # a template that breaks the renderer itself: still shown, and logged
        log.exception("preview: rendering failed unexpectedly")
        errors.append(f"the template could not be rendered: {type(error).__name__}: {error}")
    return None


def _compose(
    campaign: _CampaignView, sample: SampleData, recipient: Contact, unsubscribe_mailto: str | None
) -> ComposedMessage:
    """The message as the composer builds it for a friend, with the sample's values and the
    example links (and a fresh message id) in place of signed ones."""
    reference = new_public_id()
    list_unsubscribe = f"<{EXAMPLE_UNSUBSCRIBE_LINK}>"
    if unsubscribe_mailto:
        list_unsubscribe += f", <mailto:{unsubscribe_mailto}?subject=unsubscribe%20{reference}>"
    links = MessageLinks(EXAMPLE_LINK, EXAMPLE_UNSUBSCRIBE_LINK, list_unsubscribe)
    values = sample.message_values(gives_codes=campaign.gives_codes)
    return compose(campaign.sending, recipient, values, links, reference)


# -- the test send --------------------------------------------------------------------------------


class TestSendRefused(Exception):
    """A test send that was not made; str() says why, for the marketer."""

    __test__ = False  # not a pytest test class, whatever its name


class TestSendFailed(Exception):
    """The provider did not take the test message; str() says what it answered."""

    __test__ = False


@dataclass(frozen=True)
class TestSendReceipt:
    __test__ = False

    channel: str
    shown_recipient: str  # masked: the page and the log never repeat the address in full
    provider_id: str


def send_test(
    runtime: Runtime,
    slug: str,
    member: StaffMember,
    to: str,
    sample: SampleData,
    *,
    channel: str | None = None,
) -> TestSendReceipt:
    """Send the campaign's email or text, rendered with `sample` and marked as a test, to `to`
    through the real transports, if `to` is the member's own address or a listed test number.
    Nothing is written to the database. Raises CampaignNotFound, TestSendRefused, TestSendFailed."""
    recipient = _allowed_recipient(runtime, member, to, channel)
    campaign = _load(runtime.db, slug, sample.locale or None, runtime.settings.public_base_url)
    _refuse_if_suppressed(runtime, campaign, recipient)
    chosen = channel_named(recipient.channel)
    composed = _compose(campaign, sample, recipient, runtime.settings.unsubscribe_mailto)
    try:
        # Checked as the real message: the prefix may cost a text a segment more.
        outgoing = chosen.mark_as_test(chosen.render(runtime.renderer, composed), TEST_PREFIX)
    except RenderError as error:
        raise TestSendRefused(f"The {chosen.label} does not render, so nothing was sent: {error}") from None
    # Taken only now: a refused or unrenderable test costs nothing of the hour's allowance.
    _take_allowance(runtime, member)
    try:
        provider_id = chosen.send(runtime.transports[chosen.name], outgoing)
    except TransportError as error:
        reason = _without(str(error), recipient)
        log.warning("test %s of campaign %s by staff %s failed: %s", recipient.channel, slug, member.id, reason)
        raise TestSendFailed(reason) from None
    except Exception as error:  # not a provider's answer; its text may quote the address, so masked
        reason = _without(f"{type(error).__name__}: {error}", recipient)
        log.error("test %s of campaign %s by staff %s: unexpected %s", recipient.channel, slug, member.id, reason)
        raise TestSendFailed(reason) from None
    log.info("test %s of campaign %s sent by staff %s", recipient.channel, slug, member.id)
    return TestSendReceipt(recipient.channel, recipient.masked(), provider_id)


def _allowed_recipient(runtime: Runtime, member: StaffMember, to: str, channel: str | None) -> Contact:
    if member.kind != "user":
        raise TestSendRefused("Test messages go to a person's own address: sign in to send one.")
    try:
        enabled = [channel] if channel is not None else None
        recipient = parse_contact(to, runtime.settings.default_phone_region, enabled)
    except InvalidContact as error:
        raise TestSendRefused(f"That is neither an e-mail address nor a phone number ({error}).") from None
    if channel is not None and recipient.channel != channel:
        noun = channel_named(channel).contact_noun
        wanted = f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"
        raise TestSendRefused(f"A test {channel} goes to {wanted}.")
    chosen = channel_named(recipient.channel)
    if chosen.staff_signs_in_with:
        own = _own_address(member)
        if own is None or recipient.value.lower() != own.lower():
            raise TestSendRefused(
                "A test e-mail goes only to your own address, the one you sign in with: "
                "the console never sends a campaign to anyone else."
            )
        # The account's own spelling, not the one typed: the test goes exactly where sign-in mail would.
        recipient = Contact(chosen.name, own)
    # A number has no proof of ownership, whichever channel reaches it: only the listed ones.
    if not chosen.staff_signs_in_with and recipient.value not in runtime.settings.test_sms_numbers:
        raise TestSendRefused(
            "A test text goes only to a number listed in TEST_SMS_NUMBERS: ask an administrator to add yours."
        )
    return recipient


def _own_address(member: StaffMember) -> str | None:
    try:
        return normalise_email(member.name)
    except StaffError:
        return None


def _refuse_if_suppressed(runtime: Runtime, campaign: _CampaignView, recipient: Contact) -> None:
    # An opt-out is honoured even for a staff member's own test: it is what they asked for.
    with runtime.db.reading() as session:
        contact_hash = runtime.hasher.hash(recipient)
        if suppressed_hashes(session, campaign.campaign_id, recipient.channel, [contact_hash]):
            raise TestSendRefused(
                f"{recipient.masked()} has opted out of this campaign's {recipient.channel} messages, "
                "so no test goes there."
            )


def _take_allowance(runtime: Runtime, member: StaffMember) -> None:
    rule = Rule("test sends per staff member", f"test-send:member:{member.id}", TEST_SENDS_PER_HOUR, HOUR)
    try:
        decision = runtime.limiter.acquire([rule])
    except CapsUnavailable:
        log.exception("test send refused: the limit cannot be checked")
        raise TestSendRefused("Test sends are not possible right now (their limit cannot be checked).") from None
    if not decision.allowed:
        minutes = max(1, math.ceil(decision.retry_after.total_seconds() / 60)) if decision.retry_after else 60
        raise TestSendRefused(
            f"You have sent {TEST_SENDS_PER_HOUR} test messages in the last hour, the limit. "
            f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
        )


def _without(error: str, recipient: Contact) -> str:
    """Providers quote the address in their errors; the log and the page get the masked form."""
    return error.replace(recipient.value, recipient.masked())
