"""End-to-end fixtures: the app as `make run` builds it (outbox transport, CSRF on, the demo
campaign seeded), over the Flask test client or a real HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import BaseWSGIServer, make_server

from engine import create_app
from engine.queue import InProcessJobQueue
from engine.runtime import Runtime
from engine.services.campaigns import seed_demo_campaign
from tests.e2e.live import LiveServer
from tests.helpers import runtime_of


def _release(runtime: Runtime) -> None:
    """Let go of what an app holds once its test is over."""
    if isinstance(runtime.queue, InProcessJobQueue):
        # Its worker thread wakes every 30 s to sweep the database: left running, on the shared
        # PostgreSQL test database, it would send other tests' queued messages.
        runtime.queue.stop()
    runtime.db.dispose()


@pytest.fixture
def app(database_url: str, settings_for) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    """The app with its real outbox transport and the demo campaign; nothing is delivered unless drained."""
    application = create_app(settings_for(database_url))
    seed_demo_campaign(runtime_of(application).db)
    yield application
    _release(runtime_of(application))


@pytest.fixture
def runtime(app: Flask) -> Runtime:
    return runtime_of(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    # As a browser set to English: the demo campaign speaks Dutch first, then English.
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


class _AppSlot:
    """A WSGI app filled in after the server is bound: the app's settings need the server's port."""

    app: Flask | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None
        return self.app(environ, start_response)


@pytest.fixture
def serve(settings_for) -> Iterator[Callable[..., LiveServer]]:  # type: ignore[no-untyped-def]
    """Start the app (demo campaign seeded) on a real HTTP server on 127.0.0.1, with links in
    messages pointing at it: `serve(database_url, redis_url=None, **setting_overrides)`."""
    running: list[tuple[BaseWSGIServer, threading.Thread, Runtime]] = []

    def start(database_url: str, redis_url: str | None = None, **overrides: object) -> LiveServer:
        slot = _AppSlot()
        server = make_server("127.0.0.1", 0, slot, threaded=True)
        url = f"http://127.0.0.1:{server.port}"
        settings = settings_for(database_url, redis_url, public_base_url=url, **overrides)
        slot.app = create_app(settings)
        runtime = runtime_of(slot.app)
        seed_demo_campaign(runtime.db)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="e2e-http-server", daemon=True
        )
        thread.start()
        running.append((server, thread, runtime))
        return LiveServer(url, settings, runtime)

    yield start
    for server, thread, runtime in running:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        _release(runtime)
