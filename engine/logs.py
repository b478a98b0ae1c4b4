"""Log lines: today's text lines, or JSON lines (`LOG_FORMAT=json`), with the request id, and
never a contact or a raw IP address.

`configure_logging` is the one place a process sets its logging up: the app factory calls it
(the web process, every command and the worker build the app), and gunicorn's own lines go
through `engine.gunicorn_logs`, which uses the same formatters. Every handler it installs
carries two filters, in this order:

- `ContextFilter` puts the request id (and, in a worker, the job id) on every record: the id
  of the request being answered, or of the request that enqueued the job being run;
- `ScrubFilter` masks what must never reach a log line: e-mail addresses and phone numbers
  (a contact), and IP addresses (`engine.web.clients.loggable_ip` is how a client appears:
  a short keyed hash), in the message, its arguments, any extra field and the traceback (and
  the formatters mask a traceback they format anew).

A handler filter, not a logger filter: records that propagate from every library's loggers
pass through it, where a filter on one logger would see only that logger's own.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import IO, Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from engine.contacts import EMAIL_IN_TEXT

LOG_FORMATS = ("text", "json")
# Today's text line; the request id goes at the end, where a reader of the old lines looks last.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"
REQUEST_ID_HEADER = "X-Request-ID"
# A request id we take from a client or a proxy: a UUID, a hex string, a proxy's own token. Up
# to 64 letters, digits, dots, dashes and underscores: nothing that could forge a log line.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

_request_id: ContextVar[str | None] = ContextVar("fluister_request_id", default=None)
_job_id: ContextVar[str | None] = ContextVar("fluister_job_id", default=None)

# Marks the handlers this module installed, so that configuring again replaces them.
_OURS = "_fluister_handler"


# --- the request id -------------------------------------------------------------------------


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(incoming: str | None) -> str | None:
    """An incoming `X-Request-ID` we can log as it is; None for one we must replace (too long,
    odd characters, or the shape of a contact or an address, which the scrubber would mask)."""
    if not incoming or not _SANE_REQUEST_ID.fullmatch(incoming):
        return None
    return incoming if scrub(incoming) == incoming else None


def current_request_id() -> str | None:
    return _request_id.get()


def bind_request_id(request_id: str) -> Token[str | None]:
    """Lines logged from now on in this context carry `request_id` (a web request's hooks)."""
    return _request_id.set(request_id)


def unbind_request_id(token: Token[str | None]) -> None:
    try:
        _request_id.reset(token)
    except ValueError:  # set in another context (a thread that was handed the request): forget it here
        _request_id.set(None)


@contextmanager
def log_context(request_id: str | None, job_id: str | None = None) -> Iterator[None]:
    """Lines logged inside carry this request id (and job id); both are restored afterwards."""
    request_token = _request_id.set(request_id)
    job_token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(job_token)
        _request_id.reset(request_token)


def job_meta() -> dict[str, str]:
    """What a job enqueued now carries for its log lines: the request id that asked for it."""
    request_id = current_request_id()
    return {"request_id": request_id} if request_id else {}


@contextmanager
def job_log_context(job_id: str, meta: Mapping[str, Any]) -> Iterator[None]:
    """Run a job under the request id it was enqueued with (see `job_meta`)."""
    carried = meta.get("request_id")
    request_id = carried if isinstance(carried, str) and accepted_request_id(carried) else None
    with log_context(request_id, job_id):
        yield


# --- masking --------------------------------------------------------------------------------

_EMAIL = EMAIL_IN_TEXT.pattern
# The same address URL-encoded, as it could appear in a logged path.
_ENCODED_EMAIL = r"[\w.!#$%&'*+^`{|}~-]+%40[\w-]+(?:\.[\w-]+)+"
# What `loggable_ip` writes, and a date with its time: left alone (the hash is not an address,
# the date's digits are not a phone number).
_KEEP = (
    r"\bip:[0-9a-f]{12}\b"
    r"|\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"
)
# Candidates only: each is checked by `ipaddress` before it is masked (a time such as 04:54:37
# has colons too).
_IPV6 = r"(?<![\w:.])\[?[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}(?:%\w+)?\]?"
_IPV4 = r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w])"
# A phone number as people and providers write it: 8 to 15 digits, an optional +, a single
# space, dash or dot between them, an area code in brackets; not a part of a longer word or
# number, nor of a dashed one such as a UUID.
_PHONE = r"(?<![\w+.-])\+?\(?\d(?:(?:[ .-]|\) ?)?\d){7,14}(?![\w-])"

_SENSITIVE = re.compile(
    f"(?P<keep>{_KEEP})|(?P<email>{_EMAIL}|{_ENCODED_EMAIL})|(?P<ipv6>{_IPV6})|(?P<ipv4>{_IPV4})|(?P<phone>{_PHONE})"
)
MASKS = {"email": "[email]", "phone": "[phone]", "ipv4": "[ip]", "ipv6": "[ip]"}


