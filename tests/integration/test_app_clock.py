"""Every decision by the time and every stamp compared with another is on the app's clock.

The app's clock is not the machine's here: the tests move it far from it (to 2020 or 2100),
so that a decision or a stamp made on the wall clock shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import select, update

from engine.clock import FixedClock
from engine.models import (
    Campaign,
    CampaignStatus,
    Consent,
    Message,
    MessageStatus,
    OptOutEntry,
    Suppression,
    SuppressionScope,
    SuppressionSource,
)
from engine.runtime import Runtime
from engine.services.compliance import contact_report
from engine.tokens import Purpose
from engine.transports import AccountError
from engine.transports.memory import MemoryTransport
from tests.helpers import make_campaign, staff_client, submission

LONG_AGO = datetime(2020, 1, 1, 12, tzinfo=UTC)  # before any machine running these tests
FAR_AHEAD = datetime(2100, 1, 1, 12, tzinfo=UTC)  # after any


def test_a_campaign_resumes_when_its_end_date_is_still_ahead_on_the_apps_clock(
    app: Flask, runtime: Runtime, clock: FixedClock
) -> None:
    clock.set(LONG_AGO)
    make_campaign(runtime.db, ends_at=LONG_AGO + timedelta(days=30))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["campaigns", "pause", "spring"]).exit_code == 0
    resumed = runner.invoke(args=["campaigns", "resume", "spring"])
    assert resumed.exit_code == 0, resumed.output
    # The console's list of what stops it going live agrees.
    assert "end date has passed" not in staff_client(app, "admin").get("/console/campaigns/spring").text
    assert runner.invoke(args=["campaigns", "pause", "spring"]).exit_code == 0
    clock.advance(timedelta(days=31))
    refused = runner.invoke(args=["campaigns", "resume", "spring"])
    assert refused.exit_code == 1 and "its end date has passed" in refused.output


def test_an_opt_out_after_a_send_is_stamped_after_it_and_is_no_breach(
    runtime: Runtime, clock: FixedClock, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    clock.set(FAR_AHEAD)
    receipt = runtime.forwarding.submit("spring", submission("bob@example.com"))
    runtime.delivery.deliver(receipt.message_ids)
    clock.advance(timedelta(hours=1))
    with runtime.db.reading() as session:
        message = session.get(Message, receipt.message_ids[0])
        token = runtime.tokens.sign(Purpose.UNSUBSCRIBE, message.public_id)
        contact_hash = message.forward.recipient_contact_hash
    runtime.suppression.unsubscribe(token, SuppressionScope.FRIENDS, SuppressionSource.LINK)
    with runtime.db.reading() as session:
        assert session.scalars(select(Suppression.created_at)).all() == [clock.now()]
        assert session.scalars(select(OptOutEntry.created_at)).all() == [clock.now()]
    report = contact_report(runtime.db, contact_hash)
    assert [row.sent_after_opt_out for row in report.messages] == [None]


def test_a_stop_by_text_is_stamped_on_the_apps_clock(runtime: Runtime, clock: FixedClock, campaign) -> None:  # type: ignore[no-untyped-def]
    clock.set(FAR_AHEAD)
    contact_hash = "a" * 64
    with runtime.db.transaction() as session:
        session.add(Consent(contact_hash=contact_hash, channel="sms", source="import", given_at=LONG_AGO))
    assert runtime.provider_events.twilio_opt_out(contact_hash, "STOP", "SM0001")
    with runtime.db.reading() as session:
        assert session.scalars(select(Suppression.created_at)).all() == [clock.now()]
        assert session.scalars(select(OptOutEntry.created_at)).all() == [clock.now()]
        assert session.scalars(select(Consent.revoked_at)).all() == [clock.now()]
    clock.advance(timedelta(minutes=5))
    assert runtime.provider_events.twilio_opt_in(contact_hash, "START", "SM0002")
    with runtime.db.reading() as session:
        stamps = session.scalars(select(OptOutEntry.created_at).order_by(OptOutEntry.seq)).all()
        assert stamps == [clock.now() - timedelta(minutes=5), clock.now()]
        assert clock.now() in session.scalars(select(Consent.given_at)).all()


def test_a_callback_before_the_workers_record_stamps_the_send_on_the_apps_clock(
    runtime: Runtime, clock: FixedClock, campaign
) -> None:  # type: ignore[no-untyped-def]
    clock.set(FAR_AHEAD)
    receipt = runtime.forwarding.submit("spring", submission("06 12345678"))
    with runtime.db.transaction() as session:
        session.execute(update(Message).values(status=MessageStatus.SENDING, handed_at=clock.now()))
        public_id = session.get(Message, receipt.message_ids[0]).public_id
    clock.advance(timedelta(seconds=3))
    params = {"MessageSid": "SM0003", "MessageStatus": "delivered"}
    assert runtime.provider_events.twilio_status(params, reference=public_id).applied == 1
    with runtime.db.reading() as session:
        message = session.get(Message, receipt.message_ids[0])
        assert (message.status, message.sent_at, message.updated_at) == ("delivered", clock.now(), clock.now())


def test_an_automatic_pause_is_stamped_on_the_apps_clock(
    runtime: Runtime, clock: FixedClock, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    clock.set(FAR_AHEAD)
    receipt = runtime.forwarding.submit("spring", submission("bob@example.com"))
    transport.fail_next(AccountError("SendGrid refuses our API key (401)", code="401"))
    runtime.delivery.deliver(receipt.message_ids)
    with runtime.db.reading() as session:
        paused = session.scalar(select(Campaign).where(Campaign.slug == "spring"))
        assert (paused.status, paused.updated_at) == (CampaignStatus.PAUSED, clock.now())


def test_an_erasure_suppresses_on_the_apps_clock(app: Flask, runtime: Runtime, clock: FixedClock) -> None:
    clock.set(FAR_AHEAD)
    erased = app.test_cli_runner().invoke(args=["privacy", "erase", "bob@example.com", "--yes"])
    assert erased.exit_code == 0, erased.output
    with runtime.db.reading() as session:
        assert session.scalars(select(Suppression.created_at)).all() == [clock.now()]
        assert session.scalars(select(OptOutEntry.created_at)).all() == [clock.now()]


def test_a_staff_session_ends_twelve_hours_after_sign_in_on_the_apps_clock(app: Flask, clock: FixedClock) -> None:
    clock.set(FAR_AHEAD)
    client = staff_client(app, "marketer")
    clock.advance(timedelta(hours=11, minutes=59))
    assert client.get("/console").status_code == 200
    clock.advance(timedelta(minutes=1, seconds=1))
    assert client.get("/console").status_code == 302  # to the sign-in page


def test_the_cap_report_counts_the_last_24_hours_of_the_apps_clock(
    app: Flask, runtime: Runtime, clock: FixedClock, campaign
) -> None:  # type: ignore[no-untyped-def]
    clock.set(LONG_AGO)
    runtime.forwarding.submit("spring", submission("bob@example.com"))
    clock.advance(timedelta(hours=1))
    client = staff_client(app, "marketer")
    report = client.get("/api/v1/campaigns/spring/caps").get_json()
    assert report["as_of"] == clock.now().isoformat()
    assert (report["messages_last_24h"], report["refused_last_24h"]) == ({"queued": 1}, {})
    clock.set(FAR_AHEAD)  # years later: that forward is long out of the window, a refusal now is in it
    runtime.forwarding.record_rejection("spring", "honeypot", "198.51.100.7")
    client = staff_client(app, "marketer", "another@staff.example")  # the first session has long ended
    report = client.get("/api/v1/campaigns/spring/caps").get_json()
    assert (report["messages_last_24h"], report["refused_last_24h"]) == ({}, {"honeypot": 1})
