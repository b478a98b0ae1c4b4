"""Outgoing webhooks on SQLite and PostgreSQL, delivered to a real HTTP receiver on this machine:
events from real forwards, signatures a Standard Webhooks library accepts, retries as the clock
moves, giving up, disabling an endpoint that keeps failing, and the SSRF guard at registration
and at delivery (a name that resolves elsewhere the second time)."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme
from flask import Flask
from sqlalchemy import func, select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from engine import create_app
from engine.clock import FixedClock
from engine.models import (
    Campaign,
    DeliveryStatus,
    SuppressionScope,
    SuppressionSource,
    WebhookDelivery,
    WebhookEvent,
)
from engine.runtime import Runtime
from engine.services.suppression import suppress_contact
from engine.services.webhook_delivery import RETRY_DELAYS
from engine.services.webhooks import EndpointFields, InvalidEndpoint, publish
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import make_campaign, runtime_of, staff_client, submission, wait_until


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver: answers each request with the next status of `script` (then 200)."""

    port: int = 0
    script: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    extra_headers: dict[str, str] = field(default_factory=dict)
    answer: bytes = b"ok"
    delay: float = 0.0  # seconds to wait before answering

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/in"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status = state.script.pop(0) if state.script else 200
            time.sleep(state.delay)
            self.send_response(status)
            for name, value in state.extra_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(state.answer)))
            self.end_headers()
            self.wfile.write(state.answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def hooks_app(database_url: str, settings_for, clock: FixedClock) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    """The app as in development: webhooks may go to a receiver on this machine."""
    memory = MemoryTransport()
    app = create_app(
        settings_for(database_url, webhooks_allow_local=True, webhook_disable_after_failures=3),
        transports=Transports(email=memory, sms=memory),
        clock=clock,
    )
    make_campaign(runtime_of(app).db)
    yield app
    runtime_of(app).db.dispose()


@pytest.fixture
def rt(hooks_app: Flask) -> Runtime:
    return runtime_of(hooks_app)


def register(runtime: Runtime, url: str, *events: str, team: str = "default") -> tuple[int, str]:
    fields = EndpointFields(url=url, event_types=events or ("forward.created",))
    view, secret = runtime.webhooks.create(team, fields, "marketer@staff.example")
    return view.id, secret


def deliveries(runtime: Runtime) -> list[WebhookDelivery]:
    with runtime.db.reading() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def run_jobs(runtime: Runtime) -> None:
    """What the worker does: the jobs asked for, after the scheduler's sweep."""
    runtime.webhook_sender.sweep()
    runtime.queue.drain()


def test_a_real_forward_reaches_the_receiver_signed_and_without_a_contact(rt: Runtime, receiver: Receiver) -> None:
    endpoint_id, secret = register(rt, receiver.url, "forward.created")
    assert secret.startswith("whsec_") and len(secret) >= len("whsec_") + 32

    rt.forwarding.submit("spring", submission("bob@example.com", sender_contact="anna@example.com"))
    rt.queue.drain()  # the forward's own jobs: its message, and the webhook's delivery

    assert len(receiver.received) == 1
    request = receiver.received[0]
    assert request.path == "/in"
    # The receiver's library accepts the signature (and would refuse any change to the body).
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "forward.created"
    assert payload["data"]["campaign"] == "spring" and payload["data"]["generation"] == 1
    assert request.headers["webhook-id"].startswith("msg_")
    assert request.headers["content-type"] == "application/json"
    for personal in (b"bob@example.com", b"anna@example.com", b"Anna"):
        assert personal not in request.body
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body.replace(b"spring", b"summer"), request.headers)

    [delivery] = deliveries(rt)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("succeeded", 1, 200)
    assert delivery.response_ms is not None and delivery.endpoint_id == endpoint_id


