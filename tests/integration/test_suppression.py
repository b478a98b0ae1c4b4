"""Opt-outs on SQLite and PostgreSQL: the unsubscribe link and the two suppression checks."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from engine.models import Forward, Message, OptOutEntry, Suppression, SuppressionScope, SuppressionSource
from engine.runtime import Runtime
from engine.tokens import InvalidToken, Purpose
from engine.transports.memory import MemoryTransport
from tests.helpers import count, make_campaign, statuses, submission


def unsubscribe_token(runtime: Runtime, message_id: int) -> str:
    with runtime.db.reading() as session:
        return runtime.tokens.sign(Purpose.UNSUBSCRIBE, session.get(Message, message_id).public_id)


def sent_to(transport: MemoryTransport) -> list[str]:
    return [e.to for e in transport.emails] + [s.to for s in transport.sms]


def test_opted_out_friend_is_never_messaged_again(runtime: Runtime, campaign, transport: MemoryTransport) -> None:  # type: ignore[no-untyped-def]
    make_campaign(runtime.db, "autumn")
    first = runtime.forwarding.submit("spring", submission("bob@example.com"))
    runtime.delivery.deliver(first.message_ids)
    runtime.suppression.unsubscribe(
        unsubscribe_token(runtime, first.message_ids[0]), SuppressionScope.FRIENDS, SuppressionSource.ONE_CLICK
    )

    # Another sender, another campaign: accepted like any forward, so the sender learns nothing...
    later = runtime.forwarding.submit("autumn", submission("Bob@Example.com", "carol@example.com", sender_name="Dan"))
    assert later.friend_count == 2
    runtime.queue.drain()
    # ...but Bob gets nothing, and only his hash is kept, with the attempt on record.
    assert sent_to(transport) == ["bob@example.com", "carol@example.com"]
    with runtime.db.reading() as session:
        bob = session.scalars(
            select(Forward).where(Forward.campaign_id != campaign.id, Forward.channel == "email")
        ).first()
        attempt = session.scalars(select(Message).where(Message.forward_id == bob.id)).one()
    assert bob.recipient_contact is None
    assert attempt.status == "suppressed"


def test_opt_out_between_acceptance_and_send_stops_the_send(
    runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    first = runtime.forwarding.submit("spring", submission("bob@example.com"))
    runtime.delivery.deliver(first.message_ids)
    queued = runtime.forwarding.submit("spring", submission("carol@example.com", sender_name="Dan"))
    # Carol opts out (through Bob's message, as if she had got one too) before the worker runs.
    with runtime.db.transaction() as session:
        session.add(
            Suppression(
                contact_hash=session.get(Message, queued.message_ids[0]).forward.recipient_contact_hash,
                channel="email",
                scope="friends",
                scope_key="friends",
                source="manual",
            )
        )
    report = runtime.delivery.deliver(queued.message_ids)
    assert report.suppressed == list(queued.message_ids)
    assert sent_to(transport) == ["bob@example.com"]
    assert statuses(runtime.db)[queued.message_ids[0]] == "suppressed"


def test_campaign_scope_stops_only_that_campaign(runtime: Runtime, campaign, transport: MemoryTransport) -> None:  # type: ignore[no-untyped-def]
    make_campaign(runtime.db, "autumn")
    first = runtime.forwarding.submit("spring", submission("bob@example.com"))
    runtime.delivery.deliver(first.message_ids)
    runtime.suppression.unsubscribe(
        unsubscribe_token(runtime, first.message_ids[0]), SuppressionScope.CAMPAIGN, SuppressionSource.LINK
    )
    runtime.delivery.deliver(runtime.forwarding.submit("autumn", submission("bob@example.com")).message_ids)
    assert sent_to(transport) == ["bob@example.com", "bob@example.com"]


def test_suppression_is_per_channel(runtime: Runtime, campaign, transport: MemoryTransport) -> None:  # type: ignore[no-untyped-def]
    first = runtime.forwarding.submit("spring", submission("06 12345678"))
    runtime.delivery.deliver(first.message_ids)
    runtime.suppression.unsubscribe(
        unsubscribe_token(runtime, first.message_ids[0]), SuppressionScope.FRIENDS, SuppressionSource.LINK
    )
    runtime.delivery.deliver(runtime.forwarding.submit("spring", submission("bob@example.com")).message_ids)
    assert sent_to(transport) == ["bob@example.com", "+31612345678"]


def test_unsubscribing_twice_is_harmless(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    first = runtime.forwarding.submit("spring", submission("bob@example.com"))
    token = unsubscribe_token(runtime, first.message_ids[0])
    for _ in range(3):
        view = runtime.suppression.unsubscribe(token, SuppressionScope.FRIENDS, SuppressionSource.ONE_CLICK)
    assert (view.sender_name, view.brand_name, view.channel) == ("Anna", "Acme", "email")
    assert count(runtime.db, Suppression) == 1


def test_forward_token_is_no_unsubscribe_token(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    runtime.forwarding.submit("spring", submission("bob@example.com"))
    with runtime.db.reading() as session:
        forward = session.scalars(select(Forward)).one()
    with pytest.raises(InvalidToken):
        runtime.suppression.unsubscribe(
            runtime.tokens.sign(Purpose.FORWARD, forward.public_id), SuppressionScope.FRIENDS, SuppressionSource.LINK
        )
    assert count(runtime.db, Suppression) == 0


def test_one_click_post_works_without_cookies_or_csrf_and_does_not_redirect(
    app: Flask, runtime: Runtime, campaign
) -> None:  # type: ignore[no-untyped-def]
    first = runtime.forwarding.submit("spring", submission("bob@example.com"))
    token = unsubscribe_token(runtime, first.message_ids[0])
    client = app.test_client()

    page = client.get(f"/u/{token}")  # a link scanner's prefetch
    assert page.status_code == 200
    assert "Anna sent you an offer from Acme" in page.text
    assert count(runtime.db, Suppression) == 0

    response = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert "You're unsubscribed" in response.text
    with runtime.db.reading() as session:
        suppression = session.scalars(select(Suppression)).one()
    assert (suppression.scope, suppression.source, suppression.channel) == ("friends", "one-click", "email")


def test_one_click_posted_five_times_is_one_opt_out_in_the_log(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    first = runtime.forwarding.submit("spring", submission("bob@example.com"))
    token = unsubscribe_token(runtime, first.message_ids[0])
    client = app.test_client()
    for _ in range(5):
        assert client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert count(runtime.db, OptOutEntry) == 1
    # Another scope is another request, and is logged.
    runtime.suppression.unsubscribe(token, SuppressionScope.GLOBAL, SuppressionSource.LINK)
    assert count(runtime.db, OptOutEntry) == 2
    assert app.test_cli_runner().invoke(args=["audit", "verify"]).exit_code == 0


@pytest.mark.parametrize(("token", "status"), [("forged.token.here", 404), ("x", 404)])
def test_bad_unsubscribe_tokens_get_a_page_not_an_error(app: Flask, token: str, status: int) -> None:
    client = app.test_client()
    assert client.get(f"/u/{token}").status_code == status
    assert client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == status
