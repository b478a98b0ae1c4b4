"""A local stand-in for SendGrid's v3 Mail Send API (`POST /v3/mail/send`).

It checks what SendGrid checks (Bearer API key, the request body's structure and
limits) and answers as SendGrid does: 202 with an empty body and an X-Message-Id
header, or the `{"errors": [{"message", "field", "help"}]}` body with 400/401/429/5xx.
Messages and field names follow SendGrid's published error list; the wording of the
rarer ones is close, not verbatim.

Pointing the official SDK at it (sendgrid 6.x; the host replaces https://api.sendgrid.com):

    client = sendgrid.SendGridAPIClient(api_key=stub.api_key, host=stub.url)
    client.send(Mail(...))

Over TLS (`tls=True`) set SSL_CERT_FILE to `stub.ca_bundle` (see tests/stubs/tls.py).
The SDK (python-http-client over urllib) sends "Connection: close" and builds a new
opener per call, so it opens one TCP connection per request.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.stubs.base import Request, Response, StubServer

HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_CATEGORIES = 10
MAX_CATEGORY_LENGTH = 255
MAX_CUSTOM_ARGS_BYTES = 10_000
RATE_LIMIT = 600  # what X-RateLimit-Limit reports on an injected 429
# Headers SendGrid sets itself and refuses in `headers` (compared case-insensitively).
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "Content-Type",
        "Content-Transfer-Encoding",
        "To",
        "From",
        "Subject",
        "Reply-To",
        "CC",
        "BCC",
    )
)
EMAIL = re.compile(r"^[^\s@]+@[^\s@]+\.[^\s@.]+$")
HEADER_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]+$")  # RFC 5322 field-name: printable ASCII but ':'
CONTENT_ORDER = {"text/plain": 0, "text/html": 1}  # any other type ranks after these


@dataclass(frozen=True)
class Delivery:
    """One recipient of one accepted request, with the values SendGrid would apply to it
    (personalization-level custom_args and headers override the message-level ones)."""

    message_id: str
    email: str
    kind: str  # "to", "cc" or "bcc"
    subject: str | None
    custom_args: dict[str, str]
    headers: dict[str, str]
    categories: list[str]
    # The content as this recipient gets it: SendGrid replaces each personalization's
    # substitution keys in the subject and in every content part.
    content: dict[str, str]


def _substituted(text: str | None, substitutions: dict[str, str]) -> str | None:
    if text is None:
        return None
    for key, value in substitutions.items():
        text = text.replace(key, value)
    return text


@dataclass(frozen=True)
class AcceptedMail:
    message_id: str  # the X-Message-Id the stub answered with
    payload: dict[str, Any]
    request: Request

    @property
    def received_at(self) -> float:
        return self.request.received_at

    def deliveries(self) -> Iterator[Delivery]:
        for personalization in self.payload["personalizations"]:
            custom_args = {**self.payload.get("custom_args", {}), **personalization.get("custom_args", {})}
            headers = {**self.payload.get("headers", {}), **personalization.get("headers", {})}
            substitutions = personalization.get("substitutions", {})
            subject = _substituted(personalization.get("subject", self.payload.get("subject")), substitutions)
            content = {
                part["type"]: _substituted(part["value"], substitutions) or ""
                for part in self.payload.get("content", [])
            }
            for kind in ("to", "cc", "bcc"):
                for address in personalization.get(kind, []):
                    yield Delivery(
                        self.message_id,
                        address["email"],
                        kind,
                        subject,
                        custom_args,
                        headers,
                        list(self.payload.get("categories", [])),
                        content,
                    )

    @property
    def recipients(self) -> list[str]:
        return [delivery.email for delivery in self.deliveries()]


def _error(message: str, field: str | None, anchor: str | None = None) -> dict[str, Any]:
    return {"message": message, "field": field, "help": f"{HELP}#{anchor}" if anchor else None}


def _json_type(value: object) -> str:
    """The type name SendGrid's JSON-schema messages use ("Expected: string, given: integer")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _type_errors(value: object, expected: str, field: str, anchor: str) -> list[dict[str, Any]]:
    given = _json_type(value)
    if given == expected:
        return []
    return [_error(f"Invalid type. Expected: {expected}, given: {given}.", field, anchor)]