def test_a_failing_receiver_is_retried_as_the_clock_moves_until_it_recovers(
    rt: Runtime, receiver: Receiver, clock: FixedClock
) -> None:
    register(rt, receiver.url, "forward.clicked")
    receiver.script = [500, 503]
    with rt.db.transaction() as session:
        publish(session, "forward.clicked", {"campaign": "spring", "forward": "abc"}, now=clock.now())
    rt.queue.drain()

    [delivery] = deliveries(rt)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("pending", 1, 500)
    assert delivery.next_attempt_at is not None
    wait = delivery.next_attempt_at - clock.now()
    assert RETRY_DELAYS[0] * 0.9 <= wait <= RETRY_DELAYS[0] * 1.1

    run_jobs(rt)  # not due yet: nothing is sent
    assert len(receiver.received) == 1

    clock.advance(timedelta(seconds=6))
    run_jobs(rt)
    [delivery] = deliveries(rt)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("pending", 2, 503)
    assert delivery.next_attempt_at is not None
    assert RETRY_DELAYS[1] * 0.9 <= delivery.next_attempt_at - clock.now() <= RETRY_DELAYS[1] * 1.1

    clock.advance(RETRY_DELAYS[1] * 1.1)
    run_jobs(rt)
    [delivery] = deliveries(rt)
    assert (delivery.status, delivery.attempts, delivery.response_status, delivery.last_error) == (
        "succeeded",
        3,
        200,
        None,
    )
    # Every attempt is the same message: the receiver deduplicates by its id.
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert len(receiver.received) == 3


def test_a_receiver_that_never_answers_2xx_is_given_up_after_a_day_then_disabled(
    rt: Runtime, receiver: Receiver, clock: FixedClock, hooks_app: Flask
) -> None:
    endpoint_id, _ = register(rt, receiver.url, "campaign.paused")
    receiver.script = [500] * 100
    started = clock.now()
    for _ in range(3):  # the test app disables an endpoint after 3 deliveries given up
        with rt.db.transaction() as session:
            publish(session, "campaign.paused", {"campaign": "spring", "automatic": False}, now=clock.now())
    rt.queue.drain()
    for _ in range(30):  # to each next attempt, as the scheduler would find it due
        due = [d.next_attempt_at for d in deliveries(rt) if d.status == "pending" and d.next_attempt_at]
        if not due:
            break
        clock.set(max(min(due), clock.now()))
        run_jobs(rt)
    rows = deliveries(rt)
    assert [(d.status, d.attempts) for d in rows] == [("failed", len(RETRY_DELAYS) + 1)] * 3
    last_attempt = max(d.last_attempt_at for d in rows if d.last_attempt_at)
    assert timedelta(hours=20) <= last_attempt - started <= timedelta(hours=40)  # "about a day"

    endpoint = rt.webhooks.get(None, endpoint_id)
    assert not endpoint.enabled and endpoint.disabled_automatically
    assert endpoint.disabled_reason and "HTTP 500" in endpoint.disabled_reason

    # Nothing more goes to it, and the console says why.
    with rt.db.transaction() as session:
        publish(session, "campaign.paused", {"campaign": "spring", "automatic": True}, now=clock.now())
    sent = len(receiver.received)
    run_jobs(rt)
    assert len(receiver.received) == sent
    marketer = staff_client(hooks_app, "marketer")
    page = marketer.get("/console/webhooks").text
    assert f'id="alert-{endpoint_id}"' in page and "Disabled automatically" in page
    assert 'id="webhooks-disabled"' in marketer.get("/console").text


def test_a_redirect_is_not_followed(rt: Runtime, receiver: Receiver) -> None:
    register(rt, receiver.url, "reward.approved")
    receiver.script = [302]
    receiver.extra_headers = {"Location": "http://169.254.169.254/latest/meta-data"}
    with rt.db.transaction() as session:
        publish(session, "reward.approved", {"campaign": "spring", "reward": 1})
    rt.queue.drain()
    [delivery] = deliveries(rt)
    assert (delivery.status, delivery.response_status) == ("pending", 302)
    assert len(receiver.received) == 1


def test_only_the_start_of_an_answer_is_kept(rt: Runtime, receiver: Receiver) -> None:
    register(rt, receiver.url, "reward.earned")
    receiver.script = [500]
    receiver.answer = b"x" * 1_000_000
    with rt.db.transaction() as session:
        publish(session, "reward.earned", {"campaign": "spring", "reward": 1})
    rt.queue.drain()
    [delivery] = deliveries(rt)
    assert delivery.last_error is not None and len(delivery.last_error) <= 300


