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
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

import phonenumbers
from disposable_email_domains import blocklist as DISPOSABLE_DOMAINS
from email_validator import EmailNotValidError, validate_email


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class InvalidContact(ValueError):
    """The text is neither a valid email address nor a valid phone number; str() says why."""


MAX_CONTACT_LENGTH = 254


@dataclass(frozen=True)
class Contact:
    channel: Channel
    value: str

    def __post_init__(self) -> None:
        if not self.value or len(self.value) > MAX_CONTACT_LENGTH:
            raise InvalidContact("contact is empty or too long")

    @property
    def identity(self) -> str:
        """What the hash is taken of: the person, not the spelling. An address is reduced to
        the mailbox it reaches (`canonical_email`), so that an opt-out, a cap or "already
        invited" cannot be dodged by changing the case, a dot or a `+tag`. Messages still go
        to `value`, the address as typed."""
        if self.channel is Channel.EMAIL:
            return f"{self.channel}:{canonical_email(self.value)}"
        return f"{self.channel}:{self.value}"

    @property
    def legacy_identity(self) -> str | None:
        """What versions before canonical identities hashed (the address lowercased), when that
        differs from `identity`: opt-outs recorded then are only known by that hash."""
        if self.channel is not Channel.EMAIL:
            return None
        legacy = f"{self.channel}:{self.value.lower()}"
        return legacy if legacy != self.identity else None

    def masked(self) -> str:
        """A form safe to show back to the sender or put in a log: j***@example.com, +3161****78."""
        if self.channel is Channel.EMAIL:
            local, _, domain = self.value.partition("@")
            return f"{local[:1]}***@{domain}"
        return f"{self.value[:5]}****{self.value[-2:]}"


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


def parse_email(raw: str) -> Contact:
    try:
        # Syntax only: a DNS lookup has no place in the request path.
        # ASCII addresses only: many relays cannot carry internationalised ones (SMTPUTF8).
        result = validate_email(raw.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as error:
        raise InvalidContact(str(error)) from None
    # The ASCII form (punycode domain) is what every relay can carry, and one spelling of an
    # address keeps one hash.
    return Contact(Channel.EMAIL, result.ascii_email or result.normalized)


def _read_number(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    try:
        # `tel:` URIs and extensions (", ext. 12", ";ext=12", " x12") are understood; a text
        # goes to the line, so the extension is dropped and the number stays one identity.
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def parse_phone(raw: str, default_region: str) -> Contact:
    # Full-width digits and plus, as phone keyboards in East Asia type them, made ASCII.
    text = unicodedata.normalize("NFKC", raw).strip()
    number = _read_number(text, default_region)
    if number is None and text.startswith("00"):
        # 00 is the international prefix in most of the world, whatever the default region's
        # own (011 in the US): "0031 6 ..." typed to a US campaign is a Dutch number.
        number = _read_number("+" + text[2:], default_region)
    if number is None:
        raise InvalidContact(f"{raw.strip()!r} is not a valid phone number")
    return Contact(Channel.SMS, phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def parse_contact(raw: str, default_region: str) -> Contact:
    """An email address if the text has an @, otherwise a phone number."""
    text = raw.strip()
    if not text:
        raise InvalidContact("enter an email address or a phone number")
    if len(text) > MAX_CONTACT_LENGTH:
        raise InvalidContact("that is too long for an email address or a phone number")
    if "@" in text:
        return parse_email(text)
    return parse_phone(text, default_region)


def is_disposable(contact: Contact) -> bool:
    """An address at a throwaway mail service: a favourite of whoever abuses send-to-friend forms."""
    if contact.channel is not Channel.EMAIL:
        return False
    domain = contact.value.rpartition("@")[2].lower()
    return domain in DISPOSABLE_DOMAINS


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
