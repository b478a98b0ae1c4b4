"""Delivery on SQLite and PostgreSQL: at most once, every outcome recorded, nothing resent blindly."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from engine.clock import FixedClock
from engine.models import Forward, Message, MessageStatus
from engine.runtime import Runtime
from engine.services.forwarding import ForwardReceipt
from engine.transports import AmbiguousError, PermanentError, TransientError, TransportError
from engine.transports.memory import MemoryTransport
from tests.helpers import US_CUSTOM_SMS, deliver_overnight, make_campaign, statuses, submission, tracked_links


def forward_to(runtime: Runtime, *friends: str, slug: str = "spring", **fields) -> ForwardReceipt:  # type: ignore[no-untyped-def]
    return runtime.forwarding.submit(slug, submission(*friends, **fields))


def test_worker_sends_personalised_messages_with_own_links(
    runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    forward_to(runtime, "bob@example.com", "carol@example.com", "06 12345678", note="Coffee?")
    assert runtime.queue.drain() == 1
    assert list(statuses(runtime.db).values()) == ["sent"] * 3

    assert [e.to for e in transport.emails] == ["bob@example.com", "carol@example.com"]
    assert [s.to for s in transport.sms] == ["+31612345678"]
    bob, carol = transport.emails
    assert bob.subject == "Anna thinks you'll like this: Ten percent off"
    assert "Coffee?" in bob.text and "Coffee?" in bob.html
    assert bob.from_email == "offers@acme.example" and "1 Main St" in bob.text
    # Each friend has a tracked link and an unsubscribe link of their own.
    assert tracked_links(bob.text) != tracked_links(carol.text)
    assert bob.headers["List-Unsubscribe"] != carol.headers["List-Unsubscribe"]
    assert bob.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert bob.headers["List-Unsubscribe"].strip("<>") in bob.text
    assert "http://fluister.test/f/" in transport.sms[0].text and "http://fluister.test/u/" in transport.sms[0].text
    with runtime.db.reading() as session:
        sent = session.scalars(select(Message)).all()
    assert all(m.provider_id and m.sent_at and m.attempts == 1 for m in sent)


def test_the_same_job_twice_sends_once(runtime: Runtime, campaign, transport: MemoryTransport) -> None:  # type: ignore[no-untyped-def]
    receipt = forward_to(runtime, "bob@example.com", "06 12345678")
    first = runtime.delivery.deliver(receipt.message_ids)
    second = runtime.delivery.deliver(receipt.message_ids)
    assert sorted(first.sent) == sorted(receipt.message_ids)
    assert second.sent == [] and sorted(second.skipped) == sorted(receipt.message_ids)
    assert len(transport.emails) + len(transport.sms) == 2


def test_two_workers_racing_for_the_same_messages_send_each_once(
    runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    receipts = [
        forward_to(runtime, *[f"f{n}-{i}@example.com" for i in range(5)], sender_name=f"S{n}") for n in range(8)
    ]
    ids = [i for r in receipts for i in r.message_ids]
    start = threading.Barrier(4)
    reports = []

    def work() -> None:
        start.wait()
        reports.append(runtime.delivery.deliver(ids))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    sent_ids = [i for r in reports for i in r.sent]
    assert sorted(sent_ids) == sorted(ids)  # every message sent by exactly one worker
    assert len(transport.emails) == 40
    assert len({e.to for e in transport.emails}) == 40


def make_due(runtime: Runtime) -> None:
    """Move every retry time into the past, as if the backoff had passed."""
    with runtime.db.transaction() as session:
        session.execute(update(Message).where(Message.not_before.is_not(None)).values(not_before=runtime.clock.now()))


def retry_delay(runtime: Runtime, message_id: int) -> float:
    with runtime.db.reading() as session:
        message = session.get(Message, message_id)
        return (message.not_before - message.updated_at).total_seconds()


def test_transient_error_requeues_after_a_backoff_then_sends(
    runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    receipt = forward_to(runtime, "bob@example.com")
    transport.fail_next(TransientError("503 unavailable", code="503"))
    report = runtime.delivery.deliver(receipt.message_ids)
    assert report.retry == list(receipt.message_ids)
    assert statuses(runtime.db) == {receipt.message_ids[0]: "queued"}
    assert retry_delay(runtime, receipt.message_ids[0]) == pytest.approx(10, abs=1)
    # Not before its time, even if a job names it...
    assert runtime.delivery.deliver(receipt.message_ids).skipped == list(receipt.message_ids)
    make_due(runtime)
    # ...and then the sweeper finds it.
    assert runtime.delivery.sweep().requeued == 1
    runtime.queue.drain()
    assert statuses(runtime.db) == {receipt.message_ids[0]: "sent"}
    with runtime.db.reading() as session:
        assert session.scalars(select(Message.attempts)).one() == 2
    assert len(transport.emails) == 1


def test_transient_errors_back_off_and_give_up_after_a_day(
    runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    receipt = forward_to(runtime, "bob@example.com")
    (message_id,) = receipt.message_ids
    transport.fail_next(*[TransientError("503", code="503") for _ in range(8)])
    delays = []
    for _ in range(7):
        runtime.delivery.deliver(receipt.message_ids)
        delays.append(round(retry_delay(runtime, message_id)))
        make_due(runtime)
    assert delays == [10, 20, 40, 80, 160, 320, 640]  # exponential backoff
    # A day after the forward, the next failure is the last.
    with runtime.db.transaction() as session:
        session.execute(update(Message).values(created_at=runtime.clock.now() - timedelta(hours=25)))
    runtime.delivery.deliver(receipt.message_ids)
    with runtime.db.reading() as session:
        message = session.get(Message, message_id)
    assert (message.status, message.attempts, message.fault) == ("failed", 8, "provider")
    assert "gave up after 8 attempts" in message.error


def test_providers_retry_after_is_honoured(runtime: Runtime, campaign, transport: MemoryTransport) -> None:  # type: ignore[no-untyped-def]
    receipt = forward_to(runtime, "bob@example.com")
    transport.fail_next(TransientError("429 rate limited", code="429", retry_after=120))
    runtime.delivery.deliver(receipt.message_ids)
    assert retry_delay(runtime, receipt.message_ids[0]) == pytest.approx(120, abs=1)


def test_opt_out_error_from_the_provider_suppresses_the_recipient(
    runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    from engine.models import Suppression

    receipt = forward_to(runtime, "06 12345678")
    transport.fail_next(PermanentError("Attempt to send to unsubscribed recipient", code="21610", opted_out=True))
    runtime.delivery.deliver(receipt.message_ids)
    with runtime.db.reading() as session:
        suppression = session.scalars(select(Suppression)).one()
    assert (suppression.channel, suppression.scope, suppression.source) == ("sms", "global", "stop")
    # A later forward to the same number is quietly suppressed.
    later = forward_to(runtime, "+31612345678", slug="spring", sender_name="Dan")
    assert later.message_ids == ()


def test_campaign_pauses_itself_when_most_sends_fail_and_holds_the_rest(
    runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    from engine.models import Campaign

    ok = [forward_to(runtime, f"ok{i}@example.com", sender_name=f"S{i}") for i in range(5)]
    for receipt in ok:
        runtime.delivery.deliver(receipt.message_ids)
    bad = [forward_to(runtime, f"bad{i}@example.com", sender_name=f"B{i}") for i in range(20)]
    transport.fail_next(*[TransportError("the provider answered something we do not understand")] * 20)
    for receipt in bad[:15]:
        runtime.delivery.deliver(receipt.message_ids)
    with runtime.db.reading() as session:
        paused = session.get(Campaign, campaign.id)
    assert paused.status == "paused"
    assert "15 of its last 20 sends failed" in paused.status_reason
    assert "for 15 different senders" in paused.status_reason
    # What was still queued waits for the campaign to resume instead of failing too.
    assert runtime.delivery.deliver(bad[15].message_ids).skipped == list(bad[15].message_ids)
    assert statuses(runtime.db)[bad[15].message_ids[0]] == "queued"
    assert len(transport.emails) == 5


def test_bad_recipients_never_pause_a_campaign(runtime: Runtime, campaign, transport: MemoryTransport) -> None:  # type: ignore[no-untyped-def]
    """Anyone can type invalid numbers into the form: that must not take the campaign down."""
    from engine.models import Campaign

    receipts = [forward_to(runtime, f"nobody{i}@example.com", sender_name=f"B{i}") for i in range(25)]
    transport.fail_next(*[PermanentError("550 no such user", code="550")] * 25)
    for receipt in receipts:
        runtime.delivery.deliver(receipt.message_ids)
    with runtime.db.reading() as session:
        assert session.get(Campaign, campaign.id).status == "active"
        assert {m.fault for m in session.scalars(select(Message))} == {"recipient"}


def test_a_refused_account_pauses_the_campaign_at_once_and_its_messages_wait(
    runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    from engine.models import Campaign
    from engine.transports import AccountError

    receipt = forward_to(runtime, "bob@example.com", "carol@example.com")
    transport.fail_next(AccountError("SendGrid refuses our API key (401)", code="401"))
    report = runtime.delivery.deliver(receipt.message_ids)
    assert report.retry  # the refused message waits; it was never sent
    with runtime.db.reading() as session:
        campaign_now = session.get(Campaign, campaign.id)
    assert campaign_now.status == "paused"
    assert "refused our account" in campaign_now.status_reason
    assert retry_delay(runtime, report.retry[0]) >= 15 * 60


def test_permanent_error_fails_with_the_providers_code(runtime: Runtime, campaign, transport: MemoryTransport) -> None:  # type: ignore[no-untyped-def]
    receipt = forward_to(runtime, "06 12345678")
    transport.fail_next(PermanentError("invalid 'To' number", code="21211"))
    assert runtime.delivery.deliver(receipt.message_ids).failed == list(receipt.message_ids)
    with runtime.db.reading() as session:
        message = session.scalars(select(Message)).one()
    assert (message.status, message.error_code, message.error) == ("failed", "21211", "invalid 'To' number")
    assert runtime.delivery.deliver(receipt.message_ids).sent == []  # never retried


def test_ambiguous_error_is_unknown_and_never_resent(runtime: Runtime, campaign, transport: MemoryTransport) -> None:  # type: ignore[no-untyped-def]
    receipt = forward_to(runtime, "bob@example.com", "carol@example.com")
    transport.fail_next(AmbiguousError("read timeout after the request was sent"))
    report = runtime.delivery.deliver(receipt.message_ids)
    assert report.unknown == [receipt.message_ids[0]]
    assert report.sent == [receipt.message_ids[1]]  # one bad message does not stop the batch
    runtime.delivery.deliver(receipt.message_ids)
    runtime.delivery.sweep()
    assert statuses(runtime.db)[receipt.message_ids[0]] == "unknown"
    assert [e.to for e in transport.emails] == ["carol@example.com"]


def test_crash_mid_send_leaves_sending_which_the_sweeper_marks_unknown(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    receipt = forward_to(runtime, "bob@example.com")
    (message_id,) = receipt.message_ids
    # A worker claimed it, handed it to the provider and died before recording the outcome.
    an_hour_ago = runtime.clock.now() - timedelta(hours=1)
    with runtime.db.transaction() as session:
        session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(status=MessageStatus.SENDING, claimed_at=an_hour_ago, handed_at=an_hour_ago)
        )
    assert runtime.delivery.deliver([message_id]).skipped == [message_id]
    report = runtime.delivery.sweep()
    assert (report.marked_unknown, report.released) == (1, 0)
    assert statuses(runtime.db) == {message_id: "unknown"}


def test_a_crash_before_the_hand_over_puts_the_message_back_in_the_queue(
    runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    receipt = forward_to(runtime, "bob@example.com")
    (message_id,) = receipt.message_ids
    # A worker claimed it and died (or lost its database) before handing it to the provider.
    with runtime.db.transaction() as session:
        session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(status=MessageStatus.SENDING, attempts=1, claimed_at=runtime.clock.now() - timedelta(hours=1))
        )
    report = runtime.delivery.sweep()
    assert (report.marked_unknown, report.released) == (0, 1)
    assert statuses(runtime.db) == {message_id: "queued"}
    runtime.queue.drain()
    assert statuses(runtime.db) == {message_id: "sent"}
    assert [e.to for e in transport.emails] == ["bob@example.com"]


def test_sweeper_enqueues_messages_that_were_never_enqueued(
    runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    receipt = forward_to(runtime, "bob@example.com")
    runtime.queue.queue.empty()  # as if Redis lost the job
    with runtime.db.transaction() as session:
        session.execute(update(Message).values(updated_at=runtime.clock.now() - timedelta(minutes=5)))
    assert runtime.delivery.sweep().requeued == 1
    runtime.queue.drain()
    assert statuses(runtime.db) == {receipt.message_ids[0]: "sent"}
    assert len(transport.emails) == 1


def test_broken_template_fails_the_message_with_the_reason(runtime: Runtime, transport: MemoryTransport) -> None:
    from engine.models import Campaign
    from engine.services.templates import add_template_versions

    campaign = make_campaign(runtime.db, "broken")
    with runtime.db.transaction() as session:
        add_template_versions(session, session.get(Campaign, campaign.id), {"subject.txt": "Hi {{ nobody }}"})
    receipt = forward_to(runtime, "bob@example.com", slug="broken")
    assert runtime.delivery.deliver(receipt.message_ids).failed == list(receipt.message_ids)
    with runtime.db.reading() as session:
        message = session.scalars(select(Message)).one()
    assert message.error_code == "render" and "nobody" in message.error
    assert transport.emails == []


def test_newest_template_version_is_used(runtime: Runtime, transport: MemoryTransport) -> None:
    from engine.models import Campaign
    from engine.services.templates import add_template_versions

    campaign = make_campaign(runtime.db, "versions")
    with runtime.db.transaction() as session:
        add_template_versions(session, session.get(Campaign, campaign.id), {"subject.txt": "v2 from {{ sender_name }}"})
    runtime.delivery.deliver(forward_to(runtime, "bob@example.com", slug="versions").message_ids)
    assert transport.emails[0].subject == "v2 from Anna"


def test_eu_strict_keeps_only_the_hash_after_sending(runtime: Runtime, transport: MemoryTransport) -> None:
    make_campaign(runtime.db, "nl", policy_name="eu-strict", policy_settings={}, channels=["email"])
    receipt = forward_to(runtime, "bob@example.com", slug="nl")
    runtime.delivery.deliver(receipt.message_ids)
    with runtime.db.reading() as session:
        forward = session.scalars(select(Forward)).one()
    assert transport.emails[0].to == "bob@example.com"
    assert forward.recipient_contact is None
    assert len(forward.recipient_contact_hash) == 64


def test_sms_longer_than_the_campaigns_segment_limit_is_not_sent(runtime: Runtime, transport: MemoryTransport) -> None:
    make_campaign(runtime.db, "short", sms_segment_limit=1, offer_title="A rather long offer title " * 4)
    receipt = forward_to(runtime, "06 12345678", slug="short")
    assert runtime.delivery.deliver(receipt.message_ids).failed == list(receipt.message_ids)
    with runtime.db.reading() as session:
        message = session.scalars(select(Message)).one()
    assert message.error_code == "render"
    assert "the campaign allows at most 1" in message.error
    assert transport.sms == []


def test_list_unsubscribe_offers_mailto_when_configured(database_url: str, settings_for) -> None:  # type: ignore[no-untyped-def]
    from engine import create_app
    from engine.transports import Transports
    from tests.helpers import runtime_of

    memory = MemoryTransport()
    app = create_app(
        settings_for(database_url, unsubscribe_mailto="unsubscribe@acme.example"),
        transports=Transports(email=memory, sms=memory),
    )
    runtime = runtime_of(app)
    make_campaign(runtime.db)
    receipt = forward_to(runtime, "bob@example.com")
    runtime.delivery.deliver(receipt.message_ids)
    with runtime.db.reading() as session:
        public_id = session.get(Message, receipt.message_ids[0]).public_id
    header = memory.emails[0].headers["List-Unsubscribe"]
    https, mailto = header.split(", ")
    assert https.startswith("<http://fluister.test/u/")
    assert mailto == f"<mailto:unsubscribe@acme.example?subject=unsubscribe%20{public_id}>"
    runtime.db.dispose()


def test_a_template_that_breaks_the_renderer_fails_its_messages_and_the_rest_still_go(
    runtime: Runtime, transport: MemoryTransport
) -> None:
    from engine.models import Campaign
    from engine.services.templates import add_template_versions

    make_campaign(runtime.db, "good")
    broken = make_campaign(runtime.db, "broken")
    with runtime.db.transaction() as session:
        add_template_versions(
            session, session.get(Campaign, broken.id), {"email.html": "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}"}
        )
    bad = forward_to(runtime, "bob@example.com", slug="broken")
    good = forward_to(runtime, "carol@example.com", slug="good")
    report = runtime.delivery.dispatch()
    assert report.failed == list(bad.message_ids)
    assert report.sent == list(good.message_ids)
    with runtime.db.reading() as session:
        assert "RecursionError" in session.get(Message, bad.message_ids[0]).error
    assert [e.to for e in transport.emails] == ["carol@example.com"]


def test_an_outcome_arriving_after_the_sweeper_gave_up_is_still_recorded(
    runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    receipt = forward_to(runtime, "bob@example.com")
    original = transport.send_email

    def slow_send(email):  # type: ignore[no-untyped-def]
        # The sweeper runs while the provider takes its time.
        with runtime.db.transaction() as session:
            session.execute(update(Message).values(claimed_at=runtime.clock.now() - timedelta(hours=1)))
        runtime.delivery.sweep()
        assert statuses(runtime.db) == {receipt.message_ids[0]: "unknown"}
        return original(email)

    transport.send_email = slow_send  # type: ignore[method-assign]
    runtime.delivery.dispatch()
    with runtime.db.reading() as session:
        message = session.get(Message, receipt.message_ids[0])
    assert (message.status, bool(message.provider_id), bool(message.sent_at)) == ("sent", True, True)


def test_a_message_the_sweeper_took_back_before_the_hand_over_is_not_sent_by_the_stalled_worker(
    runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    receipt = forward_to(runtime, "bob@example.com")
    original = runtime.delivery._suppressed

    def stalled(messages):  # type: ignore[no-untyped-def]
        # The worker stalls for longer than the sweeper waits, before handing anything over.
        runtime.delivery._suppressed = original  # type: ignore[method-assign]
        with runtime.db.transaction() as session:
            session.execute(update(Message).values(claimed_at=runtime.clock.now() - timedelta(hours=1)))
        assert runtime.delivery.sweep().released == 1
        return original(messages)

    runtime.delivery._suppressed = stalled  # type: ignore[method-assign]
    runtime.delivery.deliver(receipt.message_ids)
    assert transport.emails == []  # not ours any more: whoever claims it next sends it
    assert statuses(runtime.db) == {receipt.message_ids[0]: "queued"}
    runtime.delivery.dispatch()
    assert [e.to for e in transport.emails] == ["bob@example.com"]


def test_claimed_messages_never_handed_to_a_provider_go_back_to_the_queue(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    forward_to(runtime, "bob@example.com", "06 12345678")

    def database_hiccup(messages):  # type: ignore[no-untyped-def]
        raise RuntimeError("connection reset")

    runtime.delivery._suppressed = database_hiccup  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        runtime.delivery.dispatch()
    assert set(statuses(runtime.db).values()) == {"queued"}
    with runtime.db.reading() as session:
        assert {m.attempts for m in session.scalars(select(Message))} == {0}
    del runtime.delivery._suppressed
    assert len(runtime.delivery.dispatch().sent) == 2


def test_contacts_are_erased_as_each_policy_says(runtime: Runtime, transport: MemoryTransport) -> None:
    make_campaign(runtime.db, "nl", policy_name="eu-strict", policy_settings={}, channels=["email"])
    make_campaign(runtime.db, "us", policy_name="us", policy_settings={}, channels=["email"])
    failed_nl = forward_to(runtime, "bob@example.com", slug="nl")
    old_us = forward_to(runtime, "carol@example.com", slug="us")
    new_us = forward_to(runtime, "dave@example.com", slug="us")
    transport.fail_next(PermanentError("550 <bob@example.com>: no such user", code="550"))
    runtime.delivery.deliver(failed_nl.message_ids + old_us.message_ids + new_us.message_ids)
    with runtime.db.transaction() as session:
        session.execute(
            update(Message)
            .where(Message.id == old_us.message_ids[0])
            .values(sent_at=runtime.clock.now() - timedelta(days=31))
        )
    assert runtime.delivery.sweep().purged == 2
    with runtime.db.reading() as session:
        kept = {f.recipient_contact_hash[:8]: f.recipient_contact for f in session.scalars(select(Forward))}
        error = session.get(Message, failed_nl.message_ids[0]).error
    assert sorted(c for c in kept.values() if c) == ["dave@example.com"]  # within its 30 days
    assert "bob@example.com" not in error and "b***@example.com" in error


@pytest.mark.clock
def test_texts_outside_the_recipients_hours_wait_and_then_go(
    runtime: Runtime, transport: MemoryTransport, clock: FixedClock
) -> None:
    clock.set(datetime(2026, 6, 3, 21, 30, tzinfo=UTC))  # 23:30 in Amsterdam
    make_campaign(runtime.db, "night", policy_settings={**US_CUSTOM_SMS, "sms_hours": [8, 21]})
    receipt = forward_to(runtime, "06 12345678", "bob@example.com", slug="night")
    report = runtime.delivery.dispatch()
    assert len(report.deferred) == 1 and len(report.sent) == 1  # the email is not held back
    assert transport.sms == []
    sms_id = report.deferred[0]
    assert statuses(runtime.db)[sms_id] == "deferred"
    # Until 08:00 in Amsterdam (06:00 UTC in summer time), not a moment earlier.
    assert retry_delay(runtime, sms_id) == 8.5 * 3600
    clock.set(datetime(2026, 6, 4, 5, 59, tzinfo=UTC))
    assert runtime.delivery.dispatch().sent == []
    clock.set(datetime(2026, 6, 4, 6, 0, tzinfo=UTC))
    assert runtime.delivery.dispatch().sent == [sms_id]
    assert [s.to for s in transport.sms] == ["+31612345678"]
    assert receipt.friend_count == 2


# Each number's window in its own time: (zone, weekday window, Sunday window), from the rules
# (08:00-21:00; Florida until 20:00; Connecticut 09:00-20:00; Texas Sundays from noon).
WINDOWS = {
    "+31612345678": ("Europe/Amsterdam", (8, 21), (8, 21)),
    "+12145550123": ("America/Chicago", (8, 21), (12, 21)),  # Dallas
    "+13055550123": ("America/New_York", (8, 20), (8, 20)),  # Miami
    "+12035550123": ("America/New_York", (9, 20), (9, 20)),  # Connecticut
}


@pytest.mark.clock
def test_every_text_goes_inside_its_recipients_hours_whatever_the_hour(
    runtime: Runtime, transport: MemoryTransport, clock: FixedClock
) -> None:
    """CI runs this at several clocks: each text goes at once when its recipient's window is
    open, and otherwise at the moment it opens, never outside it."""
    start = clock.now()
    make_campaign(runtime.db, "hours", policy_settings={**US_CUSTOM_SMS, "sms_hours": [8, 21]})
    receipt = forward_to(runtime, *WINDOWS, slug="hours")
    deliver_overnight(runtime, clock)
    assert sorted(s.to for s in transport.sms) == sorted(WINDOWS)
    with runtime.db.reading() as session:
        sent = {
            f.recipient_contact: m.sent_at for m, f in session.execute(select(Message, Forward).join(Message.forward))
        }
    assert len(sent) == len(receipt.message_ids)
    for number, (zone, weekday, sunday) in WINDOWS.items():

        def open_at(moment: datetime, zone: str = zone, weekday=weekday, sunday=sunday) -> bool:  # type: ignore[no-untyped-def]
            local = moment.astimezone(ZoneInfo(zone))
            first, last = sunday if local.weekday() == 6 else weekday
            return first <= local.hour < last

        assert open_at(sent[number]), f"{number} texted at {sent[number]}"
        if open_at(start):
            assert sent[number] == start
        else:  # at the moment its window opened: the minute before, it was still closed
            assert sent[number] > start and not open_at(sent[number] - timedelta(minutes=1))
