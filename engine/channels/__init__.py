"""Channels: each way the server may reach a friend (an e-mail, a text message, ...) as one module.

Everything that differs from one channel to the next is decided in that channel's module,
engine/channels/<name>.py, by one object that implements `MessageChannel`; nothing outside
this package decides by a channel's name. The registry below lists them; a campaign chooses
which it enables (`Campaign.channels`), and its consent policy says, per channel, whether the
server may send there (`ConsentPolicy.rules`, one `ChannelRule` per channel name).

What a channel declares
- `name` (what the `channel` columns of messages, forwards, suppressions and consents store)
  and `label` (how a person calls it: "email", "text message"), `contact_noun`
  ("e-mail address", "phone number").
- Contacts: `recognises(text)` (is this typed text one of mine?), `parse(text, region)` (the
  normalised `Contact`, or `InvalidContact`), `identity(value)` (what its contacts are hashed
  as: two channels that reach the same person, a phone number on SMS and on WhatsApp, hash
  the same identity), `masked(value)` (safe to show or log), `disposable(value)`.
- Templates: `templates` (the template files it renders) and `required_elements(policy,
  template_name)` (what each must print under a policy).
- Its rule in the built-in policies: `built_in_rules` ({policy name: ChannelRule}; a policy not
  listed is `never`). Custom policies set it themselves (`channels: {name: rule}`); one stored
  before that read `legacy_policy_key`, when the channel had one.
- What it needs of a campaign before it opens: `activation_problems(campaign, policy)`.
- Its quiet hours: `quiet_window(policy)` (None: any time of day).
- Composing, measuring and sending: `headers(campaign, links, reference)` (what the composer
  adds to a message of this channel), `render(renderer, message)` (the provider-ready outgoing
  value; raises `RenderError`, for instance over its length limit), `mark_as_test(outgoing,
  prefix)` (the console's test send), `cost(outgoing)` (its share of the provider's rate: SMS
  segments), `send(transport, outgoing)` (the provider's id, or a `TransportError`), and
  `concurrent` (its sends may go over a few connections at once). Its transport is
  `transports[name]` (`engine.transports.Transports`).
- The sender's form: `typed_input_problems(renderer, compose, sender_name, note)` says, per
  form field, what the sender typed makes its message unsendable (SMS: its segment limit).
- Campaign settings: `settings_problem(settings, enabled=...)` checks the channel's own part
  of `Campaign.channel_settings` (WhatsApp: its Content Template) before a campaign is saved;
  `settings_fields` (`SettingsField`s, under `settings_heading`) are what the console's
  campaign form offers for them.
- The console's preview and test send: `preview(renderer, message, settings)` shown by the
  template partial `preview_partial`, composed for `preview_contact`; `previewed_always`,
  `message_noun`, `staff_signs_in_with` (a test goes to the staff member's own contact).
- Erasure and upgrades: `spelling_hints(value)`, `mask_quotes(value, text)`, `rehash_needed`.
- Provider events: `provider_address(provider, address)` claims a provider's address (the
  registry's `claiming` asks each channel), `provider_status(status)` maps a provider's status
  word to a message status; `provider_confirms_keywords` (Twilio answers STOP on texts itself).

Each has a default here (nothing to check, nothing to show), so a channel implements only
what it has.

To add a channel: write engine/channels/<name>.py with a `MessageChannel` subclass and an
instance of it named `CHANNEL`; add the module to `BUILT_IN_MODULES`; give it its templates and
a transport in the runtime's `Transports`. A test suite may `register` one of its own.
"""

from __future__ import annotations

import importlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from flask_babel import gettext

if TYPE_CHECKING:
    from engine.contacts import Contact
    from engine.policy import ConsentPolicy, RequiredElement
    from engine.quiet_hours import Window
    from engine.rendering import TemplateRenderer, Translations

# The registry line: the channels that ship with Fluister, in the order forms offer them.
BUILT_IN_MODULES: tuple[str, ...] = ("engine.channels.email", "engine.channels.sms", "engine.channels.whatsapp")


class ChannelRule(StrEnum):
    """What a consent policy lets the server send on a channel."""

    NEVER = "never"  # only a share link from the consumer's own device
    WITH_CONSENT = "with_consent"  # only to contacts with the friend's own recorded consent
    ALLOWED = "allowed"  # to anyone the sender names (custom policies need a justification)


