"""Per-client rate limits on /api/v1: the RateLimit fields on every answer, 429 problem+json with
Retry-After past the limit, each key counted on its own (and by its role's limit), requests
without a key by their address; in memory in the embedded mode, in Redis shared by processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask import Flask

from engine import create_app
from engine.clock import FixedClock
from engine.runtime import Runtime
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import make_campaign, runtime_of

LIMITS = (("admin", "5/hour"), ("marketer", "3/hour"), ("compliance", "3/hour"), ("anonymous", "2/hour"))


def build(database_url: str, settings_for, clock: FixedClock, redis_url: str | None = None) -> Flask:  # type: ignore[no-untyped-def]
    memory = MemoryTransport()
    settings = settings_for(database_url, redis_url, api_rate_limits=LIMITS)
    return create_app(settings, transports=Transports(email=memory, sms=memory), clock=clock)


@pytest.fixture
def limited(database_url: str, settings_for, clock: FixedClock) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    app = build(database_url, settings_for, clock)
    make_campaign(runtime_of(app).db, "spring")
    yield app
    runtime_of(app).db.dispose()


def bearer(runtime: Runtime, name: str, role: str = "marketer") -> dict[str, str]:
    return {"Authorization": f"Bearer {runtime.staff.create_api_key(name, role).secret}"}


def test_each_answer_says_what_is_left_and_past_the_limit_a_429_says_when(limited: Flask) -> None:
    runtime = runtime_of(limited)
    client = limited.test_client()
    shop = bearer(runtime, "shop")
    answers = [client.get("/api/v1/campaigns/spring/coupons", headers=shop) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert {a.headers["RateLimit-Limit"] for a in answers} == {"3"}
    assert {a.headers["RateLimit-Policy"] for a in answers} == {"3;w=3600"}
    assert all(0 < int(a.headers["RateLimit-Reset"]) <= 3600 for a in answers)

    refused = client.post("/api/v1/redemptions", json={"campaign": "spring", "code": "X"}, headers=shop)
    assert (refused.status_code, refused.mimetype) == (429, "application/problem+json")
    assert refused.json["type"] == "urn:fluister:problem:rate-limited"
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert refused.headers["RateLimit-Remaining"] == "0"

    # Another key (another client) has its own count; an admin's key its role's limit.
    other = client.get("/api/v1/campaigns/spring/coupons", headers=bearer(runtime, "other-shop"))
    assert (other.status_code, other.headers["RateLimit-Remaining"]) == (200, "2")
    admin = client.get("/api/v1/campaigns/spring", headers=bearer(runtime, "ops", "admin"))
    assert (admin.headers["RateLimit-Limit"], admin.headers["RateLimit-Remaining"]) == ("5", "4")


def test_requests_without_a_key_are_counted_by_address(limited: Flask) -> None:
    client = limited.test_client()
    spec = [client.get("/api/v1/openapi.json", environ_base={"REMOTE_ADDR": "192.0.2.7"}) for _ in range(3)]
    assert [a.status_code for a in spec] == [200, 200, 429]
    elsewhere = client.get("/api/v1/openapi.json", environ_base={"REMOTE_ADDR": "192.0.2.8"})
    assert (elsewhere.status_code, elsewhere.headers["RateLimit-Remaining"]) == (200, "1")
    # Pages outside the API are not counted, and carry no RateLimit fields.
    assert "RateLimit-Limit" not in client.get("/healthz").headers


@pytest.mark.postgres
def test_with_redis_every_process_counts_together(
    postgres_url: str,
    redis_url: str,
    settings_for,
    clock: FixedClock,  # type: ignore[no-untyped-def]
) -> None:
    first = build(postgres_url, settings_for, clock, redis_url)
    second = build(postgres_url, settings_for, clock, redis_url)
    try:
        # The database is not emptied for this test (no `database_url`): a name of its own.
        headers = bearer(runtime_of(first), f"shop-{uuid.uuid4().hex}")
        answers = [
            app.test_client().get("/api/v1/campaigns", headers=headers) for app in (first, second, first, second)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
    finally:
        runtime_of(first).db.dispose()
        runtime_of(second).db.dispose()


def test_with_redis_out_of_reach_the_api_answers_uncounted(database_url: str, settings_for, clock: FixedClock) -> None:  # type: ignore[no-untyped-def]
    app = build(database_url, settings_for, clock, "redis://127.0.0.1:1/0")  # nothing listens there
    try:
        runtime = runtime_of(app)
        make_campaign(runtime.db, "spring")
        headers = bearer(runtime, "shop")
        answers = [app.test_client().get("/api/v1/campaigns/spring", headers=headers) for _ in range(4)]
        assert [a.status_code for a in answers] == [200] * 4  # past the limit of 3: not counted
        assert not any("RateLimit-Limit" in a.headers for a in answers)
    finally:
        runtime_of(app).db.dispose()
