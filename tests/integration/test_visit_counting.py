"""Landing views are counted in Redis, never by a database write, and folded into the `visits`
roll-up by a refresh: none lost, none counted twice. On SQLite and PostgreSQL, with the
embedded fakeredis and with a real Redis."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import event, func, select

from engine import create_app
from engine.db import utcnow
from engine.models import Campaign, Forward, Visit
from engine.runtime import Runtime
from engine.services import analytics
from engine.services.analytics import VisitCounter, VisitSlice, rollups
from engine.tokens import Purpose
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from engine.web.public.pages import REF_COOKIE
from tests.helpers import make_campaign, runtime_of, staff_client


@pytest.fixture(params=["fakeredis", "redis"])
def app(request: pytest.FixtureRequest, database_url: str, settings_for) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    transport = MemoryTransport()
    application = create_app(
        settings_for(database_url, redis_url), transports=Transports(email=transport, sms=transport)
    )
    yield application
    runtime_of(application).db.dispose()


def counter_of(runtime: Runtime) -> VisitCounter:
    return VisitCounter(runtime.queue.connection)


def add_forward(runtime: Runtime, campaign: Campaign, public_id: str, channel: str = "sms") -> None:
    with runtime.db.transaction() as session:
        session.add(
            Forward(
                public_id=public_id,
                campaign_id=campaign.id,
                generation=1,
                channel=channel,
                sender_name="Ann",
                recipient_contact_hash=f"friend-{public_id}",
                policy_name="custom",
                policy_version=1,
            )
        )


def stored_visits(runtime: Runtime, campaign: Campaign) -> dict[tuple[int, str], int]:
    with runtime.db.reading() as session:
        rows = session.execute(
            select(Visit.generation, Visit.channel, func.sum(Visit.count))
            .where(Visit.campaign_id == campaign.id)
            .group_by(Visit.generation, Visit.channel)
        )
        return {(generation, channel): int(total) for generation, channel, total in rows}


class StatementLog:
    """Every SQL statement the app's engine sends while it is attached."""

    def __init__(self, runtime: Runtime) -> None:
        self.statements: list[str] = []
        self._engine = runtime.db.engine

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements.append(statement.strip().upper())

    def __enter__(self) -> StatementLog:
        event.listen(self._engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._record)

    @property
    def writes(self) -> list[str]:
        verbs = ("INSERT", "UPDATE", "DELETE", "BEGIN IMMEDIATE")
        return [s for s in self.statements if s.startswith(verbs)]


def test_a_landing_view_writes_nothing_to_the_database(app: Flask, runtime: Runtime) -> None:
    campaign = make_campaign(runtime.db)
    add_forward(runtime, campaign, "pubSMS")
    visitor = app.test_client()
    with StatementLog(runtime) as log:
        assert visitor.get(f"/c/{campaign.slug}").status_code == 200
        visitor.set_cookie(REF_COOKIE, runtime.tokens.sign(Purpose.FORWARD, "pubSMS"))
        assert visitor.get(f"/c/{campaign.slug}").status_code == 200
        assert visitor.get(f"/c/{campaign.slug}").status_code == 200
    assert log.statements, "the landing page reads the campaign"
    assert log.writes == []
    assert stored_visits(runtime, campaign) == {}

    analytics.refresh_rollups(runtime.db, campaign.slug, runtime.clock.now(), visits=counter_of(runtime))
    assert stored_visits(runtime, campaign) == {(1, "direct"): 1, (2, "sms"): 2}
    metrics = analytics.campaign_metrics(runtime.db, campaign.slug, runtime.clock.now(), visits=counter_of(runtime))
    assert metrics.overall.visitors == 3
    assert {c.channel: c.visitors for c in metrics.channels} == {"sms": 2, "direct": 1}


def test_the_dashboard_of_a_small_campaign_shows_views_at_once(app: Flask, runtime: Runtime) -> None:
    campaign = make_campaign(runtime.db)
    client = staff_client(app, "marketer")
    assert client.get(f"/api/v1/campaigns/{campaign.slug}/metrics").get_json()["overall"]["visitors"] == 0
    for _ in range(3):
        assert app.test_client().get(f"/c/{campaign.slug}").status_code == 200
    # Read again within the 15 s the roll-ups stay fresh: the views are folded in anyway.
    assert client.get(f"/api/v1/campaigns/{campaign.slug}/metrics").get_json()["overall"]["visitors"] == 3


def test_a_count_is_folded_once_however_many_refreshes_run(app: Flask, runtime: Runtime) -> None:
    campaign = make_campaign(runtime.db)
    counter = counter_of(runtime)
    today = utcnow().date()
    for _ in range(5):
        counter.count(campaign.id, VisitSlice(today, 1, "direct"))
    first = counter.take(campaign.id, today)
    counter.count(campaign.id, VisitSlice(today, 1, "direct"))  # a view between two folds
    second = counter.take(campaign.id, today)
    assert first == {VisitSlice(today, 1, "direct"): 5}
    assert second == {VisitSlice(today, 1, "direct"): 1}
    assert counter.take(campaign.id, today) == {}


def test_counts_taken_for_a_refresh_that_fails_are_kept_for_the_next(
    app: Flask, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = make_campaign(runtime.db)
    for _ in range(4):
        assert app.test_client().get(f"/c/{campaign.slug}").status_code == 200

    def broken(*_args: Any) -> None:
        raise RuntimeError("the roll-up failed")

    with monkeypatch.context() as patched:
        patched.setattr(rollups, "_insert_forward_stats", broken)
        with pytest.raises(RuntimeError):
            analytics.refresh_rollups(runtime.db, campaign.slug, runtime.clock.now(), visits=counter_of(runtime))
    assert stored_visits(runtime, campaign) == {}
    analytics.refresh_rollups(runtime.db, campaign.slug, runtime.clock.now(), visits=counter_of(runtime))
    assert stored_visits(runtime, campaign) == {(1, "direct"): 4}


def test_without_redis_the_landing_page_renders_and_warns_once(
    app: Flask, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    campaign = make_campaign(runtime.db)
    # Refused at once, and not asked again (redis-py's default is to retry with back-off).
    nowhere = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    runtime.visits = VisitCounter(nowhere)
    with caplog.at_level(logging.WARNING, logger="engine.services.analytics"):
        for _ in range(3):
            assert app.test_client().get(f"/c/{campaign.slug}").status_code == 200
    warnings = [r for r in caplog.records if "not being counted" in r.getMessage()]
    assert len(warnings) == 1
    # The figures still read (the views are lost, nothing else).
    client = staff_client(app, "marketer")
    assert client.get(f"/api/v1/campaigns/{campaign.slug}/metrics").status_code == 200


def test_a_visit_slice_refuses_what_cannot_be_a_field() -> None:
    today = utcnow().date()
    with pytest.raises(ValueError):
        VisitSlice(today, 0, "direct")
    with pytest.raises(ValueError):
        VisitSlice(today, 1, "a:b")
    assert VisitSlice.from_field(today, VisitSlice(today, 3, "email").redis_field) == VisitSlice(today, 3, "email")