def validate_mail(payload: object) -> list[dict[str, Any]]:
    """The body checks of POST /v3/mail/send; an empty list means SendGrid would accept it."""
    if not isinstance(payload, dict):
        return [_error("Bad Request", None)]
    errors: list[dict[str, Any]] = []
    personalizations = payload.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(
            _error(
                "The personalizations field is required and must have at least one personalization.",
                "personalizations",
                "message.personalizations",
            )
        )
        personalizations = []
    elif len(personalizations) > MAX_PERSONALIZATIONS:
        errors.append(
            _error(
                f"The personalization block is limited to {MAX_PERSONALIZATIONS} personalizations per API request. "
                f"You have provided {len(personalizations)} personalizations. "
                "Please consider splitting this into multiple requests and resending your request.",
                "personalizations",
                "message.personalizations",
            )
        )
    total_recipients = 0
    for index, personalization in enumerate(personalizations):
        field = f"personalizations.{index}"
        if not isinstance(personalization, dict):
            errors.extend(_type_errors(personalization, "object", field, "message.personalizations"))
            continue
        if not isinstance(personalization.get("to"), list) or not personalization["to"]:
            errors.append(
                _error(
                    "The to array is required for all personalization objects, "
                    "and must have at least one email object with a valid email address.",
                    f"{field}.to",
                    "message.personalizations.to",
                )
            )
        errors.extend(_check_substitutions(personalization.get("substitutions", {}), f"{field}.substitutions"))
        seen: set[str] = set()
        for kind in ("to", "cc", "bcc"):
            addresses = personalization.get(kind, [])
            if not isinstance(addresses, list):
                errors.extend(_type_errors(addresses, "array", f"{field}.{kind}", f"message.personalizations.{kind}"))
                continue
            total_recipients += len(addresses)
            for position, address in enumerate(addresses):
                email = address.get("email") if isinstance(address, dict) else None
                if not isinstance(email, str) or not EMAIL.match(email):
                    errors.append(
                        _error(
                            "Does not contain a valid address.", f"{field}.{kind}.{position}.email", "-Email-Address"
                        )
                    )
                elif email.lower() in seen:
                    errors.append(
                        _error(
                            "Each email address in the personalization block should be unique between to, cc, and bcc. "
                            f"We found the first duplicate instance of [{email}] in the {field}.{kind} field.",
                            field,
                            "message.recipient_errors",
                        )
                    )
                else:
                    seen.add(email.lower())
        errors.extend(_check_headers(personalization.get("headers"), f"{field}.headers"))
        errors.extend(_check_custom_args(personalization.get("custom_args"), f"{field}.custom_args"))
    if total_recipients > MAX_RECIPIENTS:
        errors.append(
            _error(
                f"There is a limit of {MAX_RECIPIENTS} total recipients (to + cc + bcc) per request.",
                "personalizations",
                "message.personalizations",
            )
        )

    sender = payload.get("from")
    if not isinstance(sender, dict) or "email" not in sender:
        errors.append(
            _error(
                "The from object must be provided for every email send. It is an object that requires the email "
                'parameter, but may also contain a name parameter.  e.g. {"email" : "example@example.com"}  or '
                '{"email" : "example@example.com", "name" : "Example Recipient"}.',
                "from",
                "message.from",
            )
        )
    elif not isinstance(sender["email"], str) or not EMAIL.match(sender["email"]):
        errors.append(_error("The from email does not contain a valid address.", "from.email", "message.from"))
    reply_to = payload.get("reply_to")
    if reply_to is not None and not (isinstance(reply_to, dict) and EMAIL.match(str(reply_to.get("email", "")))):
        errors.append(
            _error("The reply_to email does not contain a valid address.", "reply_to.email", "message.reply_to")
        )

    template_id = payload.get("template_id")
    has_template = isinstance(template_id, str) and bool(template_id)
    subject = payload.get("subject")
    if subject is not None and not isinstance(subject, str):
        errors.extend(_type_errors(subject, "string", "subject", "message.subject"))
    every_personalization_has_subject = bool(personalizations) and all(
        isinstance(p, dict) and isinstance(p.get("subject"), str) and p["subject"] for p in personalizations
    )
    if not has_template and not subject and not every_personalization_has_subject:
        errors.append(
            _error(
                "The subject is required. You can get around this requirement if you use a template with a subject "
                "defined or if every personalization has a subject defined.",
                "subject",
                "message.subject",
            )
        )
    errors.extend(_check_content(payload.get("content"), required=not has_template))
    errors.extend(_check_headers(payload.get("headers"), "headers"))
    errors.extend(_check_custom_args(payload.get("custom_args"), "custom_args"))
    errors.extend(_check_categories(payload.get("categories")))
    return errors


