"""Parse, normalise and hash the contacts people type: email addresses and phone numbers.

A `Contact` is a value object: once built it is valid and normalised (E.164 for
phones, email-validator's normalised form for email). A `ContactHasher` turns it
into a keyed hash, which is how Fluister identifies a person wherever it need not
read their address.
"""

from __future__ import annotations

import hashlib
import hmac
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
        """What the hash is taken of. Email local parts are matched case-insensitively,
        so that an opt-out cannot be dodged by changing the case of an address."""
        value = self.value.lower() if self.channel is Channel.EMAIL else self.value
        return f"{self.channel}:{value}"

    def masked(self) -> str:
        """A form safe to show back to the sender or put in a log: j***@example.com, +3161****78."""
        if self.channel is Channel.EMAIL:
            local, _, domain = self.value.partition("@")
            return f"{local[:1]}***@{domain}"
        return f"{self.value[:5]}****{self.value[-2:]}"


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


def parse_phone(raw: str, default_region: str) -> Contact:
    try:
        number = phonenumbers.parse(raw.strip(), default_region)
    except phonenumbers.NumberParseException:
        raise InvalidContact(f"{raw.strip()!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
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

    def hash_text(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()
