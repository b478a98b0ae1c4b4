"""Faults must neither take a campaign down nor lose work, on SQLite and PostgreSQL.

What the public types is never our fault, a timeout is nobody's, and one failed request is one
failure however many friends it carried. An automatic pause stops sending, not the campaign.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select, update

from engine import create_app
from engine.models import Campaign, CampaignStatus, Message, MessageStatus
from engine.queue import QueueUnavailable
from engine.runtime import Runtime
from engine.services.campaigns import change_status
from engine.services.history import CLI
from engine.services.templates import add_template_versions
from engine.transports import AccountError, AmbiguousError, OutgoingSms, TransportError, Transports
from engine.transports.memory import BatchingMemoryTransport, MemoryTransport
from tests.helpers import forward_form, make_campaign, runtime_of, staff_client, statuses, submission

# A text template that trips over one note: the marketer's mistake, triggered by the public.
NOTE_TRAP = (
    "{{ brand_name }}: {{ sender_name }} sent you {{ offer_title }}"
    "{% if note == 'free coffee' %}{{ 1 // 0 }}{% endif %} {{ link }} STOP? {{ unsubscribe_link }}"
)
BROKEN_FOR_EVERYONE = "{{ brand_name }} {{ 1 // 0 }} {{ link }} {{ unsubscribe_link }} STOP"


def campaign_row(runtime: Runtime, slug: str = "spring") -> Campaign:
    with runtime.db.reading() as session:
        return session.scalars(select(Campaign).where(Campaign.slug == slug)).one()


def messages(runtime: Runtime) -> list[Message]:
    with runtime.db.reading() as session:
        return list(session.scalars(select(Message).order_by(Message.id)))


def set_sms_template(runtime: Runtime, body: str, slug: str = "spring") -> None:
    with runtime.db.transaction() as session:
        campaign = session.scalars(select(Campaign).where(Campaign.slug == slug)).one()
        add_template_versions(session, campaign, {"sms.txt": body})


def text_from(runtime: Runtime, sender: str, number: int, **fields: str) -> None:
    receipt = runtime.forwarding.submit("spring", submission(f"06 1234{number:04d}", sender_name=sender, **fields))
    runtime.delivery.deliver(receipt.message_ids)


@contextmanager
def campaign_limits(runtime: Runtime, **limits: int) -> Iterator[None]:
    """The campaign with other limits for a while (as a marketer would set them), then back."""
    with runtime.db.transaction() as session:
        campaign = session.scalars(select(Campaign).where(Campaign.slug == "spring")).one()
        before = {name: getattr(campaign, name) for name in limits}
        for name, value in limits.items():
            setattr(campaign, name, value)
    yield
    with runtime.db.transaction() as session:
        campaign = session.scalars(select(Campaign).where(Campaign.slug == "spring")).one()
        for name, value in before.items():
            setattr(campaign, name, value)


# -- what the public types ------------------------------------------------------------------------


def test_a_long_non_gsm_sender_name_fails_only_its_own_texts_and_never_pauses(
    runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    # The form refuses a name that makes the text too long for the campaign's segment limit;
    # a name accepted under a higher limit still meets the lower one a marketer sets before
    # the send. What the sender typed fails their own texts, and nobody else's.
    accepted = []
    with campaign_limits(runtime, sms_segment_limit=10):
        for n in range(25):  # many submissions, even from many "senders"
            receipt = runtime.forwarding.submit("spring", submission(f"06 1234{n:04d}", sender_name="王小明" * 26))
            accepted.extend(receipt.message_ids)
    runtime.delivery.deliver(accepted)
    assert campaign_row(runtime).status == "active"
    failed = messages(runtime)
    assert {(m.status, m.fault, m.error_code) for m in failed} == {("failed", "input", "render")}
    assert transport.sms == []
    # An ordinary sender's text still goes.
    text_from(runtime, "Anna", 99)
    assert [s.to for s in transport.sms] == ["+31612340099"]


def test_a_template_that_trips_over_some_input_is_shown_to_the_marketer_and_pauses_nothing(
    app: Flask, runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    set_sms_template(runtime, NOTE_TRAP)
    for n in range(25):
        text_from(runtime, f"Sender {n}", n, note="free coffee")
    text_from(runtime, "Anna", 99, note="see you")
    now = campaign_row(runtime)
    assert now.status == "active"
    assert now.status_reason and "fail on what their sender typed" in now.status_reason
    assert len(transport.sms) == 1
    page = staff_client(app, "marketer").get("/console/campaigns/spring")
    assert "fail on what their sender typed" in page.text
    assert "ZeroDivisionError" in page.text or "division" in page.text


def test_a_template_broken_for_everyone_pauses_sending_only_when_several_senders_meet_it(
    runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    set_sms_template(runtime, BROKEN_FOR_EVERYONE)
    for n in range(25):  # one visitor, over and over
        text_from(runtime, "Mallory", n)
    assert campaign_row(runtime).status == "active"
    assert {m.fault for m in messages(runtime)} == {"content"}
    text_from(runtime, "Sender 25", 25)
    assert campaign_row(runtime).status == "active"  # two senders
    text_from(runtime, "Sender 26", 26)
    paused = campaign_row(runtime)
    assert (paused.status, paused.paused_automatically) == ("paused", True)
    assert "27 of its last 27 sends failed" in paused.status_reason
    assert "for 3 different senders" in paused.status_reason


def test_one_visitor_typing_new_names_and_contacts_is_still_one_sender(
    runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    set_sms_template(runtime, BROKEN_FOR_EVERYONE)
    for n in range(25):
        contact = f"me{n}@example.com"
        text_from(runtime, f"Name {n}", n, client_ip="203.0.113.7", sender_contact=contact, challenge_solved=True)
    assert {m.fault for m in messages(runtime)} == {"content"}
    assert campaign_row(runtime).status == "active"


def test_one_visitor_taking_a_new_address_of_their_ipv6_network_is_still_one_sender(
    runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    set_sms_template(runtime, BROKEN_FOR_EVERYONE)
    for n in range(27):  # an IPv6 client has a whole /64: a new address, and a new name, each time
        text_from(runtime, f"Name {n}", n, client_ip=f"2001:db8:5:6::{n + 1:x}", challenge_solved=True)
    assert {m.fault for m in messages(runtime)} == {"content"}
    assert campaign_row(runtime).status == "active"
    # Visitors of other networks are other senders: the rule still pauses.
    text_from(runtime, "Anna", 27, client_ip="2001:db8:7::1", challenge_solved=True)
    text_from(runtime, "Ben", 28, client_ip="198.51.100.4", challenge_solved=True)
    paused = campaign_row(runtime)
    assert paused.status == "paused" and "for 3 different senders" in paused.status_reason


def test_timeouts_and_resets_never_pause_a_campaign(runtime: Runtime, campaign, transport: MemoryTransport) -> None:  # type: ignore[no-untyped-def]
    transport.fail_next(*[AmbiguousError("SendGrid did not answer in time")] * 25)
    for n in range(25):
        receipt = runtime.forwarding.submit("spring", submission(f"friend{n}@example.com", sender_name=f"S{n}"))
        runtime.delivery.deliver(receipt.message_ids)
    assert campaign_row(runtime).status == "active"
    assert {(m.status, m.fault) for m in messages(runtime)} == {("unknown", "network")}


@pytest.fixture
def batching(database_url: str, settings_for) -> Iterator[tuple[Runtime, BatchingMemoryTransport]]:  # type: ignore[no-untyped-def]
    memory = BatchingMemoryTransport()
    app = create_app(settings_for(database_url), transports=Transports(email=memory, sms=memory))
    runtime = runtime_of(app)
    make_campaign(runtime.db)
    yield runtime, memory
    runtime.db.dispose()


def test_one_failed_request_is_one_failure_however_many_friends_it_carried(batching) -> None:  # type: ignore[no-untyped-def]
    runtime, memory = batching
    for n in range(12):
        friends = [f"friend{n}-{i}@example.com" for i in range(5)]
        runtime.forwarding.submit("spring", submission(*friends, sender_name=f"Sender {n}"))
    memory.fail_next(TransportError("the provider answered something we do not understand"))
    report = runtime.delivery.dispatch()
    assert len(report.unknown) == 60 and report.provider_requests == 1
    assert campaign_row(runtime).status == "active"


# -- an automatic pause stops sending, not the campaign ------------------------------------------


def send_form(client, friend: str) -> int:  # type: ignore[no-untyped-def]
    form = forward_form(client.get("/c/spring").text, friends=[friend])
    return client.post("/c/spring/forward", data=form).status_code


def test_an_automatic_pause_keeps_the_page_up_holds_forwards_and_resuming_sends_them_at_once(
    app: Flask, runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    transport.fail_next(AccountError("SendGrid refuses our API key (401)", code="401"))
    assert send_form(client, "bob@example.com") == 303
    runtime.queue.drain()
    paused = campaign_row(runtime)
    assert (paused.status, paused.paused_automatically) == ("paused", True)
    # The offer stays up, and a forward is taken and held.
    assert client.get("/c/spring").status_code == 200
    assert send_form(client, "carol@example.com") == 303
    assert "a little later than usual" in client.get("/c/spring/thanks").text
    runtime.queue.drain()
    assert list(statuses(runtime.db).values()) == ["queued", "queued"]
    assert transport.emails == []
    # The marketer fixes the key and resumes: both go now, not after the account back-off.
    assert app.test_cli_runner().invoke(args=["campaigns", "resume", "spring"]).exit_code == 0
    runtime.delivery.dispatch()
    assert sorted(e.to for e in transport.emails) == ["bob@example.com", "carol@example.com"]
    assert list(statuses(runtime.db).values()) == ["sent", "sent"]


def test_a_person_pausing_a_campaign_that_paused_its_sending_closes_its_page(
    app: Flask, runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    transport.fail_next(AccountError("SendGrid refuses our API key (401)", code="401"))
    runtime.delivery.deliver(runtime.forwarding.submit("spring", submission("bob@example.com")).message_ids)
    assert app.test_client().get("/c/spring").status_code == 200
    console = staff_client(app, "marketer").get("/console/campaigns/spring").text
    assert "sending paused automatically" in console and "Close its page too" in console
    change_status(runtime.db, "spring", CampaignStatus.PAUSED, CLI, "checking the account")
    assert app.test_client().get("/c/spring").status_code == 404
    assert campaign_row(runtime).paused_automatically is False


# -- work is never lost ---------------------------------------------------------------------------


def test_a_full_batch_is_sent_even_when_no_helper_can_be_asked_for(
    database_url: str, settings_for, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    app = create_app(
        settings_for(database_url, dispatch_batch_size=2), transports=Transports(email=transport, sms=transport)
    )
    runtime = runtime_of(app)
    make_campaign(runtime.db)
    runtime.forwarding.submit("spring", submission("a@example.com", "b@example.com", "c@example.com"))

    def redis_gone(*, extra: bool = False) -> bool:
        raise QueueUnavailable("could not ask for a dispatch: Connection refused")

    runtime.queue.request_dispatch = redis_gone  # type: ignore[method-assign]
    report = runtime.delivery.dispatch()
    assert len(report.sent) == 3
    assert set(statuses(runtime.db).values()) == {"sent"}
    runtime.db.dispose()


def test_the_sweeper_settles_stuck_messages_even_without_redis(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    receipt = runtime.forwarding.submit("spring", submission("bob@example.com", "carol@example.com"))
    stuck, due = receipt.message_ids
    with runtime.db.transaction() as session:
        session.execute(
            update(Message)
            .where(Message.id == stuck)
            .values(status="sending", attempts=1, claimed_at=runtime.clock.now() - timedelta(hours=1))
        )

    def redis_gone(*, extra: bool = False) -> bool:
        raise QueueUnavailable("could not ask for a dispatch: Connection refused")

    runtime.queue.request_dispatch = redis_gone  # type: ignore[method-assign]
    report = runtime.delivery.sweep()
    assert (report.released, report.requeued) == (1, 2)
    assert statuses(runtime.db) == {stuck: "queued", due: "queued"}


# -- a provider's callback may come before the worker writes the send down ------------------------


def test_each_text_is_recorded_sent_as_the_provider_takes_it(
    database_url: str, settings_for, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    # One text at a time, so that "the texts before this one" means something.
    app = create_app(
        settings_for(database_url, sms_concurrency=1), transports=Transports(email=transport, sms=transport)
    )
    runtime = runtime_of(app)
    make_campaign(runtime.db)
    seen: list[list[tuple[str, bool]]] = []
    original = transport.send_sms

    def send_and_look(sms: OutgoingSms) -> str:
        # By the time a text goes, the ones before it are written down as sent, with their time.
        with runtime.db.reading() as session:
            earlier = session.scalars(select(Message).where(Message.status == MessageStatus.SENT)).all()
        seen.append([(m.status, m.sent_at is not None) for m in earlier])
        return original(sms)

    transport.send_sms = send_and_look  # type: ignore[method-assign]
    receipt = runtime.forwarding.submit("spring", submission("06 12340001", "06 12340002", "06 12340003"))
    runtime.delivery.deliver(receipt.message_ids)
    assert seen == [[], [("sent", True)], [("sent", True), ("sent", True)]]
    runtime.db.dispose()


def test_a_delivery_callback_that_comes_first_fills_in_the_send(
    runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    original = transport.send_sms

    def delivered_at_once(sms: OutgoingSms) -> str:
        sid = original(sms)
        # Twilio's callback wins the race with the worker's own record.
        params = {"MessageSid": sid, "MessageStatus": "delivered"}
        assert runtime.provider_events.twilio_status(params, reference=sms.reference).applied == 1
        return sid

    transport.send_sms = delivered_at_once  # type: ignore[method-assign]
    receipt = runtime.forwarding.submit("spring", submission("06 12340001"))
    runtime.delivery.deliver(receipt.message_ids)
    (message,) = messages(runtime)
    assert message.status == "delivered"  # never moved back to `sent`
    assert message.sent_at is not None and message.provider_id == "mem-1"
    # The HELP reply finds the brand that texted this number.
    with runtime.db.reading() as session:
        contact_hash = session.get(Message, message.id).forward.recipient_contact_hash
    texted = runtime.provider_events.last_texted_by(contact_hash)
    assert texted is not None and texted.brand_name == "Acme"


def test_a_sendgrid_event_that_comes_first_fills_in_when_the_email_went(
    runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    original = transport.send_email

    def delivered_at_once(email):  # type: ignore[no-untyped-def]
        provider_id = original(email)
        event = {
            "event": "delivered",
            "sg_event_id": "evt-1",
            "sg_message_id": "sg-abc.filter0001",
            "fluister_message": email.reference,
            "timestamp": 1796000000,
        }
        assert runtime.provider_events.sendgrid_events([event]).applied == 1
        return provider_id

    transport.send_email = delivered_at_once  # type: ignore[method-assign]
    receipt = runtime.forwarding.submit("spring", submission("bob@example.com"))
    runtime.delivery.deliver(receipt.message_ids)
    (message,) = messages(runtime)
    assert message.status == "delivered"
    assert message.sent_at is not None and message.sent_at.timestamp() == 1796000000
    assert message.provider_id == "sg-abc"
