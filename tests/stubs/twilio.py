"""A local stand-in for Twilio's Messages API (REST API 2010-04-01).

- `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (form-encoded To, From or
  MessagingServiceSid, Body, MediaUrl, StatusCallback...), with HTTP Basic auth by
  AccountSid:AuthToken or by API key SID:secret. Validation and error codes as Twilio's:
  21604 To missing, 21211 To not E.164, 21603 From/MessagingServiceSid missing,
  21212 From malformed, 21606 From not one of the account's senders (when the stub is
  given `senders`), 21602 Body missing, 21617 Body over 1600 characters, 21609 bad
  StatusCallback, 21610 recipient opted out (`opt_out`). Errors are Twilio's legacy
  JSON `{"code", "message", "more_info", "status"}`, which the SDK turns into
  TwilioRestException(status, code). Success is 201 with a Message resource.
- WhatsApp, through the same endpoint: `To`/`From` as `whatsapp:+E164` (both sides on one
  channel, 21910 otherwise). A Content Template goes as `ContentSid` (HX + 32 hex digits,
  21655 otherwise) and `ContentVariables`, a JSON object of strings keyed "1", "2", ...
  (21656 otherwise; 21654 for variables without a SID). Templates the stub is told about
  (`add_content_template`) are rendered into the message's body, and a variable missing for
  one of their placeholders is 21656. A free-form Body to a WhatsApp number that has not
  written to us in the last 24 hours (`received_from` records that it did) is accepted, then
  fails with 63016, as Twilio reports it: in the status callback.
- `GET .../Messages/{Sid}.json`: the message as it is now (its status moves on).
- Status callbacks: after a message is created with a StatusCallback, a background
  thread POSTs the status changes Twilio reports (not the initial one): with a
  Messaging Service "queued" first, then "sent" and "delivered", or "undelivered"/
  "failed" with an ErrorCode for numbers marked with `mark_undeliverable`. Each is
  signed with X-Twilio-Signature from the SDK's own RequestValidator and the auth token.
  Opt-outs are per stub (Twilio keeps them per sender).

Pointing the official SDK at it (twilio 9.x). The SDK builds each URL from the domain
object's `base_url` at request time, so replacing it is enough:

    client = twilio.rest.Client(stub.account_sid, stub.auth_token)
    client.api.base_url = stub.url  # instead of https://api.twilio.com
    client.messages.create(to=..., from_=..., body=...)

Leave TWILIO_EDGE and TWILIO_REGION unset: with either, the SDK rewrites the URL's host
into a twilio.com name. Passing `environment={}` does not shield from them (an empty
mapping falls back to os.environ). Over TLS, set
`client.http_client.session.verify = stub.ca_bundle` (REQUESTS_CA_BUNDLE, if set, wins).
The SDK's default TwilioHttpClient keeps one requests.Session, so it reuses connections.
"""

from __future__ import annotations

import base64
import datetime
import hmac
import json
import math
import queue
import re
import secrets
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from twilio.request_validator import RequestValidator

from tests.stubs.base import WAIT_TIMEOUT, Request, Response, StubServer
from tests.stubs.tls import local_ca

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "stub-auth-token"
# The sender a Messaging Service "picks" (Twilio's magic test number).
SERVICE_SENDER = "+15005550006"
MAX_BODY = 1600
MESSAGES_PATH = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages\.json$")
MESSAGE_PATH = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$")
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
SHORT_CODE = re.compile(r"^\d{5,6}$")
ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
WHATSAPP_PREFIX = "whatsapp:"
CONTENT_SID = re.compile(r"^HX[0-9a-f]{32}$")
CONTENT_PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")
# WhatsApp's customer service window: free-form messages only this long after the person wrote.
SESSION_WINDOW = datetime.timedelta(hours=24)
OUTSIDE_WINDOW = 63016

# GSM 03.38: a body made only of these is sent as GSM-7 (160 per single segment, 153
# per part); anything else makes the whole body UCS-2 (70, or 67 per part).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")  # each costs two septets


def segment_count(body: str) -> int:
    if all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in body):
        units, single, part = sum(2 if char in GSM7_EXTENSION else 1 for char in body), 160, 153
    else:
        units, single, part = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / part)


def rfc2822(moment: datetime.datetime) -> str:
    return format_datetime(moment)  # e.g. "Thu, 24 Aug 2023 05:01:45 +0000", as Twilio writes dates


