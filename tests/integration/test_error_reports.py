"""SENTRY_DSN: an error is reported, to a fake Sentry of the test's own (a small HTTP server that
keeps what it is sent), and the report carries no contact and no client address."""

from __future__ import annotations

import gzip
import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sentry_sdk
from flask import Flask

from engine import create_app
from engine.error_reports import scrubbed_event
from engine.logs import configure_logging
from tests.helpers import runtime_of, wait_until


class FakeSentry:
    """Takes envelopes at /api/<project>/envelope/, as Sentry does, and keeps their bodies."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                received.append(body)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.dsn = f"http://public-key@127.0.0.1:{self.server.server_address[1]}/42"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def events(self) -> list[dict[str, Any]]:
        """The error events received: an envelope is a header line, then item header and payload lines."""
        found = []
        for body in self.bodies:
            lines = body.split(b"\n")
            for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                if json.loads(header).get("type") == "event":
                    found.append(json.loads(payload))
        return found


@pytest.fixture
def fake_sentry() -> Iterator[FakeSentry]:
    sentry = FakeSentry()
    sentry.thread.start()
    yield sentry
    # No client left behind for the tests that follow.
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)
    sentry.server.shutdown()
    sentry.server.server_close()


def _failing_app(settings: Any) -> Flask:
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("provider refused bob@example.com and +31612345678")

    return app


@pytest.fixture
def reporting_app(database_url: str, settings_for, fake_sentry: FakeSentry) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    # The app's own log handler in place, as in production: the report is made from the
    # record after it has masked it.
    root = logging.getLogger()
    handlers = list(root.handlers)
    configure_logging("json", stream=io.StringIO(), force=True)
    app = _failing_app(settings_for(database_url, sentry_dsn=fake_sentry.dsn))
    yield app
    runtime_of(app).db.dispose()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)


def test_an_error_is_reported_without_a_contact_or_an_address(reporting_app: Flask, fake_sentry: FakeSentry) -> None:
    answer = reporting_app.test_client().get(
        "/boom?friend=carol@example.com",
        headers={"X-Request-ID": "boom-1", "X-Forwarded-For": "198.51.100.23"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert answer.status_code == 500
    assert answer.headers["X-Request-ID"] == "boom-1"
    sentry_sdk.flush(timeout=10)

    (event,) = wait_until(fake_sentry.events, what="the error report", timeout=10)
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert exception["stacktrace"]["frames"][-1]["function"] == "boom"
    assert exception["value"] == "provider refused [email] and [phone]"
    assert event["tags"]["request_id"] == "boom-1"
    raw = b"".join(fake_sentry.bodies).decode()
    for private in ("bob@example.com", "+31612345678", "carol@example.com", "203.0.113.9", "198.51.100.23"):
        assert private not in raw
    assert "user" not in event


def test_without_a_dsn_nothing_is_reported(database_url: str, settings_for, fake_sentry: FakeSentry) -> None:  # type: ignore[no-untyped-def]
    app = _failing_app(settings_for(database_url))
    assert app.test_client().get("/boom").status_code == 500
    sentry_sdk.flush(timeout=2)
    assert fake_sentry.bodies == []
    runtime_of(app).db.dispose()


def test_the_scrubber_reaches_every_string_of_an_event() -> None:
    event = {
        "message": "to bob@example.com",
        "breadcrumbs": {"values": [{"message": "from 203.0.113.9", "data": {"to": ["+31612345678"]}}]},
        "request": {"url": "http://fluister.test/c/demo", "env": {"REMOTE_ADDR": "203.0.113.9"}, "data": "x"},
        "user": {"ip_address": "203.0.113.9"},
    }
    scrubbed = json.dumps(scrubbed_event(event, {}))
    for private in ("bob@example.com", "203.0.113.9", "+31612345678"):
        assert private not in scrubbed
    assert "fluister.test/c/demo" in scrubbed
