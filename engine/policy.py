"""Consent policies: per campaign, the rules on what the server may send and keep.

The table in docs/policies.md, as data. A policy answers questions ("may the server
send this friend an SMS?"); services act on the answers and record on every
message which policy, at which version, allowed it. The legal background is there too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import time
from enum import StrEnum
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext

from engine.channels import ChannelRule, MessageChannel, by_template, registered
from engine.quiet_hours import DEFAULT_WINDOW, Window


class Retention(StrEnum):
    NOTHING = "nothing"  # the friend's contact is never stored
    PURGE_AFTER_SEND = "purge_after_send"  # hash only once the message has gone
    DAYS_AFTER_SEND = "days_after_send"  # kept for `retention_days` after the send


class PolicyError(ValueError):
    """A custom policy's settings are incomplete or contradictory."""


@dataclass(frozen=True)
class ConsentPolicy:
    name: str
    version: int
    incentives: bool
    retention: Retention
    # Per channel name, what the server may send there; a channel not in it is `never`.
    rules: Mapping[str, ChannelRule] = field(default_factory=dict)
    retention_days: int = 0
    justification: str = ""
    # When server-sent texts may arrive, in the recipient's local time (TCPA: 08:00-21:00).
    sms_window: Window = DEFAULT_WINDOW
    # The sender sees the whole message before it goes (ACM: "the sender can preview it").
    preview_required: bool = False

    def rule(self, channel: str) -> ChannelRule:
        return self.rules.get(str(channel), ChannelRule.NEVER)

    def server_sends(self, channel: str, *, has_consent: bool = False) -> bool:
        """Whether the server may send this channel to a friend."""
        rule = self.rule(channel)
        return rule is ChannelRule.ALLOWED or (rule is ChannelRule.WITH_CONSENT and has_consent)

    def may_offer(self, channel: str) -> bool:
        """Whether the form may take friends on this channel: the server sends to some of them
        (under `with_consent`, those whose own consent is on record; the rest are held back)."""
        return self.rule(channel) is not ChannelRule.NEVER

    def needs_consent(self, channel: str) -> bool:
        return self.rule(channel) is ChannelRule.WITH_CONSENT

    @property
    def keeps_contact(self) -> bool:
        return self.retention is not Retention.NOTHING

    @property
    def purges_contact_on_send(self) -> bool:
        return self.retention is Retention.PURGE_AFTER_SEND


# What the built-in policies are besides their channel rules; each channel declares its own
# rule in each of them (`MessageChannel.built_in_rules`), so that adding a channel adds its rule.
_BUILT_IN_BASES: Mapping[str, ConsentPolicy] = {
    "us": ConsentPolicy(name="us", version=1, incentives=True, retention=Retention.DAYS_AFTER_SEND, retention_days=30),
    "eu-strict": ConsentPolicy(
        name="eu-strict", version=1, incentives=False, retention=Retention.PURGE_AFTER_SEND, preview_required=True
    ),
    "share-only": ConsentPolicy(name="share-only", version=1, incentives=True, retention=Retention.NOTHING),
}


def _rules_in(policy_name: str, channels: tuple[MessageChannel, ...]) -> dict[str, ChannelRule]:
    return {c.name: c.built_in_rules[policy_name] for c in channels if policy_name in c.built_in_rules}


class _BuiltInPolicies(Mapping[str, ConsentPolicy]):
    """The built-in policies, with the rules of the channels registered when first asked for
    (and again whenever the registry has changed since)."""

    def __init__(self) -> None:
        self._built: dict[str, ConsentPolicy] = {}
        self._for: tuple[int, ...] = ()

    def _policies(self) -> dict[str, ConsentPolicy]:
        channels = registered()
        key = tuple(id(c) for c in channels)
        if key != self._for:
            self._built = {
                name: replace(
                    base, rules={c.name: c.built_in_rules[name] for c in channels if name in c.built_in_rules}
                )
                for name, base in _BUILT_IN_BASES.items()
            }
            self._for = key
        return self._built

    def __getitem__(self, name: str) -> ConsentPolicy:
        return self._policies()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(_BUILT_IN_BASES)

    def __len__(self) -> int:
        return len(_BUILT_IN_BASES)


BUILT_IN: Mapping[str, ConsentPolicy] = _BuiltInPolicies()

POLICY_NAMES = (*_BUILT_IN_BASES, "custom")


def policy_for(name: str, settings: Mapping[str, Any] | None = None) -> ConsentPolicy:
    """The policy a campaign names; `custom` is built from the campaign's own settings."""
    if name in _BUILT_IN_BASES:
        return BUILT_IN[name]
    if name != "custom":
        raise PolicyError(f"unknown consent policy {name!r}; choose one of {', '.join(POLICY_NAMES)}")
    return _custom_policy(settings or {})


def _window(hours: Any) -> Window:
    """`sms_hours: [8, 21]` in a custom policy; the TCPA window when it says nothing."""
    if hours is None:
        return DEFAULT_WINDOW
    start, end = (int(h) for h in hours)
    if not 0 <= start < end <= 24:
        raise ValueError("sms_hours must be [start, end] with 0 <= start < end <= 24")
    return Window(time(start), time(23, 59, 59) if end == 24 else time(end))