def scrub(text: str) -> str:
    """`text` with every e-mail address, phone number and IP address masked."""
    return _SENSITIVE.sub(_mask, text)


def _mask(match: re.Match[str]) -> str:
    kind = match.lastgroup or "keep"
    found = match.group()
    if kind in ("ipv4", "ipv6") and not _is_address(found):
        return found
    return MASKS.get(kind, found)


def _is_address(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def scrub_value(value: Any) -> Any:
    """Strings masked, anywhere inside dicts, lists and tuples (an error report's event)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: scrub_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub_value(item) for item in value)
    return value


# What every LogRecord has; anything else on a record was passed as `extra=`.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "job_id",
    "context",
}


class ScrubFilter(logging.Filter):
    """Masks contacts and addresses in a record before any formatter sees it."""

    _traceback = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the message: log both as they came
            message = f"{record.msg} {record.args}"
        record.msg, record.args = scrub(message), None
        if record.exc_info:
            # Formatted here, masked, and kept as the text a formatter prints (the exception's
            # message may quote an address). exc_info stays: whoever handles the record after
            # the handlers (sentry-sdk's logging integration) reports the exception itself.
            record.exc_text = scrub(record.exc_text or self._traceback.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_ATTRIBUTES:
                setattr(record, name, scrub_value(value))
        return True


class ContextFilter(logging.Filter):
    """Adds `request_id` and `job_id` (None outside a request or a job), and `context`, their
    text form for the text line."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = getattr(record, "request_id", None) or current_request_id()
        job_id = getattr(record, "job_id", None) or _job_id.get()
        record.request_id, record.job_id = request_id, job_id
        parts = [f"request_id={request_id}"] if request_id else []
        parts += [f"job_id={job_id}"] if job_id else []
        record.context = (" [" + " ".join(parts) + "]") if parts else ""
        return True


# --- formatters and handlers ----------------------------------------------------------------


class TextFormatter(logging.Formatter):
    """Today's text line; a traceback it formats itself is masked too."""

    def formatException(self, ei: Any) -> str:
        return scrub(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return scrub(super().formatStack(stack_info))


class JsonLinesFormatter(JsonFormatter):
    """One JSON object a line. It formats a record's traceback anew from `exc_info` (not from
    the text the filter masked), so it masks what it formats."""

    def formatException(self, ei: Any) -> str:
        return scrub(str(super().formatException(ei)))

    def formatStack(self, stack_info: str) -> str:
        return scrub(str(super().formatStack(stack_info)))

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # The time first, as in the text line.
        return {"time": log_data.pop("time", None), **log_data}


def formatter_for(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonLinesFormatter(
            "%(levelname)s %(name)s %(message)s %(request_id)s %(job_id)s",
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "error"},
            # ISO 8601 in UTC, to the microsecond: lines of several machines sort together.
            timestamp="time",
            # `context` is the text line's form of the ids, which have their own fields here.
            reserved_attrs=[*RESERVED_ATTRS, "context"],
        )
    return TextFormatter(TEXT_FORMAT)


def prepare_handler(handler: logging.Handler, log_format: str) -> logging.Handler:
    """Give `handler` our formatter and both filters (the scrubber last: it also sees the ids)."""
    handler.setFormatter(formatter_for(log_format))
    for old in list(handler.filters):
        if isinstance(old, ContextFilter | ScrubFilter):
            handler.removeFilter(old)
    handler.addFilter(ContextFilter())
    handler.addFilter(ScrubFilter())
    return handler


def configure_logging(log_format: str, *, stream: IO[str] | None = None, force: bool = False) -> bool:
    """Send the root logger's lines to `stream` (stderr) in `log_format`; True when it did.

    A process whose logging someone else set up first (a test runner, a host that embeds the
    app) keeps it, unless `force`: only handlers this function installed are replaced, so the
    app factory can call it for every app a process builds."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    root = logging.getLogger()
    foreign = [h for h in root.handlers if not getattr(h, _OURS, False)]
    if foreign and not force:
        return False
    for handler in list(root.handlers):
        if getattr(handler, _OURS, False) or force:
            root.removeHandler(handler)
    handler = prepare_handler(logging.StreamHandler(stream or sys.stderr), log_format)
    setattr(handler, _OURS, True)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # Alembic announces each of its plugins at INFO on every command; the migrations themselves stay visible.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # Twilio's SDK writes eight lines at INFO for every request (URL, headers, status): a worker's
    # log would hold little else, and formatting them cost a tenth of a text's CPU. Its
    # failures still come out, as the delivery service logs them.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    return True
