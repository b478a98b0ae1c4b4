"""Log lines: JSON lines that parse, today's text lines, and never a contact or a raw IP address
in either, wherever the value hides (the message, its arguments, an extra field, a traceback)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from config import ConfigError, load_settings
from engine.logs import accepted_request_id, configure_logging, job_log_context, log_context, scrub

CONTACTS_AND_ADDRESSES = [
    "bob@example.com",
    "bob%40example.com",
    "+31612345678",
    "06-12345678",
    "(020) 123 4567",
    "+1 415 555 0100",
    "203.0.113.9",
    "2001:db8::1",
    "::ffff:203.0.113.9",
]


@pytest.mark.parametrize("secret", CONTACTS_AND_ADDRESSES)
def test_contacts_and_addresses_are_masked(secret: str) -> None:
    masked = scrub(f"sent to {secret}, refused")
    assert masked.startswith("sent to [") and masked.endswith("], refused")
    assert secret not in masked


@pytest.mark.parametrize(
    "harmless",
    [
        "2026-12-07 04:54:37",
        "2026-12-07T04:54:37+00:00",
        "04:54:37",
        "ip:0123456789ab",  # what loggable_ip writes: a hash, kept so that lines can be matched
        "550e8400-e29b-41d4-a716-446655440000",
        "12345678901234567890",  # too long for a phone number: an id
        "SM1234567890abcdef1234567890abcdef",
        "batch of 500 in 1234 ms",
        "port 45687 (pid 32643)",
        "http://[ip]:45687 (32643)",
    ],
)
def test_what_only_looks_like_a_contact_is_left_alone(harmless: str) -> None:
    assert scrub(f"at {harmless}.") == f"at {harmless}."


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The root logger as this test found it, afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def _log_everything_private(logger: logging.Logger) -> None:
    logger.info("forward from %s to %s", "ann@example.org", "+31612345678", extra={"client": "198.51.100.7"})
    try:
        raise ValueError("provider refused bob@example.com from 2001:db8::7")
    except ValueError:
        logger.exception("send failed")


def test_json_lines_parse_carry_the_ids_and_mask_every_contact(root_logging: None) -> None:
    stream = io.StringIO()
    assert configure_logging("json", stream=stream, force=True)
    logger = logging.getLogger("fluister.test")
    with log_context("req-42", job_id="job-7"):
        _log_everything_private(logger)
    logger.warning("outside any request")

    output = stream.getvalue()
    forward, failure, outside = (json.loads(line) for line in output.splitlines())
    assert forward["message"] == "forward from [email] to [phone]"
    assert forward["client"] == "[ip]"
    assert (forward["level"], forward["logger"]) == ("INFO", "fluister.test")
    assert (forward["request_id"], forward["job_id"]) == ("req-42", "job-7")
    assert "ValueError: provider refused [email] from [ip]" in failure["error"]
    assert failure["request_id"] == "req-42"
    assert outside["request_id"] is None
    for secret in ("ann@example.org", "+31612345678", "198.51.100.7", "bob@example.com", "2001:db8::7"):
        assert secret not in output


def test_text_lines_stay_as_they_were_with_the_request_id_and_masked_contacts(root_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("text", stream=stream, force=True)
    logger = logging.getLogger("fluister.test")
    with log_context("req-42"):
        _log_everything_private(logger)
    logger.warning("outside any request")

    lines = stream.getvalue().splitlines()
    assert lines[0].endswith(" INFO fluister.test: forward from [email] to [phone] [request_id=req-42]")
    assert lines[-1].endswith(" WARNING fluister.test: outside any request")
    assert "ValueError: provider refused [email] from [ip]" in stream.getvalue()
    for secret in ("ann@example.org", "+31612345678", "bob@example.com", "2001:db8::7"):
        assert secret not in stream.getvalue()


def test_a_handler_after_ours_still_gets_the_exception_to_report(root_logging: None) -> None:
    # sentry-sdk's logging integration reads the record once the handlers are done with it.
    stream = io.StringIO()
    configure_logging("json", stream=stream, force=True)
    later: list[logging.LogRecord] = []
    collector = logging.Handler()
    collector.emit = later.append  # type: ignore[method-assign]
    logging.getLogger().addHandler(collector)
    try:
        raise ValueError("provider refused bob@example.com")
    except ValueError:
        logging.getLogger("fluister.test").exception("send failed")
    (record,) = later
    assert record.exc_info is not None and record.exc_info[0] is ValueError
    assert "bob@example.com" not in stream.getvalue()


def test_a_job_runs_under_the_request_id_it_was_enqueued_with(root_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream, force=True)
    with job_log_context("job-1", {"request_id": "req-9"}):
        logging.getLogger("worker").info("sending")
    # A job enqueued outside a request, or with an id someone forged in Redis, has none.
    with job_log_context("job-2", {"request_id": "bob@example.com"}):
        logging.getLogger("worker").info("sending")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (first["request_id"], first["job_id"]) == ("req-9", "job-1")
    assert (second["request_id"], second["job_id"]) == (None, "job-2")


def test_configuring_again_replaces_our_handler_and_leaves_a_runners_own(root_logging: None) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    assert configure_logging("text", stream=io.StringIO())
    assert configure_logging("json", stream=io.StringIO())
    assert len(root.handlers) == 1

    runners = logging.StreamHandler(io.StringIO())
    root.addHandler(runners)
    assert not configure_logging("json", stream=io.StringIO())
    assert runners in root.handlers


@pytest.mark.parametrize(
    ("incoming", "accepted"),
    [
        ("7f3a9c2e-1b4d-4e8f-9a6b-2c1d3e4f5a6b", True),
        ("a1b2c3d4e5f6", True),
        ("edge.proxy_1-abc", True),
        (None, False),
        ("", False),
        ("x" * 65, False),
        ("two words", False),
        ("forged\nline", False),
        ("bob@example.com", False),
        ("203.0.113.9", False),
    ],
)
def test_an_incoming_request_id_is_taken_only_when_it_is_sane(incoming: str | None, accepted: bool) -> None:
    assert accepted_request_id(incoming) == (incoming if accepted else None)


def test_log_format_is_text_by_default_json_on_request_and_nothing_else(tmp_path) -> None:  # type: ignore[no-untyped-def]
    no_env = tmp_path / "no.env"
    assert load_settings({}, dotenv_path=no_env).log_format == "text"
    assert load_settings({"LOG_FORMAT": "JSON"}, dotenv_path=no_env).log_format == "json"
    with pytest.raises(ConfigError, match="LOG_FORMAT must be one of text, json"):
        load_settings({"LOG_FORMAT": "xml"}, dotenv_path=no_env)