def twilio_error(status: int, code: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    payload = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Response.json(status, payload, headers)


@dataclass(frozen=True)
class SentSms:
    """A message the stub accepted, as it stands now (status moves on as callbacks go out)."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    media_urls: tuple[str, ...]
    content_sid: str | None
    content_variables: Mapping[str, str] | None
    status: str
    num_segments: int
    status_callback: str | None
    date_created: datetime.datetime
    date_updated: datetime.datetime
    date_sent: datetime.datetime | None
    error_code: int | None
    request: Request

    def resource(self) -> dict[str, Any]:
        """The Message resource JSON, field for field as Twilio returns it."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": rfc2822(self.date_created),
            "date_sent": rfc2822(self.date_sent) if self.date_sent else None,
            "date_updated": rfc2822(self.date_updated),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": str(len(self.media_urls)),
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": self.to,
            "uri": f"{uri}.json",
        }


@dataclass(frozen=True)
class CallbackAttempt:
    url: str
    params: dict[str, str]
    signature: str
    status: int | None  # the receiver's HTTP status; None when it could not be reached
    error: str | None


class TwilioStub(StubServer):
    def __init__(
        self,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        api_keys: Mapping[str, str] | None = None,
        senders: Iterable[str] | None = None,
        callback_delay: float = 0.0,
        tls: bool = False,
    ) -> None:
        """`api_keys`: SK sid -> secret, also accepted as Basic auth. `senders`: when given, the
        only From values allowed (21606 otherwise). `callback_delay`: seconds between status steps."""
        super().__init__(tls=tls)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.api_keys = dict(api_keys or {})
        self.senders = frozenset(senders) if senders is not None else None
        self.callback_delay = callback_delay
        self._validator = RequestValidator(auth_token)
        self._messages: dict[str, SentSms] = {}
        self._callbacks: list[CallbackAttempt] = []
        self._opted_out: set[str] = set()
        self._undeliverable: dict[str, tuple[str, int]] = {}
        self._content_templates: dict[str, str] = {}
        self._last_inbound: dict[str, datetime.datetime] = {}
        self._outside_window: set[str] = set()  # free-form WhatsApp messages that will fail
        self._callback_queue: queue.Queue[str | None] = queue.Queue()
        self._callback_thread: threading.Thread | None = None

    # -- switches -------------------------------------------------------------------------

    def opt_out(self, *numbers: str) -> None:
        """These recipients replied STOP: sending to them fails with 21610."""
        with self._state:
            self._opted_out.update(numbers)

    def opt_in(self, *numbers: str) -> None:
        with self._state:
            self._opted_out.difference_update(numbers)

    def mark_undeliverable(self, number: str, *, status: str = "undelivered", error_code: int = 30003) -> None:
        """Messages to `number` are accepted but end as `status` ("undelivered" after "sent",
        or "failed" without it) with `error_code` (30003: unreachable destination handset)."""
        if status not in ("undelivered", "failed"):
            raise ValueError(status)
        with self._state:
            self._undeliverable[number] = (status, error_code)

    def add_content_template(self, sid: str, body: str) -> None:
        """An approved Content Template: sends with this SID must fill every {{n}} of `body`."""
        if not CONTENT_SID.match(sid):
            raise ValueError(sid)
        with self._state:
            self._content_templates[sid] = body

    def received_from(self, address: str, at: datetime.datetime | None = None) -> None:
        """`address` (whatsapp:+E164) wrote to us at `at` (now): free-form replies may go to it
        for the next 24 hours."""
        with self._state:
            self._last_inbound[address] = at or datetime.datetime.now(datetime.UTC)

    # -- what tests read ----------------------------------------------------------------

    @property
    def messages_url(self) -> str:
        return f"{self.url}/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

    @property
    def messages(self) -> list[SentSms]:
        with self._state:
            return list(self._messages.values())

    def message(self, sid: str) -> SentSms:
        with self._state:
            return self._messages[sid]

    @property
    def callbacks(self) -> list[CallbackAttempt]:
        with self._state:
            return list(self._callbacks)

    def wait_for_callbacks(self, count: int, timeout: float = WAIT_TIMEOUT) -> list[CallbackAttempt]:
        self.wait_for(lambda: len(self._callbacks) >= count, timeout, f"{count} status callback(s)")
        return self.callbacks

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, port: int = 0) -> None:
        super().start(port)
        self._callback_thread = threading.Thread(target=self._send_callbacks, name="TwilioStub callbacks", daemon=True)
        self._callback_thread.start()

    def stop(self) -> None:
        super().stop()
        if self._callback_thread is not None:
            self._callback_queue.put(None)
            self._callback_thread.join(timeout=WAIT_TIMEOUT)
            self._callback_thread = None

    def _reset_provider_state(self) -> None:
        self._messages.clear()
        self._callbacks.clear()
        self._opted_out.clear()
        self._undeliverable.clear()
        self._content_templates.clear()
        self._last_inbound.clear()
        self._outside_window.clear()

    # -- the API --------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        match = MESSAGES_PATH.match(request.path) or MESSAGE_PATH.match(request.path)
        if match is None:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        if not self._authenticated(request):
            return twilio_error(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
        if match["account"] != self.account_sid:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        if match.re is MESSAGE_PATH and request.method == "GET":
            with self._state:
                message = self._messages.get(match["sid"])
            if message is None:
                return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
            return Response.json(200, message.resource())
        if match.re is MESSAGES_PATH and request.method == "POST":
            return self._create(request)
        return twilio_error(405, 20004, "Method not allowed")

    def error_response(self, status: int) -> Response:
        code, message = {
            429: (20429, "Too Many Requests"),
            500: (20500, "An internal server error has occurred"),
            503: (20503, "Service unavailable"),
        }.get(status, (status, "Error"))
        return twilio_error(status, code, message)

    def _authenticated(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:  # also UnicodeDecodeError and binascii.Error
            return False
        expected = self.auth_token if username == self.account_sid else self.api_keys.get(username)
        return expected is not None and hmac.compare_digest(password.encode(), expected.encode())

    def _create(self, request: Request) -> Response:
        form = request.form_lists()  # MediaUrl may repeat

        def first(name: str) -> str | None:
            return form[name][0] if form.get(name) else None

        to, sender, service = first("To"), first("From"), first("MessagingServiceSid")
        body, media, callback = first("Body") or "", tuple(form.get("MediaUrl", [])), first("StatusCallback")
        content_sid, raw_variables = first("ContentSid"), first("ContentVariables")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        whatsapp = to.startswith(WHATSAPP_PREFIX)
        if not E164.match(to.removeprefix(WHATSAPP_PREFIX)):
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not sender and not service:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if sender and whatsapp != sender.startswith(WHATSAPP_PREFIX):
            return twilio_error(400, 21910, "Invalid From and To pair. From and To should be of the same channel")
        bare_sender = sender.removeprefix(WHATSAPP_PREFIX) if sender else None
        if bare_sender is not None and not (
            E164.match(bare_sender)
            or (not whatsapp and (SHORT_CODE.match(bare_sender) or ALPHANUMERIC_SENDER.match(bare_sender)))
        ):
            return twilio_error(
                400,
                21212,
                f"The 'From' number {sender} is not a valid phone number, shortcode, or alphanumeric sender ID.",
            )
        if sender and self.senders is not None and sender not in self.senders:
            return twilio_error(
                400,
                21606,
                f"The From phone number {sender} is not a valid, SMS-capable inbound phone number or short code "
                "for your account.",
            )
        content = self._content(content_sid, raw_variables)
        if isinstance(content, Response):
            return content
        if content is not None:
            body = content[0]  # empty for a template the stub was not told about
        if not body and not media and content is None:
            return twilio_error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY:
            return twilio_error(400, 21617, f"The concatenated message body exceeds the {MAX_BODY} character limit.")
        if callback is not None and not _is_absolute_http_url(callback):
            return twilio_error(400, 21609, f"The StatusCallback URL {callback} is not a valid URL.")
        with self._state:
            if to in self._opted_out:
                return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
            now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
            message = SentSms(
                sid="SM" + secrets.token_hex(16),
                account_sid=self.account_sid,
                to=to,
                from_=sender,
                messaging_service_sid=service,
                body=body,
                media_urls=media,
                content_sid=content_sid,
                content_variables=content[1] if content is not None else None,
                # With a Messaging Service the sender, and so the encoding, is chosen later:
                # Twilio reports "accepted" and 0 segments until then.
                status="accepted" if service else "queued",
                num_segments=0 if service else segment_count(body),
                status_callback=callback,
                date_created=now,
                date_updated=now,
                date_sent=None,
                # Not yet reported: the status callbacks tell (see _steps).
                error_code=None,
                request=request,
            )
            self._messages[message.sid] = message
            if whatsapp and content is None and not self._in_session(to, now):
                # Twilio takes the request, and WhatsApp refuses it: the failure comes later.
                self._outside_window.add(message.sid)
            self._state.notify_all()
        self._callback_queue.put(message.sid)
        return Response.json(201, message.resource(), {"Twilio-Request-Id": "RQ" + secrets.token_hex(16)})

    def _content(self, sid: str | None, raw_variables: str | None) -> tuple[str, dict[str, str]] | Response | None:
        """The template's body with its variables filled in, and the variables; None without a
        ContentSid; an error response for a malformed SID or variables."""
        if sid is None:
            if raw_variables is not None:
                return twilio_error(400, 21654, "A ContentSid must be specified if ContentVariables are provided.")
            return None
        if not CONTENT_SID.match(sid):
            return twilio_error(400, 21655, f"The ContentSid {sid} is invalid.")
        try:
            variables = json.loads(raw_variables) if raw_variables is not None else {}
        except ValueError:
            variables = None
        valid = isinstance(variables, dict) and all(
            isinstance(key, str) and key.isdigit() and isinstance(value, str) for key, value in variables.items()
        )
        if not valid:
            return twilio_error(400, 21656, "The ContentVariables parameter is invalid: a JSON object of strings.")
        with self._state:
            template = self._content_templates.get(sid)
        if template is None:
            return "", variables
        missing = sorted({key for key in CONTENT_PLACEHOLDER.findall(template)} - set(variables))
        if missing:
            return twilio_error(400, 21656, f"The ContentVariables parameter is missing {', '.join(missing)}.")
        return CONTENT_PLACEHOLDER.sub(lambda match: variables[match[1]], template), variables

    def _in_session(self, to: str, now: datetime.datetime) -> bool:
        last = self._last_inbound.get(to)
        return last is not None and now - last < SESSION_WINDOW

    # -- status progression and callbacks -----------------------------------------------

    def _steps(self, message: SentSms) -> list[tuple[str, int | None]]:
        with self._state:
            outcome = self._undeliverable.get(message.to)
            if message.sid in self._outside_window:
                outcome = ("failed", OUTSIDE_WINDOW)
        steps: list[tuple[str, int | None]] = [("queued", None)] if message.messaging_service_sid else []
        if outcome is not None and outcome[0] == "failed":
            return [*steps, outcome]
        return [*steps, ("sent", None), outcome or ("delivered", None)]

    def _send_callbacks(self) -> None:
        # One thread for all messages: each message's steps go out in order, one after the other.
        while (sid := self._callback_queue.get()) is not None:
            with self._state:
                created = self._messages.get(sid)
            for status, error_code in self._steps(created) if created else []:
                if self.callback_delay:
                    self._stopping.wait(self.callback_delay)
                if self._stopping.is_set():
                    break
                message = self._advance(sid, status, error_code)
                if message is None:  # forgotten by reset()
                    break
                if message.status_callback:
                    self._post_callback(message)

    def _advance(self, sid: str, status: str, error_code: int | None) -> SentSms | None:
        with self._state:
            message = self._messages.get(sid)
            if message is None:
                return None
            now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
            changes: dict[str, Any] = {"status": status, "date_updated": now, "error_code": error_code}
            if status == "sent":
                changes["date_sent"] = now
                if message.messaging_service_sid:
                    # The service's sender, on the recipient's channel.
                    prefix = WHATSAPP_PREFIX if message.to.startswith(WHATSAPP_PREFIX) else ""
                    changes["from_"] = message.from_ or prefix + SERVICE_SENDER
                    changes["num_segments"] = segment_count(message.body)
            message = self._messages[sid] = replace(message, **changes)
            self._state.notify_all()
            return message

    def _post_callback(self, message: SentSms) -> None:
        assert message.status_callback is not None
        params = {
            "AccountSid": message.account_sid,
            "ApiVersion": API_VERSION,
            "MessageSid": message.sid,
            "MessageStatus": message.status,
            "SmsSid": message.sid,
            "SmsStatus": message.status,
            "To": message.to,
        }
        if message.from_:
            params["From"] = message.from_
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if message.error_code is not None:
            params["ErrorCode"] = str(message.error_code)
        if message.status == "delivered":
            params["RawDlrDoneDate"] = message.date_updated.strftime("%y%m%d%H%M")
        signature = self._validator.compute_signature(message.status_callback, params)
        outgoing = urllib.request.Request(
            message.status_callback,
            data=urlencode(params).encode(),
            method="POST",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
                "I-Twilio-Idempotency-Token": secrets.token_hex(16),
                "User-Agent": "TwilioProxy/1.1",
            },
        )
        context = local_ca().client_context() if message.status_callback.startswith("https:") else None
        status: int | None = None
        error: str | None = None
        try:
            with urllib.request.urlopen(outgoing, timeout=WAIT_TIMEOUT, context=context) as reply:
                status = reply.status
        except urllib.error.HTTPError as failure:
            status = failure.code
            failure.close()
        except OSError as failure:
            error = str(failure)
        with self._state:
            self._callbacks.append(CallbackAttempt(message.status_callback, params, signature, status, error))
            self._state.notify_all()


def _is_absolute_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "_" not in (parts.hostname or "")
