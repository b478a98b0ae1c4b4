"""SMTP transport: STARTTLS or implicit TLS, authentication, one reused connection per thread.

`SMTP_URL` says it all: `smtp://user:password@host:587` (STARTTLS when the server offers
it; `?starttls=required` to insist, `?starttls=off` for a local relay), or
`smtps://user:password@host:465` (TLS from the first byte).
"""

from __future__ import annotations

import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from engine.transports import AccountError, AmbiguousError, OutgoingEmail, PermanentError, TransientError
from engine.transports.mime import build_mime

# A connection idle this long is checked with NOOP before use: servers drop idle clients,
# and finding that out mid-DATA would leave us unsure whether the message went.
IDLE_CHECK_SECONDS = 5.0


class SmtpConfigError(ValueError):
    pass


class _NotesTheEnd(smtplib.SMTP):
    """Notes when a message's last line (the lone dot) has been written: only after that can
    a server have accepted it. A connection that breaks earlier left nothing behind."""

    message_complete = False

    # Any: SMTP.send takes a str or any buffer, and the buffer type exists only in the type
    # stubs (collections.abc.Buffer is Python 3.12's).
    def send(self, s: Any) -> None:
        super().send(s)
        if isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):
            self.message_complete = True


class _SMTP(_NotesTheEnd, smtplib.SMTP):
    pass


class _SMTPS(_NotesTheEnd, smtplib.SMTP_SSL):
    pass


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    implicit_tls: bool
    starttls: str  # "auto" | "required" | "off"
    username: str | None
    password: str | None
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str, timeout: float = 30.0) -> SmtpSettings:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise SmtpConfigError("SMTP_URL must look like smtp://user:pass@host:587 or smtps://user:pass@host:465")
        starttls = parse_qs(parts.query).get("starttls", ["auto"])[0]
        if starttls not in ("auto", "required", "off"):
            raise SmtpConfigError("SMTP_URL's starttls must be auto, required or off")
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 587),
            implicit_tls=implicit,
            starttls="off" if implicit else starttls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            timeout=timeout,
        )


class SmtpTransport:
    def __init__(self, settings: SmtpSettings, tls_context: ssl.SSLContext | None = None) -> None:
        self._settings = settings
        self._tls = tls_context or ssl.create_default_context()
        self._local = threading.local()

    def send_email(self, email: OutgoingEmail) -> str:
        message = build_mime(email)
        connection = self._connection()
        connection.message_complete = False
        try:
            refused = connection.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            code, text = next(iter(error.recipients.values()))
            raise _refusal(code, text) from None
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as error:
            raise _refusal(error.smtp_code, error.smtp_error) from None
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            self._drop()
            if not connection.message_complete:
                # Broken before the final dot: no server accepts half a message.
                raise TransientError(f"SMTP connection lost before the message was complete: {error}") from None
            # Broken after the message was complete: it may have been accepted.
            raise AmbiguousError(f"SMTP connection lost during send: {error}") from None
        if refused:
            code, text = next(iter(refused.values()))
            raise _refusal(code, text)
        self._local.last_used = time.monotonic()
        return str(message["Message-ID"] or email.reference)

    def close(self) -> None:
        self._drop()

    def _connection(self) -> _SMTP | _SMTPS:
        connection: _SMTP | _SMTPS | None = getattr(self._local, "connection", None)
        if connection is not None and time.monotonic() - self._local.last_used > IDLE_CHECK_SECONDS:
            try:
                if connection.noop()[0] != 250:
                    raise smtplib.SMTPServerDisconnected("NOOP refused")
            except (smtplib.SMTPException, OSError):
                self._drop()
                connection = None
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
            self._local.last_used = time.monotonic()
        return connection

    def _connect(self) -> _SMTP | _SMTPS:
        s = self._settings
        try:
            if s.implicit_tls:
                connection: _SMTP | _SMTPS = _SMTPS(s.host, s.port, timeout=s.timeout, context=self._tls)
            else:
                connection = _SMTP(s.host, s.port, timeout=s.timeout)
                connection.ehlo()
                if s.starttls == "required" or (s.starttls == "auto" and connection.has_extn("starttls")):
                    connection.starttls(context=self._tls)
                    connection.ehlo()
            if s.username:
                if not isinstance(connection.sock, ssl.SSLSocket):
                    # Whoever strips STARTTLS from the server's answer would read the password.
                    connection.close()
                    raise AccountError("refusing to send the SMTP password over a connection without TLS")
                connection.login(s.username, s.password or "")
        except smtplib.SMTPAuthenticationError as error:
            raise AccountError(f"SMTP authentication failed: {error.smtp_error!r}", code=str(error.smtp_code)) from None
        except smtplib.SMTPNotSupportedError as error:
            raise AccountError(f"SMTP server cannot do what SMTP_URL asks: {error}") from None
        except (smtplib.SMTPException, OSError) as error:  # OSError covers timeouts and refusals
            # Nothing was sent: the message can be tried again.
            raise TransientError(f"cannot connect to SMTP server {s.host}:{s.port}: {error}") from None
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                connection.close()


def _refusal(code: int, text: bytes | str) -> TransientError | PermanentError:
    """4xx means try later, 5xx means never (RFC 5321)."""
    message = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    error_class = TransientError if 400 <= code < 500 else PermanentError
    return error_class(f"SMTP {code}: {message}", code=str(code))