class ContactKind(StrEnum):
    """What a channel's contacts are, as the forward form speaks of them: its labels and hints
    name the kinds of contact the campaign's channels reach, not the channels."""

    EMAIL_ADDRESS = "email address"
    PHONE_NUMBER = "phone number"
    OTHER = "other"


class UnknownChannel(KeyError):
    """No channel of that name is registered."""


@dataclass(frozen=True)
class CampaignSending:
    """What a campaign sends with in one of its languages, resolved once per batch and carried
    with it: its policy as it is now, its template sources for that language, its sender, its
    per-channel settings, and the language's catalogue."""

    campaign_id: int
    policy: ConsentPolicy
    brand_name: str
    sender_email: str
    sources: Mapping[str, str]
    # What every message of the campaign may print (engine.services.campaigns.campaign_context).
    context: Mapping[str, Any]
    sms_segment_limit: int = 1
    sms_smart_encoding: bool = True
    # Per channel name, that channel's own campaign settings (a template id, a variable map).
    channel_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # The language its messages are written in here (one of the campaign's locales: what
    # Content-Language says), and the catalogue its templates' {% trans %} read (None: the
    # source text, English): engine.services.composer.
    locale: str = "en"
    translations: Translations | None = None


def _shown(value: Any) -> str:
    return "" if value is None else str(value)


def _stripped(text: str) -> Any:
    return text.strip()


@dataclass(frozen=True)
class SettingsField:
    """One of a channel's own campaign settings as the console's campaign form offers it: the
    form field `<channel>_<key>`, stored as `Campaign.channel_settings[channel][key]`."""

    key: str
    label: str
    help: str = ""
    multiline: bool = False
    # Left blank, an optional setting is not stored at all (the channel reads its absence).
    optional: bool = False
    # The stored value as the form shows it, and the typed text as stored (ValueError: why not).
    format: Callable[[Any], str] = _shown
    parse: Callable[[str], Any] = _stripped


@dataclass(frozen=True)
class MessageLinks:
    """The links a message carries: the friend's tracked link and their unsubscribe link, and
    the List-Unsubscribe header value for channels that carry headers."""

    forward: str
    unsubscribe: str
    list_unsubscribe: str = ""


@dataclass(frozen=True)
class ComposedMessage:
    """One message to one recipient, as the composer builds it: everything a channel needs to
    render and send it (engine.composer.compose)."""

    channel: str
    to: str
    campaign: CampaignSending
    # What the templates may print: the campaign's values and this recipient's own.
    context: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    # Our message's public id: lets provider events find their message, and is no personal data.
    reference: str = ""


