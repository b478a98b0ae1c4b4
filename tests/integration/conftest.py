from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from engine import create_app
from engine.clock import FixedClock
from engine.runtime import Runtime
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import make_campaign, runtime_of


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport()


@pytest.fixture
def app(database_url: str, settings_for, transport: MemoryTransport, clock: FixedClock) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    """The app on each database backend, with the in-process queue (drained by the test), a fake
    transport and a clock that stands still."""
    application = create_app(
        settings_for(database_url), transports=Transports(email=transport, sms=transport), clock=clock
    )
    yield application
    runtime_of(application).db.dispose()


@pytest.fixture
def runtime(app: Flask) -> Runtime:
    return runtime_of(app)


@pytest.fixture
def campaign(runtime: Runtime):  # type: ignore[no-untyped-def]
    return make_campaign(runtime.db)


@pytest.fixture
def site(database_url: str, settings_for) -> Iterator[tuple[Flask, Runtime]]:  # type: ignore[no-untyped-def]
    """The app on each database backend with a fake transport and the campaign `spring`, for
    tests that go through HTTP and look at the rows: (app, runtime)."""
    memory = MemoryTransport()
    app = create_app(settings_for(database_url), transports=Transports(email=memory, sms=memory))
    runtime = runtime_of(app)
    make_campaign(runtime.db)
    yield app, runtime
    runtime.db.dispose()
