"""The scheduler's housekeeping on a real runtime, and a dispatch job that loses the database."""

from __future__ import annotations

import logging
import os
import time

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from engine import create_app
from engine.models import RollupState
from engine.queue import DISPATCH, QueueUnavailable
from engine.scheduler import build_scheduler
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.faults import TcpProxy
from tests.helpers import make_campaign, runtime_of, statuses, submission


def test_the_active_scheduler_sweeps_refreshes_analytics_and_removes_dead_uploads(
    database_url: str, redis_url: str, settings_for, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    transport = MemoryTransport()
    app = create_app(settings_for(database_url, redis_url), transports=Transports(email=transport, sms=transport))
    runtime = runtime_of(app)
    make_campaign(runtime.db)

    # A forward whose dispatch job was never asked for (Redis refused it after the commit).
    def redis_gone(**_: object) -> bool:
        raise QueueUnavailable("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(runtime.queue, "request_dispatch", redis_gone)
        runtime.forwarding.submit("spring", submission("bob@example.com"))
    # An upload left behind two days ago by an import whose process died, and one of now.
    folder = runtime.coupon_imports.folder
    folder.mkdir(parents=True)
    dead, fresh = folder / f"{'a' * 32}.csv", folder / f"{'b' * 32}.csv"
    dead.write_text("code\nOLD\n")
    fresh.write_text("code\nNEW\n")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(dead, (two_days_ago, two_days_ago))

    with app.app_context():
        scheduler, standby = build_scheduler(runtime), build_scheduler(runtime)
        scheduler.tick()
        standby.tick()
    assert scheduler.active and not standby.active
    assert runtime.queue.queue.count == 1  # the sweep asked for the dispatch that was lost
    assert runtime.queue.drain() == 1
    assert set(statuses(runtime.db).values()) == {"sent"} and [e.to for e in transport.emails] == ["bob@example.com"]
    with runtime.db.reading() as session:
        assert session.scalars(select(RollupState.forwards)).all() == [1]
    assert list(folder.iterdir()) == [fresh]
    runtime.db.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_dispatch_job_that_loses_the_database_ends_with_one_line_and_sends_once_it_is_back(
    database_url: str, redis_url: str, settings_for, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    try:
        through_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
        transport = MemoryTransport()
        app = create_app(settings_for(through_proxy, redis_url), transports=Transports(email=transport, sms=transport))
        runtime = runtime_of(app)
        make_campaign(runtime.db)
        runtime.forwarding.submit("spring", submission("bob@example.com", "06 12345678"))
        caplog.set_level(logging.WARNING, logger="engine.resilience")

        proxy.cut()
        runtime.queue.enqueue(DISPATCH)
        runtime.queue.enqueue(DISPATCH)
        assert runtime.queue.drain() == 3  # each job ended: none failed, and the worker goes on
        assert [r.getMessage()[:30] for r in caplog.records] == ["the database cannot be reached"]
        assert runtime.queue.queue.failed_job_registry.count == 0
        assert transport.emails == [] and transport.sms == []

        proxy.restore()
        runtime.queue.enqueue(DISPATCH)
        assert runtime.queue.drain() == 1
        assert caplog.records[-1].getMessage().startswith("the database is back")
        assert set(statuses(runtime.db).values()) == {"sent"}
        assert len(transport.emails) == 1 and len(transport.sms) == 1
        runtime.db.dispose()
    finally:
        proxy.stop()
