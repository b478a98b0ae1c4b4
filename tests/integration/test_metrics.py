"""`GET /metrics` as Prometheus scrapes it: the counters move when a forward is taken and sent,
the backlog is read at scrape time, and in production only a token or an allowed address
gets the figures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from engine import create_app
from engine.models import Message, SuppressionScope, SuppressionSource
from engine.runtime import Runtime
from engine.tokens import Purpose
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import forward_form, runtime_of

TOKEN = "metrics-token-for-the-tests-0123"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: FlaskClient, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_forward_and_its_dispatch_move_the_counters(site: tuple[Flask, Runtime]) -> None:
    app, runtime = site
    client = app.test_client()
    before = scrape(client)
    assert value(before, "fluister_queue_readable") == 1
    assert value(before, "fluister_queue_due_messages") == 0

    page = client.get("/c/spring").text
    form = forward_form(page, friends=["bob@example.com", "carol@example.com"])
    assert client.post("/c/spring/forward", data=form).status_code == 303
    queued = scrape(client)
    assert value(queued, "fluister_forwards_accepted_total") == value(before, "fluister_forwards_accepted_total") + 1
    assert value(queued, "fluister_queue_due_messages") == 2
    assert value(queued, "fluister_queue_jobs") == 1  # the dispatch job the forward asked for

    runtime.queue.drain()
    sent = scrape(client)
    email = {"channel": "email", "provider": "memory"}
    assert value(sent, "fluister_messages_total", **email, status="sent") == (
        value(before, "fluister_messages_total", **email, status="sent") + 2
    )
    assert (
        value(sent, "fluister_send_seconds_count", **email) == value(before, "fluister_send_seconds_count", **email) + 2
    )
    assert value(sent, "fluister_dispatch_batch_size_count") == value(before, "fluister_dispatch_batch_size_count") + 1
    assert value(sent, "fluister_dispatch_batch_size_sum") == value(before, "fluister_dispatch_batch_size_sum") + 2
    assert value(sent, "fluister_queue_due_messages") == 0
    assert value(sent, "fluister_queue_oldest_due_age_seconds") == 0
    assert value(sent, "fluister_queue_jobs") == 0


def test_refusals_are_counted_by_reason(site: tuple[Flask, Runtime]) -> None:
    app, _ = site
    client = app.test_client()
    before = scrape(client)
    page = client.get("/c/spring").text
    assert client.post("/c/spring/forward", data=forward_form(page, website="http://spam.example")).status_code == 303
    assert client.post("/c/spring/forward", data=forward_form(page, friends=["not an address"])).status_code == 422
    after = scrape(client)
    for reason in ("honeypot", "form_invalid"):
        moved = value(after, "fluister_forwards_refused_total", reason=reason)
        assert moved == value(before, "fluister_forwards_refused_total", reason=reason) + 1, reason


def test_a_due_message_nobody_sends_shows_its_age(site: tuple[Flask, Runtime]) -> None:
    app, _ = site
    client = app.test_client()
    page = client.get("/c/spring").text
    assert client.post("/c/spring/forward", data=forward_form(page, friends=["bob@example.com"])).status_code == 303
    samples = scrape(client)
    assert value(samples, "fluister_queue_due_messages") == 1
    # Just queued: it has waited for well under a minute.
    assert 0 <= value(samples, "fluister_queue_oldest_due_age_seconds") < 60


def test_opt_outs_and_bad_webhook_signatures_are_counted(site: tuple[Flask, Runtime]) -> None:
    app, runtime = site
    client = app.test_client()
    before = scrape(client)
    refused = client.post("/hooks/twilio/status", data={"MessageSid": "SM1"}, headers={"X-Twilio-Signature": "forged"})
    assert refused.status_code == 403
    page = client.get("/c/spring").text
    assert client.post("/c/spring/forward", data=forward_form(page, friends=["bob@example.com"])).status_code == 303
    runtime.queue.drain()
    with runtime.db.reading() as session:
        message = session.scalars(select(Message)).one()
    token = runtime.tokens.sign(Purpose.UNSUBSCRIBE, message.public_id)
    runtime.suppression.unsubscribe(token, SuppressionScope.GLOBAL, SuppressionSource.ONE_CLICK)
    after = scrape(client)
    signature = {"provider": "twilio", "result": "bad_signature"}
    assert value(after, "fluister_webhook_events_total", **signature) == (
        value(before, "fluister_webhook_events_total", **signature) + 1
    )
    assert value(after, "fluister_opt_outs_total", source="one-click") == (
        value(before, "fluister_opt_outs_total", source="one-click") + 1
    )


@pytest.fixture
def production(database_url: str, settings_for):  # type: ignore[no-untyped-def]
    """A production app (as far as the metrics route tells), built with the given metrics settings."""
    apps: list[Runtime] = []

    def build(**metrics_settings: object) -> Flask:
        memory = MemoryTransport()
        settings = settings_for(database_url, env="production", **metrics_settings)
        app = create_app(settings, transports=Transports(email=memory, sms=memory))
        apps.append(runtime_of(app))
        return app

    yield build
    for runtime in apps:
        runtime.db.dispose()


def problem(response) -> dict:  # type: ignore[no-untyped-def, type-arg]
    assert response.mimetype == "application/problem+json"
    return response.get_json()  # type: ignore[no-any-return]


def test_production_asks_for_the_token(production) -> None:  # type: ignore[no-untyped-def]
    client = production(metrics_token=TOKEN).test_client()
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert problem(missing)["status"] == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer not-the-token"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_production_serves_an_allowed_address_without_the_token(production) -> None:  # type: ignore[no-untyped-def]
    client = production(metrics_token=TOKEN, metrics_allow_from=("10.0.0.0/8",)).test_client()
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code == 401
    only_addresses = production(metrics_allow_from=("10.0.0.0/8",)).test_client()
    assert only_addresses.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    outside = only_addresses.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert outside.status_code == 403
    assert "METRICS_ALLOW_FROM" in problem(outside)["detail"]


def test_production_without_token_or_addresses_serves_nobody(production) -> None:  # type: ignore[no-untyped-def]
    client = production().test_client()
    refused = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert refused.status_code == 403
    assert "METRICS_TOKEN" in problem(refused)["detail"]


def test_development_is_open(site: tuple[Flask, Runtime]) -> None:
    app, _ = site
    assert app.test_client().get("/metrics").status_code == 200


@pytest.fixture
def unreachable_database(settings_for, tmp_path) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    memory = MemoryTransport()
    app = create_app(
        settings_for(f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}"),
        transports=Transports(email=memory, sms=memory),
    )
    yield app
    runtime_of(app).db.dispose()


def test_a_scrape_without_the_database_still_answers(unreachable_database: Flask) -> None:
    samples = scrape(unreachable_database.test_client())
    assert value(samples, "fluister_queue_readable") == 0
    assert ("fluister_queue_due_messages", ()) not in samples
    assert ("fluister_forwards_accepted_total", ()) in samples
