"""SendGrid transport: the official SDK (v3 mail send), over persistent connections.

The SDK's HTTP layer (python_http_client) builds a new urllib opener, and so a new
TCP and TLS connection, for every call. At campaign volumes that handshake costs
more than the request itself, so `PooledClient` keeps the SDK's request building
and error classes and only swaps the one method the SDK set apart for this
(`_make_request`) for a thread-safe urllib3 connection pool.
"""

from __future__ import annotations

import io
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from email.message import Message as HeaderMap
from typing import Any

import urllib3
from python_http_client import Client as SdkHttpClient
from python_http_client.exceptions import HTTPError as SdkHTTPError
from python_http_client.exceptions import handle_error
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Content,
    CustomArg,
    From,
    Header,
    Mail,
    Personalization,
    Substitution,
    To,
)

from engine.transports import (
    AccountError,
    AmbiguousError,
    OutgoingEmail,
    OutgoingEmailBatch,
    PermanentError,
    TransientError,
)
from engine.transports.http import RequestNotSent, leaving, note_writes

# SendGrid refuses these as custom headers: it sets them itself.
_RESERVED_HEADERS = {"to", "from", "subject", "reply-to", "cc", "bcc", "content-type", "content-transfer-encoding"}
# The custom argument that carries our message's public id through SendGrid and back in its
# events (no personal data).
REFERENCE_ARG = "fluister_message"