def _old_rule(value: Any) -> ChannelRule:
    # A yes or no in the old keys of some channels (e-mail), a rule already in others.
    if isinstance(value, bool):
        return ChannelRule.ALLOWED if value else ChannelRule.NEVER
    return ChannelRule(value)


def _custom_rules(settings: Mapping[str, Any]) -> dict[str, ChannelRule]:
    """`channels: {"email": "allowed", "sms": "with_consent"}`. A campaign stored before rules
    were kept per channel has one key per channel instead (`MessageChannel.legacy_policy_key`),
    still read, every one of them required, so that it keeps its policy."""
    if "channels" in settings:
        given = settings["channels"]
        if not isinstance(given, Mapping):
            raise ValueError("channels must map each channel's name to its rule")
        return {str(name): ChannelRule(rule) for name, rule in given.items()}
    return {c.name: _old_rule(settings[c.legacy_policy_key]) for c in registered() if c.legacy_policy_key}


def _custom_policy(settings: Mapping[str, Any]) -> ConsentPolicy:
    justification = str(settings.get("justification", "")).strip()
    if len(justification) < 20:
        raise PolicyError("a custom policy needs a written justification (20 characters or more)")
    try:
        return ConsentPolicy(
            name="custom",
            version=int(settings["version"]),
            rules=_custom_rules(settings),
            incentives=bool(settings["incentives"]),
            retention=Retention(settings["retention"]),
            retention_days=int(settings.get("retention_days", 0)),
            justification=justification,
            sms_window=_window(settings.get("sms_hours")),
            preview_required=bool(settings.get("preview_required", False)),
        )
    except KeyError as missing:
        raise PolicyError(f"a custom policy must set {missing.args[0]!r} explicitly") from None
    except (ValueError, TypeError) as error:
        raise PolicyError(f"a custom policy setting is invalid: {error}") from None


# -- what a message template must print ---------------------------------------------------


@dataclass(frozen=True)
class RequiredElement:
    """Something a message must show. A template satisfies it by printing one of `variables`
    (checked on the rendered output, so a commented-out or never-reached one does not count)
    or, where there are `words`, by saying one of them (an SMS's "Reply STOP"): as written, capitals
    included, any whitespace between the words of a phrase."""

    name: str
    variables: tuple[str, ...]
    words: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.variables and not self.words:
            raise ValueError("a required element needs a variable or a word that satisfies it")

    def describe(self) -> str:
        """What it is and how a template shows it, in the language of the moment (English
        outside a request): `the unsubscribe link ({{ unsubscribe_link }})`."""
        ways = [f"{{{{ {v} }}}}" for v in self.variables]
        if self.words:
            quoted = _either([f'"{w}"' for w in self.words])
            if any(" " in w for w in self.words):
                ways.append(_("the words %(words)s", words=quoted))
            else:
                ways.append(_("the word %(words)s", words=quoted))
        return _("%(element)s (%(ways)s)", element=self.name, ways=_either(ways))


def _either(choices: list[str]) -> str:
    """`a or b or c`, as the language of the moment says it."""
    said = choices[0]
    for choice in choices[1:]:
        said = _("%(first)s or %(second)s", first=said, second=choice)
    return said


# Their names are translated when shown (lazy_gettext): the console lists them per template.
UNSUBSCRIBE_LINK = RequiredElement(lazy_gettext("the unsubscribe link"), ("unsubscribe_link",))
SENDER_IDENTITY = RequiredElement(lazy_gettext("the sender's identity, the brand name"), ("brand_name",))
POSTAL_ADDRESS = RequiredElement(lazy_gettext("the brand's postal address"), ("postal_address",))
REFERRER_NAME = RequiredElement(lazy_gettext("the name of the friend who sent it"), ("sender_name",))
# The carriers' convention (CTIA): the keyword in capitals, after the verb that says what to do
# with it. A STOP anywhere else ("Don't STOP now") tells nobody how to opt out.
# In each language Fluister speaks, STOP stays the keyword
# (engine.keywords), the verb before it is the language's ("Stuur STOP", "Répondez STOP").
SMS_OPT_OUT = RequiredElement(
    lazy_gettext("a way to opt out"),
    ("unsubscribe_link",),
    words=(
        "Reply STOP",
        "Text STOP",
        "Stuur STOP",
        "Sms STOP",
        "Antwoord STOP",
        "Répondez STOP",
        "Réponds STOP",
        "Envoyez STOP",
        "Envoie STOP",
    ),
)


def required_elements(policy: ConsentPolicy, template_name: str) -> tuple[RequiredElement, ...]:
    """What a campaign template must print under this policy, as its channel says; nothing for
    a channel the server does not send on (share links carry the consumer's own words)."""
    owner = by_template(template_name)
    if owner is None or not policy.may_offer(owner.name):
        return ()
    return owner.required_elements(policy, template_name)
