"""Parse, normalise and hash the contacts people type: email addresses and phone numbers.

A `Contact` is a value object: once built it is valid and normalised (E.164 for
phones, email-validator's normalised form for email). A `ContactHasher` turns it
into a keyed hash, which is how Fluister identifies a person wherever it need not
read their address.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from engine.channels import channel, recognising


class InvalidContact(ValueError):
    """The text is neither a valid email address nor a valid phone number; str() says why."""


MAX_CONTACT_LENGTH = 254


@dataclass(frozen=True)
class Contact:
    """A contact on one channel (its name: "email", "sms", ...); the channel's module
    (engine/channels/) says how its contacts are read, hashed and shown."""

    channel: str
    value: str

    def __post_init__(self) -> None:
        if not self.value or len(self.value) > MAX_CONTACT_LENGTH:
            raise InvalidContact("contact is empty or too long")

    @property
    def identity(self) -> str:
        """What the hash is taken of: the person, not the spelling (an address reduced to the
        mailbox it reaches, a number to its E.164 form). Messages still go to `value`."""
        return channel(self.channel).identity(self.value)

    @property
    def legacy_identity(self) -> str | None:
        """What versions before canonical identities hashed, when that differs from `identity`:
        opt-outs recorded then are only known by that hash."""
        return channel(self.channel).legacy_identity(self.value)

    def masked(self) -> str:
        """A form safe to show back to the sender or put in a log: j***@example.com, +3161****78."""
        return channel(self.channel).masked(self.value)


# Mailbox providers whose own documentation says that several spellings of an address reach
# one inbox. Conservative on purpose: a rule that merged two people's mailboxes would suppress
# the wrong person, so only documented, stable behaviour is listed (docs/architecture.md has
# the table). Domain -> (the domain it is an alias of, dots ignored?, subaddress separator).
_GMAIL = ("gmail.com", True, "+")
_PLUS = (None, False, "+")
MAILBOX_RULES: dict[str, tuple[str | None, bool, str]] = {
    "gmail.com": _GMAIL,
    "googlemail.com": _GMAIL,
    **dict.fromkeys(("outlook.com", "hotmail.com", "live.com", "msn.com"), _PLUS),
    **dict.fromkeys(("yahoo.com", "ymail.com"), (None, False, "-")),
    **dict.fromkeys(("fastmail.com", "fastmail.fm"), _PLUS),
    **dict.fromkeys(("icloud.com", "me.com", "mac.com"), _PLUS),
    **dict.fromkeys(("proton.me", "protonmail.com", "protonmail.ch", "pm.me"), _PLUS),
}


def canonical_email(address: str) -> str:
    """The mailbox an address reaches: lowercased, and under `MAILBOX_RULES` without the
    provider's ignored dots and subaddress tag, on the provider's main domain."""
    local, _, domain = address.lower().rpartition("@")
    rule = MAILBOX_RULES.get(domain)
    if rule is None:
        return f"{local}@{domain}"
    alias_of, ignores_dots, separator = rule
    base = local.partition(separator)[0] or local
    if ignores_dots:
        base = base.replace(".", "") or base
    return f"{base}@{alias_of or domain}"


def mailbox_domains(address: str) -> set[str]:
    """Every domain a spelling of this address's mailbox can be at (its provider's aliases)."""
    domain = canonical_email(address).rpartition("@")[2]
    return {d for d, (alias_of, _, _) in MAILBOX_RULES.items() if (alias_of or d) == domain} | {domain}


# Something shaped like an email address inside free text (a note, a bounce reason).
# Without `=`, `/` and `?` (legal, but rare): "to=bob@example.com" in a log line is bob's.
EMAIL_IN_TEXT = re.compile(r"[\w.!#$%&'*+^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")


def parse_contact(raw: str, default_region: str, enabled: Iterable[str] | None = None) -> Contact:
    """The contact the text is: an email address if it has an @, otherwise a phone number. The
    channel is the first of `enabled` (a campaign's channels) that recognises the text, or else
    the first of all channels that does, so that a refusal can name what the text is."""
    text = raw.strip()
    if not text:
        raise InvalidContact("enter an email address or a phone number")
    if len(text) > MAX_CONTACT_LENGTH:
        raise InvalidContact("that is too long for an email address or a phone number")
    recognised = (recognising(text, enabled) if enabled is not None else None) or recognising(text)
    if recognised is None:
        raise InvalidContact("enter an email address or a phone number")
    return recognised.parse(text, default_region)


def parse_contact_in(raw: str, regions: Sequence[str], enabled: Iterable[str] | None = None) -> Contact:
    """`parse_contact` for a campaign that reads phone numbers in several regions: the number
    as read in the first region it is valid in (`06 12345678` is Dutch on an NL-then-BE
    campaign, `0470 12 34 56` Belgian; `+32 …` is Belgian anywhere). The first region's refusal
    when it is valid in none."""
    first: InvalidContact | None = None
    for region in regions:
        try:
            return parse_contact(raw, region, enabled)
        except InvalidContact as error:
            first = first or error
            if "@" in raw:  # an email address reads the same in every region
                break
    raise first or InvalidContact("enter an email address or a phone number")


def is_disposable(contact: Contact) -> bool:
    """A contact at a throwaway service (a mail domain): a favourite of whoever abuses
    send-to-friend forms."""
    return channel(contact.channel).disposable(contact.value)


class ContactHasher:
    """Keyed hashes (HMAC-SHA256) of contacts and other personal values, such as client IPs."""

    def __init__(self, key: str) -> None:
        if len(key) < 16:
            raise ValueError("the contact hash key must be at least 16 characters")
        self._key = key.encode()

    def hash(self, contact: Contact) -> str:
        return self.hash_text(contact.identity)

    def legacy_hash(self, contact: Contact) -> str | None:
        """The hash older versions kept for this contact, when it differs from `hash`."""
        legacy = contact.legacy_identity
        return self.hash_text(legacy) if legacy is not None else None

    def hash_text(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()