def test_dns_rebinding_is_refused_at_delivery(rt: Runtime, receiver: Receiver, database_url: str, settings_for) -> None:  # type: ignore[no-untyped-def]
    """Production rules: the name resolved to a public address when it was registered, and to
    127.0.0.1 when the delivery goes: refused, and nothing reaches the receiver."""
    rt.webhooks._allow_local = False  # production's rule for this test (registration)
    rt.webhook_sender._allow_local = False
    answers = {"hooks.example": ["93.184.216.34"]}
    rt.webhooks.resolver = rt.webhook_sender.resolver = lambda host, port: answers[host]
    register(rt, f"https://hooks.example:{receiver.port}/in", "friend.converted")
    answers["hooks.example"] = ["127.0.0.1"]
    with rt.db.transaction() as session:
        publish(session, "friend.converted", {"campaign": "spring", "redemption": 1})
    rt.queue.drain()
    [delivery] = deliveries(rt)
    assert delivery.status == "pending" and delivery.response_status is None
    assert delivery.last_error is not None and "refused" in delivery.last_error and "127.0.0.1" in delivery.last_error
    assert receiver.received == []


def test_a_name_resolving_to_loopback_is_refused_at_registration(rt: Runtime) -> None:
    rt.webhooks._allow_local = False
    rt.webhooks.resolver = lambda host, port: ["127.0.0.1"]
    with pytest.raises(InvalidEndpoint) as refused:
        register(rt, "https://innocent.example/hook")
    assert "loopback" in str(refused.value.errors["url"])


def test_the_resolved_address_is_the_one_connected_to_and_the_host_name_is_kept(
    rt: Runtime, receiver: Receiver
) -> None:
    rt.webhooks.resolver = rt.webhook_sender.resolver = lambda host, port: ["127.0.0.1"]
    register(rt, f"http://receiver.test:{receiver.port}/in", "forward.created")
    with rt.db.transaction() as session:
        publish(session, "forward.created", {"campaign": "spring", "forward": "abc"})
    rt.queue.drain()
    assert [r.headers["host"] for r in receiver.received] == [f"receiver.test:{receiver.port}"]


def test_events_go_to_their_campaigns_team_and_global_opt_outs_to_everyone(
    rt: Runtime, receiver: Receiver, clock: FixedClock
) -> None:
    register(rt, receiver.url, "forward.created", "opt_out.recorded")
    register(rt, receiver.url + "?team=other", "forward.created", "opt_out.recorded", team="other")
    make_campaign(rt.db, "theirs", team="other")
    rt.forwarding.submit("theirs", submission("bob@example.com"))
    with rt.db.transaction() as session:
        campaign_id = session.scalar(select(Campaign.id).where(Campaign.slug == "theirs"))
        suppress_contact(
            session,
            rt.hasher.hash_text("someone"),
            "email",
            SuppressionScope.GLOBAL,
            SuppressionSource.LINK,
            campaign_id=campaign_id,
            now=clock.now(),
        )
    rt.queue.drain()
    seen = sorted((r.path, json.loads(r.body)["type"]) for r in receiver.received)
    assert seen == [
        ("/in", "opt_out.recorded"),
        ("/in?team=other", "forward.created"),
        ("/in?team=other", "opt_out.recorded"),
    ]
    opt_out = next(json.loads(r.body) for r in receiver.received if r.path == "/in")
    assert set(opt_out["data"]) == {"contact_hash", "channel", "scope", "source"}


def test_an_event_is_written_only_with_what_caused_it(rt: Runtime, receiver: Receiver) -> None:
    register(rt, receiver.url, "forward.clicked")
    with pytest.raises(RuntimeError), rt.db.transaction() as session:
        publish(session, "forward.clicked", {"campaign": "spring", "forward": "abc"})
        raise RuntimeError("the click's transaction fails")
    rt.queue.drain()
    assert deliveries(rt) == [] and receiver.received == []


def test_an_event_may_not_carry_a_contact(rt: Runtime) -> None:
    with pytest.raises(ValueError, match="hashes, ids and counts"), rt.db.transaction() as session:
        publish(session, "forward.created", {"campaign": "spring", "email": "bob@example.com"})


def test_a_job_lost_with_redis_is_asked_for_again_by_the_sweep(
    rt: Runtime, receiver: Receiver, clock: FixedClock
) -> None:
    register(rt, receiver.url, "forward.clicked")
    with rt.db.transaction() as session:
        publish(session, "forward.clicked", {"campaign": "spring", "forward": "abc"}, now=clock.now())
    rt.queue.queue.empty()  # the job is lost
    run_jobs(rt)
    assert receiver.received == []  # asked for a moment ago: not yet asked again
    clock.advance(timedelta(minutes=6))
    run_jobs(rt)
    assert len(receiver.received) == 1
    assert [d.status for d in deliveries(rt)] == [DeliveryStatus.SUCCEEDED]