class _UrllibLikeResponse:
    """What python_http_client's Response reads from a urllib response."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response

    def getcode(self) -> int:
        return self._response.status

    def read(self) -> bytes:
        return self._response.data

    def info(self) -> HeaderMap:
        headers = HeaderMap()
        for name, value in self._response.headers.items():
            headers[name] = value
        return headers


class PooledClient(SdkHttpClient):
    def __init__(self, *args: Any, pool: urllib3.PoolManager, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pool = pool

    def _build_client(self, name: str | None = None) -> PooledClient:
        # The SDK builds a new client for each path segment (client.mail.send.post):
        # each must share the pool.
        url_path = [*self._url_path, name] if name else self._url_path
        return PooledClient(
            host=self.host,
            version=self._version,
            request_headers=self.request_headers,
            url_path=url_path,
            append_slash=self.append_slash,
            timeout=self.timeout,
            pool=self._pool,
        )

    def _make_request(self, opener: Any, request: urllib.request.Request, timeout: float | None = None) -> Any:
        with leaving():
            body = request.data
            # The SendGrid client always encodes its JSON body; urllib types `data` more broadly.
            if body is not None and not isinstance(body, bytes):
                raise TypeError(f"a request body of bytes expected, not {type(body).__name__}")
            response = self._pool.request(
                request.get_method(),
                request.full_url,
                body=body,
                headers=dict(request.header_items()),
                timeout=timeout or self.timeout,
                retries=False,
                redirect=False,
            )
        if response.status >= 400:
            error = urllib.error.HTTPError(
                request.full_url,
                response.status,
                response.reason or "",
                _UrllibLikeResponse(response).info(),
                io.BytesIO(response.data),
            )
            raise handle_error(error)
        return _UrllibLikeResponse(response)


class SendGridTransport:
    # SendGrid takes at most 1000 personalizations (and 1000 recipients) per request.
    max_batch = 1000

    def __init__(
        self,
        api_key: str,
        host: str = "https://api.sendgrid.com",
        *,
        timeout: float = 20.0,
        pool_size: int = 16,
        ca_certs: str | None = None,
    ) -> None:
        self._sdk = SendGridAPIClient(api_key=api_key, host=host)
        pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=pool_size,
            block=False,
            timeout=urllib3.Timeout(connect=5.0, read=timeout),
            ca_certs=ca_certs,
        )
        note_writes(pool)
        self._sdk.client = PooledClient(
            host=host, request_headers=self._sdk._default_headers, version=3, timeout=timeout, pool=pool
        )
        self._pool = pool

    def send_email(self, email: OutgoingEmail) -> str:
        return self._send(lambda: _mail(email), email.reference)

    def send_email_batch(self, batch: OutgoingEmailBatch) -> str:
        if not 0 < len(batch.recipients) <= self.max_batch:
            raise ValueError(f"a SendGrid batch has 1 to {self.max_batch} recipients")
        return self._send(lambda: _batch_mail(batch), "")

    def _send(self, build: Callable[[], Mail], fallback_id: str) -> str:
        try:
            mail = build().get()  # serialised here, where the SDK's helpers raise
        except (KeyError, ValueError, TypeError) as error:
            # The SDK's helpers refuse what they cannot build: nothing was sent.
            raise PermanentError(f"cannot build a SendGrid request for this message: {error!r}") from None
        try:
            response = self._sdk.send(mail)
        except SdkHTTPError as error:
            raise _http_failure(error) from None
        except RequestNotSent as error:
            if _handshake_refused(error):
                raise AccountError(f"SendGrid's TLS certificate is not trusted here: {error}") from None
            # Refused, or reset before our request was written: SendGrid never had it.
            raise TransientError(f"SendGrid unreachable: {error}") from None
        except urllib3.exceptions.ReadTimeoutError as error:
            raise AmbiguousError(f"SendGrid did not answer in time: {error}") from None
        except urllib3.exceptions.SSLError as error:
            if _handshake_refused(error):
                raise AccountError(f"SendGrid's TLS certificate is not trusted here: {error}") from None
            raise AmbiguousError(f"SendGrid connection lost: {error}") from None
        except (urllib3.exceptions.ProtocolError, OSError) as error:
            # The connection broke with the request possibly on its way: it may have been accepted.
            raise AmbiguousError(f"SendGrid connection lost: {error}") from None
        return response.headers.get("X-Message-Id") or fallback_id

    def close(self) -> None:
        self._pool.clear()


def _mail(email: OutgoingEmail) -> Mail:
    mail = Mail(
        from_email=From(email.from_email, email.from_name),
        to_emails=To(email.to),
        subject=email.subject,
    )
    # Text first: the last alternative is the one clients prefer to show.
    mail.content = [Content("text/plain", email.text), Content("text/html", email.html)]
    for name, value in email.headers.items():
        if name.lower() not in _RESERVED_HEADERS:
            mail.header = Header(name, value)
    if email.reference:
        # Only our message's public id: SendGrid asks for no personal data in custom args.
        mail.custom_arg = CustomArg(REFERENCE_ARG, email.reference)
    return mail


def _handshake_refused(error: Exception) -> bool:
    """A certificate we do not trust fails the TLS handshake: nothing was sent."""
    return "CERTIFICATE_VERIFY_FAILED" in str(error) or "WRONG_VERSION_NUMBER" in str(error)


def _batch_mail(batch: OutgoingEmailBatch) -> Mail:
    mail = Mail(from_email=From(batch.from_email, batch.from_name))
    mail.content = [Content("text/plain", batch.text), Content("text/html", batch.html)]
    for position, recipient in enumerate(batch.recipients):
        personalization = Personalization()
        personalization.add_to(To(recipient.to))
        personalization.subject = recipient.subject
        for key, value in recipient.substitutions.items():
            personalization.add_substitution(Substitution(key, value))
        for name, value in recipient.headers.items():
            if name.lower() not in _RESERVED_HEADERS:
                personalization.add_header(Header(name, value))
        if recipient.reference:
            personalization.add_custom_arg(CustomArg(REFERENCE_ARG, recipient.reference))
        # The SDK inserts at the front unless told where: keep the recipients' order.
        mail.add_personalization(personalization, index=position)
    return mail


def _http_failure(error: SdkHTTPError) -> TransientError | PermanentError:
    status = int(error.status_code)
    detail = _error_text(error)
    if status == 429:
        return TransientError(f"SendGrid rate limit: {detail}", code="429", retry_after=_retry_after(error.headers))
    if status >= 500:
        return TransientError(f"SendGrid {status}: {detail}", code=str(status))
    if status in (401, 403):
        return AccountError(f"SendGrid refuses our API key ({status}): {detail}", code=str(status))
    return PermanentError(f"SendGrid {status}: {detail}", code=str(status))


def _error_text(error: SdkHTTPError) -> str:
    try:
        return "; ".join(str(e.get("message", "")) for e in error.to_dict.get("errors", [])) or str(error.reason)
    except (ValueError, AttributeError, TypeError):
        return str(error.reason)


def _retry_after(headers: Any) -> float | None:
    """Seconds until SendGrid lets us send again: Retry-After, or its X-RateLimit-Reset (epoch)."""
    if headers is None:
        return None
    retry_after = headers.get("Retry-After")
    if retry_after and str(retry_after).isdigit():
        return float(retry_after)
    reset = headers.get("X-RateLimit-Reset")
    if reset and str(reset).isdigit():
        return max(0.0, float(reset) - time.time())
    return None