def _check_content(content: object, *, required: bool) -> list[dict[str, Any]]:
    if content is None or content == []:
        if not required:
            return []
        return [
            _error(
                "Unless a valid template_id is provided, the content parameter is required. There must be at least "
                "one defined content block. We typically suggest both text/plain and text/html blocks are included, "
                "but only one block is required.",
                "content",
                "message.content",
            )
        ]
    if not isinstance(content, list):
        return _type_errors(content, "array", "content", "message.content")
    errors = []
    ranks = []
    for index, block in enumerate(content):
        block = block if isinstance(block, dict) else {}
        if not isinstance(block.get("type"), str) or not block["type"]:
            errors.append(
                _error(
                    "The content type must be a string at least one character in length.",
                    f"content.{index}.type",
                    "message.content.type",
                )
            )
        else:
            ranks.append(CONTENT_ORDER.get(block["type"], 2))
        if not isinstance(block.get("value"), str) or not block["value"]:
            errors.append(
                _error(
                    "The content value must be a string at least one character in length.",
                    f"content.{index}.value",
                    "message.content.value",
                )
            )
    if ranks.count(0) > 1 or ranks.count(1) > 1:
        errors.append(_error("If present, text/plain and text/html may only be provided once.", "content", None))
    elif ranks != sorted(ranks):
        errors.append(
            _error(
                "If present, text/plain must be first, followed by text/html, followed by any other content.",
                "content",
                "message.content",
            )
        )
    return errors


MAX_SUBSTITUTION_BYTES = 10_000  # per personalization, keys and values together


def _check_substitutions(substitutions: object, field: str) -> list[dict[str, Any]]:
    if not isinstance(substitutions, dict):
        return _type_errors(substitutions, "object", field, "message.personalizations.substitutions")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in substitutions.items()):
        return [
            _error("Substitution keys and values must be strings.", field, "message.personalizations.substitutions")
        ]
    size = sum(len(k.encode()) + len(v.encode()) for k, v in substitutions.items())
    if size > MAX_SUBSTITUTION_BYTES:
        return [
            _error(
                f"The total size of substitutions in a personalization must not exceed {MAX_SUBSTITUTION_BYTES} bytes.",
                field,
                "message.personalizations.substitutions",
            )
        ]
    return []


def _check_headers(headers: object, field: str) -> list[dict[str, Any]]:
    if headers is None:
        return []
    if not isinstance(headers, dict):
        return _type_errors(headers, "object", field, "message.headers")
    errors = []
    for name, value in headers.items():
        if name.lower() in RESERVED_HEADERS:
            errors.append(
                _error(
                    f"The header {name} is reserved and cannot be set in headers.", f"{field}.{name}", "message.headers"
                )
            )
        elif not HEADER_NAME.match(name):
            errors.append(_error(f"Invalid header name {name!r}.", f"{field}.{name}", "message.headers"))
        errors.extend(_type_errors(value, "string", f"{field}.{name}", "message.headers"))
    return errors


def _check_custom_args(custom_args: object, field: str) -> list[dict[str, Any]]:
    if custom_args is None:
        return []
    if not isinstance(custom_args, dict):
        return _type_errors(custom_args, "object", field, "message.custom_args")
    errors = []
    for name, value in custom_args.items():
        errors.extend(_type_errors(value, "string", f"{field}.{name}", "message.custom_args"))
    size = sum(len(str(name).encode()) + len(str(value).encode()) for name, value in custom_args.items())
    if size > MAX_CUSTOM_ARGS_BYTES:
        errors.append(
            _error(
                f"The custom_args may not be larger than {MAX_CUSTOM_ARGS_BYTES} bytes.", field, "message.custom_args"
            )
        )
    return errors


