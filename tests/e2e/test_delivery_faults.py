"""Fault injection on the real services: Redis killed under a worker, PostgreSQL cut in the
middle of a batch, a provider that answers late, resets, refuses, or refuses our key.

Whatever breaks: nothing handed to a provider is sent twice, nothing that never left us ends
`unknown` (it goes back to the queue and is sent later), and a campaign whose sending paused
itself keeps its page up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.engine import make_url

from engine import create_app
from engine.models import Campaign, Message
from engine.runtime import Runtime
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from engine.transports.sendgrid import SendGridTransport
from tests.conftest import TABLES
from tests.faults import PrivateRedis, TcpProxy
from tests.helpers import forward_form, make_campaign, runtime_of, submission
from tests.stubs.sendgrid import SendGridStub

# Every test here runs on PostgreSQL (SKIP LOCKED, a proxy cut between the app and the server).
pytestmark = pytest.mark.postgres

REFERENCE = "fluister_message"


@pytest.fixture
def sendgrid_tls() -> Iterator[SendGridStub]:
    with SendGridStub.running(tls=True) as stub:
        yield stub


@pytest.fixture
def postgres(postgres_url: str) -> str:
    """The PostgreSQL test database, emptied (this file cuts connections to it: PostgreSQL only)."""
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return postgres_url


def sendgrid_app(settings: Any, stub: SendGridStub, sms: MemoryTransport, **options: Any) -> Flask:
    email = SendGridTransport(stub.api_key, stub.url, ca_certs=stub.ca_bundle, **options)
    return create_app(settings, transports=Transports(email=email, sms=sms))


def forward_friends(runtime: Runtime, senders: int, *, texts: bool = False, first: int = 0) -> None:
    for n in range(first, first + senders):
        friends = [f"f{n}-{i}@example.com" for i in range(4)]
        if texts:
            friends.append(f"06 1{n:03d}0000")
        runtime.forwarding.submit("spring", submission(*friends, sender_name=f"Sender {n}"))


def outcome(runtime: Runtime) -> dict[str, str]:
    with runtime.db.reading() as session:
        return {m.public_id: m.status for m in session.scalars(select(Message))}


def handed_over(stub: SendGridStub) -> list[str]:
    """Our reference of every recipient of every request the provider processed."""
    return [delivery.custom_args[REFERENCE] for delivery in stub.deliveries()]


def stale(runtime: Runtime) -> None:
    """Age every claim past the sweeper's patience, instead of waiting half an hour."""
    with runtime.db.transaction() as session:
        session.execute(update(Message).values(claimed_at=runtime.clock.now() - timedelta(hours=1)))


def assert_each_sent_once(stub: SendGridStub, runtime: Runtime) -> None:
    references = handed_over(stub)
    assert len(references) == len(set(references)), "a message reached the provider twice"
    statuses = outcome(runtime)
    never_left = {public_id for public_id, status in statuses.items() if public_id not in references}
    assert all(statuses[public_id] != "unknown" for public_id in never_left), "a message that never left is unknown"


# -- Redis ------------------------------------------------------------------------------------------


def test_redis_killed_while_a_worker_holds_a_full_batch_loses_nothing(
    postgres: str, settings_for, sendgrid_tls: SendGridStub, private_redis: PrivateRedis
) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(postgres, private_redis.url, dispatch_batch_size=20)
    app = sendgrid_app(settings, sendgrid_tls, MemoryTransport())
    runtime = runtime_of(app)
    make_campaign(runtime.db)
    forward_friends(runtime, 15)  # 60 messages: three full batches
    private_redis.kill()  # the worker can no longer ask for a helper, nor clear its flag

    report = runtime.delivery.dispatch()
    assert len(report.sent) == 60
    private_redis.start()
    assert set(outcome(runtime).values()) == {"sent"}
    assert_each_sent_once(sendgrid_tls, runtime)
    runtime.db.dispose()


# -- PostgreSQL -------------------------------------------------------------------------------------