class MessageChannel(ABC):
    """One channel. Subclass it, set the class attributes, implement the abstract methods."""

    name: ClassVar[str]
    label: ClassVar[str]
    # What its contacts are called: "e-mail address", "phone number".
    contact_noun: ClassVar[str] = "contact"
    # What the forward form calls its contacts (engine.web.public.forms words each set of them).
    contact_kind: ClassVar[ContactKind] = ContactKind.OTHER
    templates: ClassVar[tuple[str, ...]] = ()
    built_in_rules: ClassVar[Mapping[str, ChannelRule]] = {}
    # The key of its rule in custom policies stored before rules were kept per channel.
    legacy_policy_key: ClassVar[str | None] = None
    # Whether its sends may go over several connections at once (most of a send is waiting).
    concurrent: ClassVar[bool] = False
    # How a message of it is called in a sentence ("Test e-mail sent to ...").
    message_noun: ClassVar[str] = ""
    # The console's preview: the template partial that shows `preview()` (None: not previewed),
    # whether it is shown for campaigns that do not enable the channel (its templates exist in
    # every campaign), and whom a preview is composed for: nobody.
    preview_partial: ClassVar[str | None] = None
    previewed_always: ClassVar[bool] = False
    preview_contact: ClassVar[str] = ""
    # Whether its contacts are what staff sign in with, so that a staff member's test goes to
    # their own (e-mail); other tests go only to the listed test numbers.
    staff_signs_in_with: ClassVar[bool] = False
    # Whether older versions hashed its contacts differently (`legacy_identity`), so that the
    # held contacts of this channel are rehashed on upgrade (engine.services.identities).
    rehash_needed: ClassVar[bool] = False
    # Whether its provider answers the opt-out and opt-in words of its own list itself (and
    # then blocks a reply of ours to an opted-out contact): Twilio does on texts, not on
    # WhatsApp. Our keyword confirmations (engine.services.keyword_replies) go where it does not.
    provider_confirms_keywords: ClassVar[bool] = False
    # How a referrer proves a contact of it is theirs: a one-time code they type back (a phone
    # shows it beside the page) or, when False, a signed link they open.
    confirms_by_code: ClassVar[bool] = False
    # Whether referrers may confirm a contact of it at all (WhatsApp may not: a business
    # message there must be a template the provider approved beforehand).
    confirms_referrers: ClassVar[bool] = False

    # -- contacts ------------------------------------------------------------------------

    @abstractmethod
    def recognises(self, text: str) -> bool:
        """Whether typed text (stripped, non-empty) is meant as one of this channel's contacts."""

    @abstractmethod
    def parse(self, text: str, region: str) -> Contact:
        """The normalised contact; `engine.contacts.InvalidContact` saying why it is not one."""

    def identity(self, value: str) -> str:
        """What a contact's hash is taken of: the person, not the spelling."""
        return f"{self.name}:{value}"

    def legacy_identity(self, value: str) -> str | None:
        """What older versions hashed, when that differs from `identity`."""
        return None

    def masked(self, value: str) -> str:
        """A form safe to show back to the sender or put in a log."""
        return f"{value[:3]}****{value[-2:]}"

    def shown(self, value: str, region: str) -> str:
        """A contact as people of `region` write it, to show it back on a page."""
        return value

    # -- what the forward form says about its contacts, in the reader's language --------------
    # Whole sentences per channel: a channel's name dropped into a sentence reads wrong in Dutch
    # and French.

    def not_offered_problem(self, position: int) -> str:
        return gettext("Friend %(position)s: this offer can't be sent that way.", position=position)

    def own_contact_problem(self, position: int) -> str:
        return gettext("Friend %(position)s: that is your own contact.", position=position)

    def disposable(self, value: str) -> bool:
        """A contact at a throwaway service: a favourite of whoever abuses send-to-friend forms."""
        return False

    # -- policy --------------------------------------------------------------------------

    def required_elements(self, policy: ConsentPolicy, template_name: str) -> tuple[RequiredElement, ...]:
        """What this channel's template must print under the policy (asked only when the
        policy lets the server send on this channel)."""
        return ()

    def activation_problems(self, campaign: Any, policy: ConsentPolicy) -> list[str]:
        """What a campaign (an `engine.models.Campaign`) lacks for this channel before it may
        open under a policy that lets the server send on it; each problem a short sentence."""
        return []

    def quiet_window(self, policy: ConsentPolicy) -> Window | None:
        """When its messages may arrive, in the recipient's local time; None: at any time."""
        return None

    # -- composing, measuring, sending -----------------------------------------------------

    def headers(self, campaign: CampaignSending, links: MessageLinks, reference: str) -> dict[str, str]:
        """The headers the composer gives a message of this channel."""
        return {}

    @abstractmethod
    def render(self, renderer: TemplateRenderer, message: ComposedMessage) -> Any:
        """The outgoing value its transport takes; raises `RenderError` when it cannot be made."""

    def typed_input_problems(
        self, renderer: TemplateRenderer, compose: Callable[[str, str], ComposedMessage], sender_name: str, note: str
    ) -> dict[str, list[str]]:
        """What the sender typed on the form (their name, a note) makes a message of this
        channel unsendable, per form field; empty: nothing. `compose(sender_name, note)` is the
        campaign's message to one of the friends, with links as long as real ones."""
        return {}

    # -- the console's preview and test send -----------------------------------------------

    def preview(self, renderer: TemplateRenderer, message: ComposedMessage, settings: Any) -> Any:
        """What the console's preview shows of a message (`settings`: the installation's, for
        figures such as a price), shown by the template partial `preview_partial`; it may list
        `problems` (lines shown with the render errors). Raises `RenderError` as `render` does."""
        return None

    def mark_as_test(self, outgoing: Any, prefix: str) -> Any:
        """The outgoing value marked as a staff member's test (`prefix` where the recipient sees
        it first), with no reference: a test is no message of ours."""
        return outgoing

    def cost(self, outgoing: Any) -> int:
        """Its share of the provider's rate."""
        return 1

    def notice(
        self, to: str, *, subject: str, text: str, brand: str, sender_email: str, postal_address: str, reference: str
    ) -> Any:
        """A short plain message of the brand to one person of this channel who asked for it
        (a referrer's reward code): what `send` takes, or None when this channel has no such
        message (WhatsApp sends approved templates only)."""
        return None

    @abstractmethod
    def send(self, transport: Any, outgoing: Any) -> str:
        """Hand it to the provider: the provider's id, or a `TransportError`."""

    # -- campaign settings ---------------------------------------------------------------

    # Its own settings on the console's campaign form, under a heading and an introduction;
    # none: the form shows nothing of it.
    settings_fields: ClassVar[tuple[SettingsField, ...]] = ()
    settings_heading: ClassVar[str] = ""
    settings_intro: ClassVar[str] = ""

    def settings_problem(self, settings: Mapping[str, Any] | None, *, enabled: bool) -> str | None:
        """Why this channel's own campaign settings (`Campaign.channel_settings[name]`) cannot
        be saved, or None; `enabled`: whether the campaign enables the channel."""
        return None

    # -- erasure -------------------------------------------------------------------------

    def spelling_hints(self, value: str) -> tuple[str, ...]:
        """Lowercase fragments that every spelling of this contact contains: what a search of
        stored text (outbox copies, notes) narrows on before `mask_quotes` reads it."""
        return (value.lower(),)

    def mask_quotes(self, value: str, text: str) -> str:
        """`text` with every quote of the contact, in any spelling a person or a provider may
        write it, replaced by its masked form (erasure; a provider's error quoting it)."""
        return re.compile(re.escape(value), re.IGNORECASE).sub(lambda _: self.masked(value), text)

    # -- provider events -----------------------------------------------------------------

    def provider_address(self, provider: str, address: str) -> str | None:
        """The contact (as `parse` takes it) when this channel claims an address as a provider
        writes it in its webhooks (Twilio's `From`), else None."""
        return None

    def provider_status(self, status: str) -> str | None:
        """The message status (a `MessageStatus` value) a provider's status word means, if any."""
        return None


