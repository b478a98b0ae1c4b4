"""The queue on a real Redis: jobs carry ids, workers drain them, and a Redis outage loses nothing."""

from __future__ import annotations

import json
import zlib

import pytest
import redis

from engine import create_app
from engine.queue import QueueUnavailable
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import counts, forward_form, make_campaign, runtime_of, statuses, submission


def test_forwards_ask_for_one_dispatch_job_that_carries_nothing_personal(
    database_url: str, redis_url: str, settings_for
) -> None:  # type: ignore[no-untyped-def]
    transport = MemoryTransport()
    app = create_app(settings_for(database_url, redis_url), transports=Transports(email=transport, sms=transport))
    runtime = runtime_of(app)
    make_campaign(runtime.db)
    runtime.forwarding.submit("spring", submission("bob@example.com", "06 12345678"))
    runtime.forwarding.submit("spring", submission("carol@example.com", sender_name="Dan"))

    # Two forwards, one job: the second found a dispatch already on its way.
    (job,) = runtime.queue.queue.get_jobs()
    assert job.func_name == "workers.jobs.dispatch"
    # What sits in Redis is JSON (RQ compresses it): no contact, no pickle.
    stored = json.loads(zlib.decompress(redis.Redis.from_url(redis_url).hget(job.key, "data")))
    assert stored[0] == "workers.jobs.dispatch"
    assert "example.com" not in json.dumps(stored)

    assert runtime.queue.drain() == 1
    assert set(statuses(runtime.db).values()) == {"sent"}
    assert [e.to for e in transport.emails] == ["bob@example.com", "carol@example.com"]
    # The job cleared the flag: the next forward asks for a new dispatch.
    runtime.forwarding.submit("spring", submission("dave@example.com", sender_name="Eve"))
    assert runtime.queue.queue.count == 1
    runtime.db.dispose()


def test_redis_lost_after_the_commit_keeps_the_forward_and_the_sweeper_delivers_it(
    database_url: str, redis_url: str, settings_for, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    transport = MemoryTransport()
    app = create_app(settings_for(database_url, redis_url), transports=Transports(email=transport, sms=transport))
    runtime = runtime_of(app)
    make_campaign(runtime.db)

    def redis_gone(**_: object) -> bool:
        raise QueueUnavailable("connection refused")

    # The caps were checked, the rows committed, and then Redis went away.
    monkeypatch.setattr(runtime.queue, "request_dispatch", redis_gone)
    receipt = runtime.forwarding.submit("spring", submission("bob@example.com"))
    assert receipt.enqueued is False
    assert statuses(runtime.db) == {receipt.message_ids[0]: "queued"}
    monkeypatch.undo()

    assert runtime.delivery.sweep().requeued == 1
    runtime.queue.drain()
    assert statuses(runtime.db) == {receipt.message_ids[0]: "sent"}
    assert [e.to for e in transport.emails] == ["bob@example.com"]
    runtime.db.dispose()


def test_with_redis_down_the_form_fails_closed_and_writes_nothing(database_url: str, settings_for) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings_for(database_url, "redis://127.0.0.1:1/0"))
    runtime = runtime_of(app)
    make_campaign(runtime.db)
    client = app.test_client()
    form = forward_form(client.get("/c/spring").text, friends=["bob@example.com"])
    response = client.post("/c/spring/forward", data=form)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "60"
    assert "Nothing was sent" in response.text
    assert counts(runtime.db) == {"forwards": 0, "messages": 0, "clicks": 0, "outbox_messages": 0}
    runtime.db.dispose()


def test_in_process_worker_thread_delivers_on_its_own_and_stops(database_url: str, settings_for) -> None:  # type: ignore[no-untyped-def]
    from engine.queue import InProcessJobQueue
    from tests.helpers import wait_until

    transport = MemoryTransport()
    app = create_app(
        settings_for(database_url, inprocess_worker=True), transports=Transports(email=transport, sms=transport)
    )
    runtime = runtime_of(app)
    assert isinstance(runtime.queue, InProcessJobQueue)
    make_campaign(runtime.db)
    runtime.forwarding.submit("spring", submission("bob@example.com"))
    wait_until(lambda: statuses(runtime.db) == {1: "sent"}, what="the worker thread to send")
    runtime.queue.stop()
    runtime.forwarding.submit("spring", submission("carol@example.com"))
    assert statuses(runtime.db)[2] == "queued"  # a stopped queue takes jobs but runs none
    runtime.db.dispose()