def test_postgresql_cut_mid_batch_leaves_only_what_was_handed_over_unknown(
    postgres: str, settings_for, sendgrid_tls: SendGridStub
) -> None:  # type: ignore[no-untyped-def]
    url = make_url(postgres)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    try:
        through_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
        texts = MemoryTransport()
        app = sendgrid_app(settings_for(through_proxy, dispatch_batch_size=25), sendgrid_tls, texts)
        runtime = runtime_of(app)
        make_campaign(runtime.db)
        forward_friends(runtime, 5, texts=True)  # one claim: 20 emails in one request, then 5 texts

        crashed: list[BaseException] = []

        def work() -> None:
            try:
                runtime.delivery.dispatch()
            except BaseException as error:  # the worker's job fails: the database is gone
                crashed.append(error)

        with sendgrid_tls.holding():
            worker = threading.Thread(target=work)
            worker.start()
            sendgrid_tls.wait_for(lambda: len(sendgrid_tls.accepted) == 1, what="the email request")
            proxy.cut()  # the provider has the emails; the worker cannot write that down
        worker.join(timeout=60)
        assert crashed, "the worker should have lost its database"
        assert texts.sms == []  # no text was handed over without being written down first

        proxy.restore()
        stale(runtime)
        sweep = runtime.delivery.sweep()
        assert (sweep.marked_unknown, sweep.released) == (20, 5)
        runtime.delivery.dispatch()
        statuses = outcome(runtime)
        assert sorted(statuses.values()) == ["sent"] * 5 + ["unknown"] * 20
        assert len(texts.sms) == 5
        assert_each_sent_once(sendgrid_tls, runtime)
        runtime.db.dispose()
    finally:
        proxy.stop()


# -- the provider -----------------------------------------------------------------------------------


def test_a_provider_that_answers_late_resets_and_refuses_never_sends_twice_nor_pauses(
    postgres: str, settings_for, sendgrid_tls: SendGridStub
) -> None:  # type: ignore[no-untyped-def]
    app = sendgrid_app(settings_for(postgres, dispatch_batch_size=400), sendgrid_tls, MemoryTransport(), timeout=0.5)
    runtime = runtime_of(app)
    make_campaign(runtime.db, max_friends_per_submission=5)
    forward_friends(runtime, 75)  # 300 friends: one request

    sendgrid_tls.latency = 1.0  # it takes the request, then answers too late
    assert len(runtime.delivery.dispatch().unknown) == 300
    sendgrid_tls.latency = 0
    assert campaign_status(runtime) == "active"  # a timeout is nobody's fault

    forward_friends(runtime, 10, first=75)  # 40 more
    sendgrid_tls.reset_next()  # reset before a byte of the request left (TLS handshake)
    assert len(runtime.delivery.dispatch().retry) == 40
    due_now(runtime)
    with sendgrid_tls.refusing():
        assert len(runtime.delivery.dispatch().retry) == 40
    due_now(runtime)
    sendgrid_tls.reset_next(after_processing=True)  # it took them, then the connection broke
    assert len(runtime.delivery.dispatch().unknown) == 40
    assert campaign_status(runtime) == "active"

    statuses = outcome(runtime)
    assert list(statuses.values()).count("unknown") == 340
    assert_each_sent_once(sendgrid_tls, runtime)
    runtime.db.dispose()


def test_a_campaign_that_paused_its_sending_keeps_its_page_and_holds_new_forwards(
    postgres: str, settings_for, sendgrid_tls: SendGridStub
) -> None:  # type: ignore[no-untyped-def]
    app = sendgrid_app(settings_for(postgres), sendgrid_tls, MemoryTransport())
    runtime = runtime_of(app)
    make_campaign(runtime.db)
    client = app.test_client()
    forward_friends(runtime, 2)
    sendgrid_tls.fail_next(401)  # the API key was revoked
    runtime.delivery.dispatch()
    assert campaign_status(runtime) == "paused"

    page = client.get("/c/spring")
    assert page.status_code == 200
    form = forward_form(page.text, friends=["late@example.com"])
    assert client.post("/c/spring/forward", data=form).status_code == 303
    runtime.delivery.dispatch()
    assert handed_over(sendgrid_tls) == []  # held, not sent
    assert set(outcome(runtime).values()) == {"queued"}

    assert app.test_cli_runner().invoke(args=["campaigns", "resume", "spring"]).exit_code == 0
    runtime.delivery.dispatch()
    assert set(outcome(runtime).values()) == {"sent"}
    assert_each_sent_once(sendgrid_tls, runtime)
    runtime.db.dispose()


def campaign_status(runtime: Runtime) -> str:
    with runtime.db.reading() as session:
        return session.scalars(select(Campaign.status)).one()


def due_now(runtime: Runtime) -> None:
    with runtime.db.transaction() as session:
        session.execute(update(Message).where(Message.status == "queued").values(not_before=None))