_registry: dict[str, MessageChannel] = {}
_loaded = False


def _load_built_ins() -> None:
    # On first use, not at import: importing this package has no side effects.
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILT_IN_MODULES:
        register(importlib.import_module(module).CHANNEL)


def register(channel: MessageChannel) -> MessageChannel:
    """Add a channel (again: replace the one of that name). Returns it."""
    _load_built_ins()
    _registry[channel.name] = channel
    return channel


def unregister(name: str) -> None:
    """Remove a channel (a test's own)."""
    _load_built_ins()
    _registry.pop(name, None)


def channel(name: str) -> MessageChannel:
    """The channel of that name; `UnknownChannel` when none is registered."""
    _load_built_ins()
    try:
        return _registry[str(name)]
    except KeyError:
        raise UnknownChannel(name) from None


def registered() -> tuple[MessageChannel, ...]:
    """Every registered channel, built-ins first."""
    _load_built_ins()
    return tuple(_registry.values())


def names() -> tuple[str, ...]:
    return tuple(c.name for c in registered())


def contact_kinds(enabled: Iterable[str]) -> frozenset[ContactKind]:
    """The kinds of contact the `enabled` channels reach (names not registered are left out)."""
    wanted = set(enabled)
    return frozenset(c.contact_kind for c in registered() if c.name in wanted)


def recognising(text: str, enabled: Iterable[str] | None = None) -> MessageChannel | None:
    """The channel, among `enabled` (all registered when None) in their registry order, that
    recognises this typed text as one of its contacts."""
    wanted = None if enabled is None else set(enabled)
    for candidate in registered():
        if (wanted is None or candidate.name in wanted) and candidate.recognises(text):
            return candidate
    return None


def claiming(provider: str, address: str) -> tuple[MessageChannel, str] | None:
    """The registered channel that claims a provider's address (Twilio writes a WhatsApp
    sender as `whatsapp:+E164`, a text's as the bare number), with the contact it names."""
    for candidate in registered():
        contact = candidate.provider_address(provider, address)
        if contact is not None:
            return candidate, contact
    return None


def by_template(template_name: str) -> MessageChannel | None:
    """The channel that renders this template file, if any."""
    for candidate in registered():
        if template_name in candidate.templates:
            return candidate
    return None


def shown_name(name: str) -> str:
    """A forward's channel as the console shows it: a registered channel by its own name, and any
    other source (a share button's `share-whatsapp`, the printed QR code's `share-qr`, `direct`)
    as it is stored. A code, the same in every language, as the records and filters write it."""
    try:
        return channel(name).name
    except UnknownChannel:
        return name
