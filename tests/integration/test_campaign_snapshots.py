"""Campaigns kept by each process between requests (engine.services.snapshots): a change made
by another process (another app on the same database, with its own copies) is honoured by the
very next request, and nothing else makes a process load the campaign again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from engine import create_app
from engine.models import (
    Campaign,
    CampaignSnapshotVersion,
    CampaignStatus,
    Forward,
    Message,
    MessageStatus,
    Role,
    WebhookDelivery,
    WebhookEndpoint,
)
from engine.runtime import Runtime
from engine.services.campaigns import change_status
from engine.services.forwarding import PreviewRequired
from engine.services.history import Actor, ActorKind
from engine.services.lookups import CampaignUnavailable
from engine.services.snapshots import snapshot_version
from engine.services.templates import add_template_versions
from engine.services.webhooks import EVENT_TYPES, EndpointFields
from tests.helpers import count, forward_form, runtime_of, submission

MARKETER = Actor("mo@staff.example", ActorKind.USER, Role.MARKETER)


@pytest.fixture
def other(database_url: str, settings_for) -> Iterator[Runtime]:  # type: ignore[no-untyped-def]
    """Another process on the same database: an app of its own, with its own copies."""
    app = create_app(settings_for(database_url))
    runtime = runtime_of(app)
    yield runtime
    runtime.db.dispose()


def kept(runtime: Runtime) -> Any:
    """The copy of `spring` this process serves now (reading the version as a request does)."""
    with runtime.db.reading() as session:
        return runtime.snapshots.current(session, "spring")


def test_a_campaign_paused_elsewhere_takes_no_more_forwards(runtime: Runtime, other: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    runtime.forwarding.submit("spring", submission("bob@example.com"))
    change_status(other.db, "spring", CampaignStatus.PAUSED, MARKETER, "stock ran out")
    with pytest.raises(CampaignUnavailable) as refused:
        runtime.forwarding.submit("spring", submission("carol@example.com"))
    assert refused.value.status == 404
    assert count(runtime.db, Forward) == 1


def test_a_campaign_ended_by_a_bulk_update_elsewhere_is_ended_here(runtime: Runtime, other: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    runtime.forwarding.submit("spring", submission("bob@example.com"))
    with other.db.transaction() as session:
        session.execute(update(Campaign).where(Campaign.slug == "spring").values(status=CampaignStatus.ENDED))
    with pytest.raises(CampaignUnavailable) as refused:
        runtime.forwarding.submit("spring", submission("carol@example.com"))
    assert refused.value.status == 410
    assert count(runtime.db, Forward) == 1


def test_a_new_policy_set_elsewhere_applies_to_the_next_forward(runtime: Runtime, other: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    runtime.forwarding.submit("spring", submission("bob@example.com"))
    with other.db.transaction() as session:
        stored = session.scalar(select(Campaign).where(Campaign.slug == "spring"))
        stored.policy_name = "eu-strict"
        stored.channels = ["email"]
    # eu-strict lets nothing go before the sender has seen the message.
    with pytest.raises(PreviewRequired):
        runtime.forwarding.submit("spring", submission("carol@example.com", previewed=False))
    assert count(runtime.db, Forward) == 1


def test_a_resumed_campaign_takes_forwards_again(runtime: Runtime, other: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    change_status(runtime.db, "spring", CampaignStatus.PAUSED, MARKETER, "a break")
    with pytest.raises(CampaignUnavailable):
        runtime.forwarding.submit("spring", submission("bob@example.com"))
    change_status(other.db, "spring", CampaignStatus.ACTIVE, MARKETER)
    assert len(runtime.forwarding.submit("spring", submission("bob@example.com")).message_ids) == 1


def test_an_endpoint_added_and_disabled_elsewhere(runtime: Runtime, other: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    runtime.forwarding.submit("spring", submission("bob@example.com"))
    assert count(runtime.db, WebhookDelivery) == 0
    view, _secret = other.webhooks.create(
        "default", EndpointFields(url="https://93.184.216.34/in", event_types=EVENT_TYPES), "test"
    )
    runtime.forwarding.submit("spring", submission("carol@example.com"))
    assert count(runtime.db, WebhookDelivery) == 1  # the new endpoint hears of Carol's forward
    other.webhooks.update("default", view.id, EndpointFields(enabled=False), "test")
    runtime.forwarding.submit("spring", submission("dan@example.com"))
    assert count(runtime.db, WebhookDelivery) == 1


def test_a_template_uploaded_elsewhere_is_the_one_measured(runtime: Runtime, other: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    runtime.forwarding.submit("spring", submission("06 12345678"))
    before = kept(runtime)
    new_text = "{{ sender_name }}: {{ link }} Reply STOP to opt out, or: {{ unsubscribe_link }}"
    with other.db.transaction() as session:
        stored = session.scalar(select(Campaign).where(Campaign.slug == "spring"))
        add_template_versions(session, stored, {"sms.txt": new_text})
    after = kept(runtime)
    # What a friend's text is measured with (and the form's checks read) is the new version.
    assert after.template_versions["sms.txt"] == before.template_versions["sms.txt"] + 1
    assert after.campaign.own_sources()["sms.txt"] == new_text


def test_the_copy_is_kept_while_nothing_changes(runtime: Runtime, other: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    runtime.forwarding.submit("spring", submission("bob@example.com"))
    first = kept(runtime)
    runtime.forwarding.submit("spring", submission("carol@example.com"))
    assert kept(runtime) is first
    # Forwards, messages and an endpoint's failure counters are not the campaign.
    view, _secret = other.webhooks.create(
        "default", EndpointFields(url="https://93.184.216.34/in", event_types=EVENT_TYPES), "test"
    )
    listened = kept(runtime)
    assert listened is not first
    with other.db.transaction() as session:
        endpoint = session.get(WebhookEndpoint, view.id)
        endpoint.failed_deliveries += 1
    with other.db.transaction() as session:
        session.execute(update(Message).values(status=MessageStatus.SENT))
    assert kept(runtime) is listened


def test_every_change_moves_the_version_in_its_own_transaction(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    def version() -> int | None:
        with runtime.db.reading() as session:
            return snapshot_version(session)

    start = version()
    assert start is not None
    with pytest.raises(RuntimeError), runtime.db.transaction() as session:
        session.execute(update(Campaign).values(max_friends_per_submission=2))
        raise RuntimeError("rolled back")
    assert version() == start  # a change rolled back moved nothing
    change_status(runtime.db, "spring", CampaignStatus.PAUSED, MARKETER)
    assert version() is not None and version() > start  # type: ignore[operator]


def test_a_database_without_the_version_row_trusts_no_copy(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    runtime.forwarding.submit("spring", submission("bob@example.com"))
    table = CampaignSnapshotVersion.__table__
    with runtime.db.transaction() as session:
        row = session.execute(select(table)).one()
        session.execute(table.delete())
    try:
        # Nothing moves now that the row is gone: every use reads the campaign again.
        with runtime.db.transaction() as session:
            session.execute(update(Campaign).values(status=CampaignStatus.ENDED))
        with pytest.raises(CampaignUnavailable):
            runtime.forwarding.submit("spring", submission("carol@example.com"))
    finally:
        with runtime.db.transaction() as session:
            session.execute(table.insert().values(id=row.id, version=row.version + 1))
    assert count(runtime.db, Forward) == 1


def test_over_http_the_next_post_after_a_pause_elsewhere_is_refused(site: tuple[Flask, Runtime], settings_for) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    client = app.test_client()
    page = client.get("/c/spring")
    assert page.status_code == 200
    other_app = create_app(settings_for(runtime.db.url))
    try:
        change_status(runtime_of(other_app).db, "spring", CampaignStatus.PAUSED, MARKETER)
    finally:
        runtime_of(other_app).db.dispose()
    response = client.post("/c/spring/forward", data=forward_form(page.text))
    assert response.status_code == 404
    assert count(runtime.db, Forward) == 0
