"""When the database or Redis cannot be reached, visitors get a 503 that says to come back (with
`Retry-After`): a page for people, problem+json for the API. The log gets one line per outage,
not a traceback per request. The app is pointed at addresses where nothing listens (the shared
servers are never touched)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from flask import Flask

from engine import create_app
from engine.outages import OutageLog
from engine.services.campaigns import seed_demo_campaign
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import forward_form, runtime_of

NOBODY_LISTENS_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:9/fluister?connect_timeout=2"
NOBODY_LISTENS_REDIS = "redis://127.0.0.1:9/0"


def _app(settings) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    transport = MemoryTransport()
    app = create_app(settings, transports=Transports(email=transport, sms=transport))
    yield app
    runtime_of(app).db.dispose()


@pytest.fixture
def without_database(settings_for) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    yield from _app(settings_for(NOBODY_LISTENS_POSTGRES))


@pytest.fixture
def without_redis(database_url: str, settings_for) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    apps = _app(settings_for(database_url, NOBODY_LISTENS_REDIS, min_form_seconds=0))
    app = next(apps)
    seed_demo_campaign(runtime_of(app).db)
    yield app
    next(apps, None)


def outage_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_without_the_database_people_get_a_503_page_with_retry_after(without_database: Flask, caplog) -> None:  # type: ignore[no-untyped-def]
    client = without_database.test_client()
    with caplog.at_level(logging.INFO):
        responses = [client.get("/c/demo") for _ in range(5)]
    for response in responses:
        assert response.status_code == 503
        assert response.mimetype == "text/html"
        assert int(response.headers["Retry-After"]) > 0
        assert "try again" in response.text
    warnings = outage_records(caplog)
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "database" in warnings[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)


def test_without_the_database_the_api_answers_problem_json_503(without_database: Flask, caplog) -> None:  # type: ignore[no-untyped-def]
    client = without_database.test_client()
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            response = client.get("/api/v1/campaigns/demo/caps", headers={"Authorization": "Bearer flk_" + "k" * 40})
            assert response.status_code == 503
            assert response.mimetype == "application/problem+json"
            assert response.json["status"] == 503
            assert int(response.headers["Retry-After"]) > 0
    assert len(outage_records(caplog)) == 1
    assert all(r.exc_info is None for r in caplog.records)


def test_without_redis_the_page_shows_and_forwards_get_a_503_logged_once(without_redis: Flask, caplog) -> None:  # type: ignore[no-untyped-def]
    client = without_redis.test_client()
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            page = client.get("/c/demo")
            assert page.status_code == 200
            response = client.post("/c/demo/forward", data=forward_form(page.text))
            assert response.status_code == 503
            assert int(response.headers["Retry-After"]) > 0
    redis_lines = [r for r in outage_records(caplog) if "Redis" in r.getMessage()]
    # The view counter has its own line (it says views go uncounted); the rest of the app one more.
    assert len(redis_lines) <= 2, [r.getMessage() for r in redis_lines]
    assert all(r.exc_info is None for r in caplog.records)


def test_an_outage_is_one_line_and_a_new_one_after_a_quiet_spell_another(caplog) -> None:  # type: ignore[no-untyped-def]
    now = [1000.0]
    outages = OutageLog(clock=lambda: now[0], quiet_after=60)
    with caplog.at_level(logging.INFO):
        for _ in range(100):  # a busy minute
            outages.failed("database", ConnectionRefusedError("connection refused"))
            now[0] += 0.5
        now[0] += 61  # back for over a minute, then down again
        outages.failed("database", ConnectionRefusedError("connection refused"))
        outages.failed("Redis", ConnectionRefusedError("connection refused"))
    lines = [r.getMessage() for r in outage_records(caplog)]
    assert len(lines) == 3, lines
    assert "100" in lines[1]  # the new episode says how many requests the last one refused
