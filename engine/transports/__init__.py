"""Transports: one small interface for every way a message leaves Fluister.

A transport takes a fully rendered message and either returns the provider's id
for it or raises one of the three errors below, which tell the delivery service
whether the message may be retried, has failed for good, or may have gone out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    from_name: str
    from_email: str
    subject: str
    html: str
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)
    # Our message's public id: lets provider events find their message, and is no personal data.
    reference: str = ""


@dataclass(frozen=True)
class BatchRecipient:
    """One recipient of a batch: their own subject, headers, reference, and the values that
    replace the batch content's placeholders for them."""

    to: str
    subject: str
    substitutions: Mapping[str, str]
    headers: Mapping[str, str] = field(default_factory=dict)
    reference: str = ""


@dataclass(frozen=True)
class OutgoingEmailBatch:
    """One email body for many recipients (SendGrid personalizations)."""

    from_name: str
    from_email: str
    html: str
    text: str
    recipients: Sequence[BatchRecipient]

    def email_for(self, recipient: BatchRecipient) -> OutgoingEmail:
        """The email this recipient gets, for transports that send one at a time."""
        html, text = self.html, self.text
        for placeholder, value in recipient.substitutions.items():
            html, text = html.replace(placeholder, value), text.replace(placeholder, value)
        return OutgoingEmail(
            to=recipient.to,
            from_name=self.from_name,
            from_email=self.from_email,
            subject=recipient.subject,
            html=html,
            text=text,
            headers=recipient.headers,
            reference=recipient.reference,
        )


@dataclass(frozen=True)
class OutgoingSms:
    to: str
    text: str
    reference: str = ""


@dataclass(frozen=True)
class OutgoingWhatsApp:
    """A WhatsApp message that opens a conversation: an approved Content Template and the
    values of its variables ("1", "2", ...). `text` is the template's body with them filled
    in, what the person will read (the outbox keeps it; Twilio renders its own)."""

    to: str  # E.164, without the provider's "whatsapp:" prefix
    content_sid: str
    variables: Mapping[str, str]
    text: str
    reference: str = ""


class TransportError(Exception):
    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientError(TransportError):
    """Nothing was sent and trying again later may work (rate limit, 5xx, connection refused)."""

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, code=code)
        # What the provider asked for (Retry-After), in seconds, when it said.
        self.retry_after = retry_after


class PermanentError(TransportError):
    """Nothing was sent and trying again will not help (invalid recipient, rejected content)."""

    def __init__(self, message: str, *, code: str | None = None, opted_out: bool = False) -> None:
        super().__init__(message, code=code)
        # The provider says the recipient has opted out (Twilio 21610): suppress them.
        self.opted_out = opted_out


class AmbiguousError(TransportError):
    """The request may have reached the provider (timeout after sending): never resend blindly."""


class AccountError(TransientError):
    """The provider refuses us, not this message (bad credentials, a suspended account): nothing
    was sent; the campaign stops until a person has looked, and its messages wait."""


class EmailTransport(Protocol):
    def send_email(self, email: OutgoingEmail) -> str:
        """Send, and return the provider's id for the message."""
        ...


@runtime_checkable
class BatchEmailTransport(EmailTransport, Protocol):
    """A transport that sends one body to many recipients in one request (and one message at a
    time as well: a refused batch is sent again one by one)."""

    max_batch: int

    def send_email_batch(self, batch: OutgoingEmailBatch) -> str:
        """Send to every recipient, or raise for all of them; the provider's id for the request."""
        ...


class SmsTransport(Protocol):
    def send_sms(self, sms: OutgoingSms) -> str:
        """Send, and return the provider's id for the message."""
        ...


class WhatsAppTransport(Protocol):
    def send_whatsapp(self, message: OutgoingWhatsApp) -> str:
        """Send, and return the provider's id for the message."""
        ...


class Transports(Mapping[str, Any]):
    """The transport of each channel, by the channel's name: `Transports(email=smtp, sms=twilio)`.
    A channel finds its own as `transports[channel.name]`."""

    def __init__(self, by_channel: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        self._by_channel: dict[str, Any] = {**(by_channel or {}), **more}

    def __getitem__(self, channel: str) -> Any:
        return self._by_channel[channel]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_channel)

    def __len__(self) -> int:
        return len(self._by_channel)

    def with_channel(self, channel: str, transport: Any) -> Transports:
        """These transports and one more (or another one for that channel)."""
        return Transports({**self._by_channel, channel: transport})

    def __repr__(self) -> str:
        return f"Transports({self._by_channel!r})"