def _check_categories(categories: object) -> list[dict[str, Any]]:
    if categories is None:
        return []
    if not isinstance(categories, list):
        return _type_errors(categories, "array", "categories", "message.categories")
    errors = []
    if len(categories) > MAX_CATEGORIES:
        errors.append(
            _error(
                f"You cannot have more than {MAX_CATEGORIES} categories per request.",
                "categories",
                "message.categories",
            )
        )
    for index, category in enumerate(categories):
        type_errors = _type_errors(category, "string", f"categories.{index}", "message.categories")
        errors.extend(type_errors)
        if not type_errors and len(category) > MAX_CATEGORY_LENGTH:
            errors.append(
                _error(
                    f"A category cannot be more than {MAX_CATEGORY_LENGTH} characters.",
                    f"categories.{index}",
                    "message.categories",
                )
            )
    return errors


class SendGridStub(StubServer):
    """POST /v3/mail/send, as SendGrid answers it."""

    def __init__(self, *, api_key: str = "SG.test-key", tls: bool = False) -> None:
        super().__init__(tls=tls)
        self.api_key = api_key
        self._accepted: list[AcceptedMail] = []

    # -- what tests read ----------------------------------------------------------------

    @property
    def accepted(self) -> list[AcceptedMail]:
        with self._state:
            return list(self._accepted)

    def deliveries(self) -> list[Delivery]:
        """Every recipient of every accepted request, in order."""
        return [delivery for mail in self.accepted for delivery in mail.deliveries()]

    def sent_to(self, email: str) -> list[Delivery]:
        return [delivery for delivery in self.deliveries() if delivery.email.lower() == email.lower()]

    def wait_for_accepted(self, count: int, timeout: float = 5.0) -> list[AcceptedMail]:
        self.wait_for(lambda: len(self._accepted) >= count, timeout, f"{count} accepted mail(s)")
        return self.accepted

    # -- provider behaviour ---------------------------------------------------------------

    def _reset_provider_state(self) -> None:
        self._accepted.clear()

    def handle(self, request: Request) -> Response:
        if request.path != "/v3/mail/send":
            return Response.json(404, {"errors": [{"field": None, "message": "resource not found"}]})
        if request.method != "POST":
            return Response.json(405, {"errors": [{"field": None, "message": "method not allowed"}]})
        authorization = request.headers.get("Authorization")
        if not authorization:
            return Response.json(401, {"errors": [{"field": None, "message": "authorization required"}]})
        if authorization != f"Bearer {self.api_key}":
            return Response.json(
                401,
                {
                    "errors": [
                        {
                            "message": "The provided authorization grant is invalid, expired, or revoked",
                            "field": None,
                            "help": None,
                        }
                    ]
                },
            )
        try:
            payload = request.json()
        except ValueError:
            return Response.json(400, {"errors": [_error("Bad Request", None)]})
        errors = validate_mail(payload)
        if errors:
            return Response.json(400, {"errors": errors})
        # SendGrid's ids are 22 URL-safe base64 characters.
        message_id = secrets.token_urlsafe(16)
        with self._state:
            self._accepted.append(AcceptedMail(message_id, payload, request))
            self._state.notify_all()
        return Response(202, b"", {"X-Message-Id": message_id})

    def error_response(self, status: int) -> Response:
        if status == 429:
            # SendGrid announces the end of the rate-limit window, not a Retry-After.
            reset = str(int(time.time()) + 1)
            headers = {"X-RateLimit-Limit": str(RATE_LIMIT), "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
            return Response.json(429, {"errors": [{"field": None, "message": "too many requests"}]}, headers)
        message = {500: "internal server error", 503: "service unavailable"}.get(status, "error")
        return Response.json(status, {"errors": [{"field": None, "message": message}]})
