"""Consent policies: per campaign, the rules on what the server may send and keep.

The table in docs/policies.md, as data. A policy answers questions ("may the server
send this friend an SMS?"); services act on the answers and record on every
message which policy, at which version, allowed it. The legal background is there too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from enum import StrEnum
from typing import Any

from engine.contacts import Channel
from engine.quiet_hours import DEFAULT_WINDOW, Window


class SmsRule(StrEnum):
    NEVER = "never"  # only a share link from the consumer's own phone
    WITH_CONSENT = "with_consent"  # only to numbers with the friend's own recorded consent
    ALLOWED = "allowed"  # custom policies only, with a written justification


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
    server_email: bool
    server_sms: SmsRule
    incentives: bool
    retention: Retention
    retention_days: int = 0
    justification: str = ""
    # When server-sent texts may arrive, in the recipient's local time (TCPA: 08:00-21:00).
    sms_window: Window = DEFAULT_WINDOW
    # The sender sees the whole message before it goes (ACM: "the sender can preview it").
    preview_required: bool = False

    def server_sends(self, channel: Channel, *, has_consent: bool = False) -> bool:
        """Whether the server may send this channel to a friend."""
        if channel is Channel.EMAIL:
            return self.server_email
        if self.server_sms is SmsRule.ALLOWED:
            return True
        return self.server_sms is SmsRule.WITH_CONSENT and has_consent

    def may_offer(self, channel: Channel) -> bool:
        """Whether the form may take friends on this channel: the server sends to some of them
        (under `with_consent`, those whose own consent is on record; the rest are held back)."""
        if channel is Channel.EMAIL:
            return self.server_email
        return self.server_sms is not SmsRule.NEVER

    def needs_consent(self, channel: Channel) -> bool:
        return channel is Channel.SMS and self.server_sms is SmsRule.WITH_CONSENT

    @property
    def keeps_contact(self) -> bool:
        return self.retention is not Retention.NOTHING

    @property
    def purges_contact_on_send(self) -> bool:
        return self.retention is Retention.PURGE_AFTER_SEND


BUILT_IN: Mapping[str, ConsentPolicy] = {
    "us": ConsentPolicy(
        name="us",
        version=1,
        server_email=True,
        server_sms=SmsRule.WITH_CONSENT,
        incentives=True,
        retention=Retention.DAYS_AFTER_SEND,
        retention_days=30,
    ),
    "eu-strict": ConsentPolicy(
        name="eu-strict",
        version=1,
        server_email=True,
        server_sms=SmsRule.NEVER,
        incentives=False,
        retention=Retention.PURGE_AFTER_SEND,
        preview_required=True,
    ),
    "share-only": ConsentPolicy(
        name="share-only",
        version=1,
        server_email=False,
        server_sms=SmsRule.NEVER,
        incentives=True,
        retention=Retention.NOTHING,
    ),
}

POLICY_NAMES = (*BUILT_IN, "custom")


def policy_for(name: str, settings: Mapping[str, Any] | None = None) -> ConsentPolicy:
    """The policy a campaign names; `custom` is built from the campaign's own settings."""
    if name in BUILT_IN:
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


def _custom_policy(settings: Mapping[str, Any]) -> ConsentPolicy:
    justification = str(settings.get("justification", "")).strip()
    if len(justification) < 20:
        raise PolicyError("a custom policy needs a written justification (20 characters or more)")
    try:
        return ConsentPolicy(
            name="custom",
            version=int(settings["version"]),
            server_email=bool(settings["server_email"]),
            server_sms=SmsRule(settings["server_sms"]),
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
        ways = [f"{{{{ {v} }}}}" for v in self.variables]
        if self.words:
            kind = "words" if any(" " in w for w in self.words) else "word"
            ways.append(f"the {kind} " + " or ".join(f'"{w}"' for w in self.words))
        return f"{self.name} ({' or '.join(ways)})"


UNSUBSCRIBE_LINK = RequiredElement("the unsubscribe link", ("unsubscribe_link",))
SENDER_IDENTITY = RequiredElement("the sender's identity, the brand name", ("brand_name",))
POSTAL_ADDRESS = RequiredElement("the brand's postal address", ("postal_address",))
REFERRER_NAME = RequiredElement("the name of the friend who sent it", ("sender_name",))
# The carriers' convention (CTIA): the keyword in capitals, after the verb that says what to do
# with it. A STOP anywhere else ("Don't STOP now") tells nobody how to opt out.
SMS_OPT_OUT = RequiredElement("a way to opt out", ("unsubscribe_link",), words=("Reply STOP", "Text STOP"))

EMAIL_TEMPLATES = ("email.html", "email.txt")
SMS_TEMPLATE = "sms.txt"

# What the server-sent email must carry, by policy (docs/policies.md). Every policy that
# sends email needs the unsubscribe link (CAN-SPAM's opt-out, the GDPR right to object, the
# mailbox providers' one-click rule) and the brand (the recipient must see who sends it).
# - us: the brand is the sender of a rewarded forward (FTC 2008), so CAN-SPAM's postal
#   address too; CAN-SPAM does not ask for the referrer's name.
# - eu-strict: the recipient must see who sent it and through which site (ACM, NL) and the
#   referrer must be named (UFMD charter, FR); no EU rule asks for a postal address.
# - custom: may send anywhere, so it meets both: the union of the two (as does any policy
#   not in this table).
# share-only sends no email; a custom policy without server email needs nothing either.
_EMAIL_ELEMENTS: Mapping[str, tuple[RequiredElement, ...]] = {
    "us": (UNSUBSCRIBE_LINK, SENDER_IDENTITY, POSTAL_ADDRESS),
    "eu-strict": (UNSUBSCRIBE_LINK, SENDER_IDENTITY, REFERRER_NAME),
    "custom": (UNSUBSCRIBE_LINK, SENDER_IDENTITY, POSTAL_ADDRESS, REFERRER_NAME),
}
# A server-sent text (us with the friend's consent, custom when allowed) names the brand and
# says how to stop (CTIA: brand and "Reply STOP"; TCPA: opt-out honoured). "Reply STOP" or the
# unsubscribe link both work: STOP replies reach /hooks/twilio/inbound.
_SMS_ELEMENTS: tuple[RequiredElement, ...] = (SENDER_IDENTITY, SMS_OPT_OUT)


def required_elements(policy: ConsentPolicy, template_name: str) -> tuple[RequiredElement, ...]:
    """What a campaign template must print under this policy; nothing for a channel the
    server does not send on (share links carry the consumer's own words)."""
    if template_name in EMAIL_TEMPLATES:
        return _EMAIL_ELEMENTS.get(policy.name, _EMAIL_ELEMENTS["custom"]) if policy.server_email else ()
    if template_name == SMS_TEMPLATE:
        return _SMS_ELEMENTS if policy.server_sms is not SmsRule.NEVER else ()
    return ()