@pytest.fixture
def tls_receiver(tmp_path) -> Iterator[tuple[Receiver, list[str], str]]:  # type: ignore[no-untyped-def]
    """An HTTPS receiver on 127.0.0.1 whose certificate names hooks.example only: (its state,
    the server names clients asked for, the CA bundle that trusts it)."""
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("hooks.example").configure_cert(context)
    server_names: list[str] = []
    context.sni_callback = lambda sock, name, ctx: server_names.append(name or "")  # type: ignore[assignment]
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, server_names, str(bundle)
    server.shutdown()
    server.server_close()


def test_https_to_the_pinned_address_still_verifies_the_name(rt: Runtime, tls_receiver) -> None:  # type: ignore[no-untyped-def]
    receiver, server_names, bundle = tls_receiver
    rt.webhook_sender._ca_certs = bundle
    rt.webhooks.resolver = rt.webhook_sender.resolver = lambda host, port: ["127.0.0.1"]
    register(rt, f"https://hooks.example:{receiver.port}/in", "forward.created")
    register(rt, f"https://impostor.example:{receiver.port}/in", "forward.created")
    with rt.db.transaction() as session:
        publish(session, "forward.created", {"campaign": "spring", "forward": "abc"})
    rt.queue.drain()
    good, impostor = deliveries(rt)
    assert (good.status, good.response_status) == ("succeeded", 204)
    assert [r.headers["host"] for r in receiver.received] == [f"hooks.example:{receiver.port}"]
    # The certificate is for hooks.example: a name that merely resolves to the same address fails.
    assert impostor.status == "pending" and impostor.response_status is None
    assert impostor.last_error == "no answer: hostname 'impostor.example' doesn't match 'hooks.example'"
    assert "hooks.example" in server_names and "impostor.example" in server_names


def test_the_log_forgets_settled_deliveries_after_thirty_days(
    rt: Runtime, receiver: Receiver, clock: FixedClock
) -> None:
    register(rt, receiver.url, "forward.clicked")
    receiver.script = [500]
    for _ in range(2):
        with rt.db.transaction() as session:
            publish(session, "forward.clicked", {"campaign": "spring", "forward": "abc"}, now=clock.now())
    rt.queue.drain()
    assert sorted(d.status for d in deliveries(rt)) == ["pending", "succeeded"]
    clock.advance(timedelta(days=31))
    assert rt.webhook_sender.forget_old() == 1
    [left] = deliveries(rt)
    assert left.status == "pending"  # still to be sent, however old
    with rt.db.reading() as session:
        assert session.scalar(select(func.count()).select_from(WebhookEvent)) == 1


def test_the_embedded_queue_of_make_run_delivers_by_itself(
    database_url: str, settings_for, receiver: Receiver, clock: FixedClock
) -> None:  # type: ignore[no-untyped-def]
    """No Redis, no worker: the app's own worker thread sends the delivery once the click commits."""
    memory = MemoryTransport()
    settings = settings_for(database_url, webhooks_allow_local=True, inprocess_worker=True)
    app = create_app(settings, transports=Transports(email=memory, sms=memory), clock=clock)
    runtime = runtime_of(app)
    try:
        make_campaign(runtime.db)
        register(runtime, receiver.url, "forward.clicked")
        with app.app_context(), runtime.db.transaction() as session:
            publish(session, "forward.clicked", {"campaign": "spring", "forward": "abc"}, now=clock.now())
        wait_until(lambda: receiver.received or None, what="the embedded worker's delivery", timeout=20)
        wait_until(lambda: [d for d in deliveries(runtime) if d.status == "succeeded"] or None, what="its record")
    finally:
        runtime.queue.stop()
        runtime.db.dispose()


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(rt: Runtime, receiver: Receiver) -> None:
    register(rt, receiver.url, "forward.clicked")
    rt.webhook_sender._timeout = 1
    receiver.delay = 3
    started = time.monotonic()
    with rt.db.transaction() as session:
        publish(session, "forward.clicked", {"campaign": "spring", "forward": "abc"})
    rt.queue.drain()
    assert time.monotonic() - started < 2.5
    [delivery] = deliveries(rt)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("pending", 1, "no answer: timed out")
