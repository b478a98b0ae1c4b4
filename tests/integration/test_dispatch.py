"""The send loop in batches: one request for many emails, texts in parallel, outcomes for each."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, select

from engine import create_app
from engine.clock import FixedClock
from engine.models import Message
from engine.runtime import Runtime
from engine.sms import measure
from engine.transports import AmbiguousError, PermanentError, Transports
from engine.transports.memory import BatchingMemoryTransport, MemoryTransport
from engine.transports.sendgrid import SendGridTransport
from engine.transports.twilio import TwilioTransport
from tests.helpers import make_campaign, runtime_of, statuses, submission, tracked_links
from tests.stubs.sendgrid import SendGridStub
from tests.stubs.twilio import TwilioStub


@pytest.fixture
def build(database_url: str, settings_for, clock: FixedClock) -> Iterator:  # type: ignore[no-untyped-def]
    built: list[Runtime] = []

    def make(email, sms=None, **overrides: object) -> Runtime:  # type: ignore[no-untyped-def]
        app = create_app(
            settings_for(database_url, **overrides),
            transports=Transports(email=email, sms=sms or MemoryTransport()),
            clock=clock,
        )
        runtime = runtime_of(app)
        built.append(runtime)
        if not built[1:]:
            make_campaign(runtime.db)
        return runtime

    yield make
    for runtime in built:
        runtime.db.dispose()


def unsigned(text: str) -> str:
    """The text with each token reduced to its payload (what it points at), its signature and time dropped."""
    return re.sub(r"/(f|u)/([\w-]+)\.[\w-]+\.[\w-]+", r"/\1/\2", text)


def forward_many(runtime: Runtime, count: int, *, note: str | None = None, slug: str = "spring") -> list[int]:
    ids: list[int] = []
    for n in range(count):
        ids += runtime.forwarding.submit(
            slug, submission(f"friend{n}@example.com", sender_name=f"Sender {n}", note=note)
        ).message_ids
    return ids


def test_one_request_for_many_emails_each_with_its_own_content(build) -> None:  # type: ignore[no-untyped-def]
    transport = BatchingMemoryTransport()
    runtime = build(transport)
    ids = forward_many(runtime, 12, note="Try it & see")
    report = runtime.delivery.dispatch()

    assert sorted(report.sent) == sorted(ids)
    assert len(transport.batches) == 1 and report.provider_requests == 1
    # Each friend's email is what rendering it alone would give: compare with the unbatched path.
    alone = MemoryTransport()
    single = build(alone)
    with single.db.transaction() as session:
        session.execute(Message.__table__.update().values(status="queued"))
    single.delivery.deliver(ids)
    for batched, own in zip(transport.emails, alone.emails, strict=True):
        # Links are signed with the time: the two renders may fall in different seconds.
        assert (batched.to, batched.subject, unsigned(batched.text)) == (own.to, own.subject, unsigned(own.text))
        assert unsigned(batched.headers["List-Unsubscribe"]) == unsigned(own.headers["List-Unsubscribe"])
        assert batched.headers["Message-ID"] == own.headers["Message-ID"]
        assert batched.reference == own.reference
    links = [tracked_links(e.text)[0] for e in transport.emails]
    assert len(set(links)) == 12


def test_recipients_whose_templates_branch_differently_go_in_separate_requests(build) -> None:  # type: ignore[no-untyped-def]
    transport = BatchingMemoryTransport()
    runtime = build(transport)
    forward_many(runtime, 3, note="A note")
    for n in range(3, 6):
        runtime.forwarding.submit("spring", submission(f"friend{n}@example.com", sender_name=f"S{n}"))
    runtime.delivery.dispatch()
    assert sorted(len(b.recipients) for b in transport.batches) == [3, 3]
    with_note = [e for e in transport.emails if "A note" in e.text]
    assert len(with_note) == 3


def test_a_template_that_transforms_a_value_is_rendered_per_recipient(build) -> None:  # type: ignore[no-untyped-def]
    from engine.models import Campaign
    from engine.services.templates import add_template_versions

    transport = BatchingMemoryTransport()
    runtime = build(transport)
    with runtime.db.transaction() as session:
        add_template_versions(session, session.scalar(select(Campaign)), {"subject.txt": "{{ sender_name|upper }}!"})
    forward_many(runtime, 4)
    runtime.delivery.dispatch()
    assert transport.batches == []
    assert sorted(e.subject for e in transport.emails) == [f"SENDER {n}!" for n in range(4)]


def test_a_refused_batch_is_sent_one_by_one_so_only_the_bad_recipient_fails(build) -> None:  # type: ignore[no-untyped-def]
    transport = BatchingMemoryTransport()
    runtime = build(transport)
    ids = forward_many(runtime, 5)
    transport.fail_next(PermanentError("400 invalid email", code="400"))  # the batch request
    # Then, one by one, only the third recipient is refused.
    original = transport.send_email

    def refuse_third(email):  # type: ignore[no-untyped-def]
        if email.to == "friend2@example.com":
            raise PermanentError("400 invalid email", code="400")
        return original(email)

    transport.send_email = refuse_third  # type: ignore[method-assign]
    runtime.delivery.dispatch()
    assert [statuses(runtime.db)[i] for i in ids] == ["sent", "sent", "failed", "sent", "sent"]


def test_a_batch_that_may_have_gone_is_unknown_for_everyone_in_it(build) -> None:  # type: ignore[no-untyped-def]
    transport = BatchingMemoryTransport()
    runtime = build(transport)
    ids = forward_many(runtime, 4)
    transport.fail_next(AmbiguousError("read timeout"))
    report = runtime.delivery.dispatch()
    assert sorted(report.unknown) == sorted(ids)
    assert runtime.delivery.dispatch().sent == []  # never resent


def test_dispatch_works_through_a_backlog_in_batches(build) -> None:  # type: ignore[no-untyped-def]
    transport = BatchingMemoryTransport()
    runtime = build(transport, dispatch_batch_size=10)
    ids = forward_many(runtime, 25)
    report = runtime.delivery.dispatch()
    assert sorted(report.sent) == sorted(ids)
    assert [len(b.recipients) for b in transport.batches] == [10, 10, 5]


def test_sendgrid_gets_one_request_with_a_personalization_per_friend(build, sendgrid_stub: SendGridStub) -> None:  # type: ignore[no-untyped-def]
    transport = SendGridTransport(sendgrid_stub.api_key, sendgrid_stub.url)
    runtime = build(transport)
    ids = forward_many(runtime, 30, note='Say "hi" & <smile>')
    runtime.delivery.dispatch()

    (request,) = sendgrid_stub.accepted
    deliveries = list(request.deliveries())
    assert len(deliveries) == 30
    with runtime.db.reading() as session:
        public_ids = {m.id: m.public_id for m in session.scalars(select(Message))}
    for n, delivery in enumerate(deliveries):
        text, html = delivery.content["text/plain"], delivery.content["text/html"]
        assert delivery.email == f"friend{n}@example.com"
        assert delivery.subject == f"Sender {n} thinks you'll like this: Ten percent off"
        assert f"Sender {n} sent you this offer" in text and 'Say "hi" & <smile>' in text
        assert "Say &#34;hi&#34; &amp; &lt;smile&gt;" in html  # escaped in HTML, as rendering alone does
        assert "%%" not in text + html + delivery.subject  # no placeholder left
        assert delivery.custom_args == {"fluister_message": public_ids[ids[n]]}
        assert delivery.headers["List-Unsubscribe"].strip("<>") in text
        assert re.search(r"/f/[\w.-]+", text).group(0) in html
    assert len({d.headers["List-Unsubscribe"] for d in deliveries}) == 30
    assert set(statuses(runtime.db).values()) == {"sent"}


def test_texts_go_out_over_several_connections_at_once(build, twilio_stub: TwilioStub) -> None:  # type: ignore[no-untyped-def]
    sms = TwilioTransport(
        twilio_stub.account_sid, twilio_stub.auth_token, from_number="+15005550006", api_base=twilio_stub.url
    )
    runtime = build(MemoryTransport(), sms, sms_concurrency=4)
    for n in range(12):
        runtime.forwarding.submit("spring", submission(f"06 123456{n:02d}", sender_name=f"S{n}"))
    twilio_stub.latency = 0.05
    report = runtime.delivery.dispatch()
    assert len(report.sent) == 12
    assert len(twilio_stub.messages) == 12
    assert twilio_stub.max_concurrent_connections >= 2


def test_a_sent_text_is_written_down_once_when_the_provider_took_it(build, twilio_stub: TwilioStub) -> None:  # type: ignore[no-untyped-def]
    sms = TwilioTransport(
        twilio_stub.account_sid, twilio_stub.auth_token, from_number="+15005550006", api_base=twilio_stub.url
    )
    runtime = build(MemoryTransport(), sms, sms_concurrency=4)
    for n in range(6):
        runtime.forwarding.submit("spring", submission(f"06 123456{n:02d}", sender_name=f"S{n}"))
    written: list[int] = []

    def count_sent_records(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        # Every row an UPDATE of the template versions writes: that is where a send is recorded.
        if statement.startswith("UPDATE messages") and "template_versions" in statement:
            written.append(len(parameters) if executemany else 1)

    event.listen(runtime.db.engine, "before_cursor_execute", count_sent_records)
    try:
        report = runtime.delivery.dispatch()
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", count_sent_records)
    assert len(report.sent) == 6
    assert sum(written) == 6  # once each, as Twilio took it; not again with the batch's outcomes
    with runtime.db.reading() as session:
        rows = session.scalars(select(Message)).all()
    assert {m.provider_id for m in rows} == {m.sid for m in twilio_stub.messages}
    assert all(m.status == "sent" and m.sent_at and m.template_versions is not None for m in rows)


class SimulatedPacer:
    """`engine.caps.Pacer`'s contract on the test's clock: each turn takes the next free slot of
    the rate, and waiting for it moves the clock there instead of sleeping. (The pacer itself,
    on Redis's clock, is tested in test_pacing.py; real-time figures are `make bench-caps`'s.)"""

    def __init__(self, clock: FixedClock, per_second: float) -> None:
        self.per_second = per_second
        self._clock = clock
        self._free = clock.now()
        self._lock = threading.Lock()
        self._granted = threading.local()
        self.costs: list[int] = []

    def wait_turn(self, cost: int = 1) -> bool:
        with self._lock:
            slot = max(self._free, self._clock.now())
            self._free = slot + timedelta(seconds=cost / self.per_second)
            self.costs.append(cost)
            self._clock.set(max(slot, self._clock.now()))
        self._granted.slot = slot
        return True

    def granted(self) -> datetime:
        """The slot this thread was last given: when its send went, on the simulated clock."""
        return self._granted.slot


def paced(runtime: Runtime, clock: FixedClock, *, sms: float | None = None, email: float | None = None):  # type: ignore[no-untyped-def]
    pacer = SimulatedPacer(clock, sms or email or 1.0)
    if sms:
        runtime.delivery._pacers["sms"] = pacer  # type: ignore[assignment]
    if email:
        runtime.delivery._pacers["email"] = pacer  # type: ignore[assignment]
    return pacer


def seconds_after(start: datetime, moments: list[datetime]) -> list[float]:
    return [round((moment - start).total_seconds(), 6) for moment in moments]


class StampedTexts(MemoryTransport):
    """Records the moment each text reached the provider (the slot its thread was granted)."""

    def __init__(self) -> None:
        super().__init__()
        self.pacer: SimulatedPacer | None = None
        self.taken: dict[str, datetime] = {}
        self.threads: set[str] = set()

    def send_sms(self, sms):  # type: ignore[no-untyped-def]
        assert self.pacer is not None
        self.taken[sms.reference] = self.pacer.granted()
        self.threads.add(threading.current_thread().name)
        return super().send_sms(sms)


def test_texts_are_paced_to_the_sender_numbers_rate_across_threads(build, clock: FixedClock) -> None:  # type: ignore[no-untyped-def]
    start = clock.now()
    sms = StampedTexts()
    runtime = build(MemoryTransport(), sms, sms_concurrency=4, sms_segments_per_second=5.0)
    sms.pacer = pacer = paced(runtime, clock, sms=5.0)
    for n in range(8):
        runtime.forwarding.submit("spring", submission(f"06 123456{n:02d}", sender_name=f"S{n}"))
    assert len(runtime.delivery.dispatch().sent) == 8
    # Every text asked for its segments, as the carrier counts them...
    assert pacer.costs == [measure(text.text).segments for text in sms.sms]
    # ...and the four threads' texts went one after the other at five segments a second,
    # never two in one slot.
    step = pacer.costs[0] / 5.0
    assert seconds_after(start, sorted(sms.taken.values())) == [round(n * step, 6) for n in range(8)]


class StampedEmails(BatchingMemoryTransport):
    """Records when each request reached the provider and how many messages it carried."""

    def __init__(self) -> None:
        super().__init__()
        self.pacer: SimulatedPacer | None = None
        self.requests: list[tuple[datetime, int]] = []

    def send_email_batch(self, batch):  # type: ignore[no-untyped-def]
        assert self.pacer is not None
        self.requests.append((self.pacer.granted(), len(batch.recipients)))
        return super().send_email_batch(batch)


class StampedSingleEmails(MemoryTransport):
    """A provider without a batch API (SMTP): one request a message."""

    def __init__(self) -> None:
        super().__init__()
        self.pacer: SimulatedPacer | None = None
        self.times: list[datetime] = []

    def send_email(self, email):  # type: ignore[no-untyped-def]
        assert self.pacer is not None
        self.times.append(self.pacer.granted())
        return super().send_email(email)


def test_emails_are_paced_to_the_providers_rate_in_batches_of_a_second(build, clock: FixedClock) -> None:  # type: ignore[no-untyped-def]
    start = clock.now()
    email = StampedEmails()
    runtime = build(email, email_messages_per_second=5.0)
    email.pacer = paced(runtime, clock, email=5.0)
    forward_many(runtime, 12)
    assert len(runtime.delivery.dispatch().sent) == 12
    # Five a second: batches of five, each a second after the one before.
    assert [size for _, size in email.requests] == [5, 5, 2]
    assert seconds_after(start, [moment for moment, _ in email.requests]) == [0.0, 1.0, 2.0]


def test_emails_without_a_batch_api_are_paced_one_by_one(build, clock: FixedClock) -> None:  # type: ignore[no-untyped-def]
    start = clock.now()
    email = StampedSingleEmails()
    runtime = build(email, email_messages_per_second=10.0)
    email.pacer = paced(runtime, clock, email=10.0)
    forward_many(runtime, 5)
    assert len(runtime.delivery.dispatch().sent) == 5
    assert seconds_after(start, email.times) == [0.0, 0.1, 0.2, 0.3, 0.4]


def test_each_message_records_when_the_provider_took_it(build, clock: FixedClock) -> None:  # type: ignore[no-untyped-def]
    start = clock.now()
    sms = StampedTexts()
    runtime = build(MemoryTransport(), sms, sms_concurrency=1, sms_segments_per_second=10.0)
    sms.pacer = paced(runtime, clock, sms=10.0)
    for n in range(4):
        runtime.forwarding.submit("spring", submission(f"06 123456{n:02d}", sender_name=f"S{n}"))
    assert len(runtime.delivery.dispatch().sent) == 4
    with runtime.db.reading() as session:
        messages = session.scalars(select(Message)).all()
    # Each is recorded at the moment its text went, not when the batch's outcomes were
    # written down (by then the clock has moved on to the last one).
    assert {m.public_id: m.sent_at for m in messages} == sms.taken
    step = measure(sms.sms[0].text).segments / 10.0
    assert seconds_after(start, sorted(sms.taken.values())) == [round(n * step, 6) for n in range(4)]


class BrokenPacer:
    """A pacer that fails while the send waits for its turn: Redis errs in a way the pacer does
    not translate, or the worker is stopped (`SystemExit`) in the middle of the wait."""

    def __init__(self, error: BaseException, per_second: float = 5.0) -> None:
        self.per_second = per_second
        self.error = error

    def wait_turn(self, cost: int = 1) -> bool:
        raise self.error


@pytest.mark.parametrize("error", [ConnectionError("Redis went away"), SystemExit(1)], ids=["error", "stopped"])
@pytest.mark.parametrize("channel", ["email", "text"])
def test_a_send_that_fails_while_waiting_for_its_turn_stays_queued_not_unknown(
    build, error: BaseException, channel: str
) -> None:  # type: ignore[no-untyped-def]
    email, sms = BatchingMemoryTransport(), MemoryTransport()
    runtime = build(email, sms)
    if channel == "email":
        forward_many(runtime, 3)
        runtime.delivery._pacers["email"] = BrokenPacer(error)  # type: ignore[assignment]
    else:
        for n in range(3):
            runtime.forwarding.submit("spring", submission(f"06 123456{n:02d}", sender_name=f"S{n}"))
        runtime.delivery._pacers["sms"] = BrokenPacer(error)  # type: ignore[assignment]
    if isinstance(error, SystemExit):
        with pytest.raises(SystemExit):
            runtime.delivery.dispatch()
    else:
        runtime.delivery.dispatch()
    # Nothing reached a provider: every message waits in the queue to be tried again, none is
    # marked as perhaps sent (which nobody would retry).
    assert (email.emails, email.batches, sms.sms) == ([], [], [])
    assert set(statuses(runtime.db).values()) == {"queued"}
    with runtime.db.reading() as session:
        assert session.scalars(select(Message.handed_at)).all() == [None, None, None]
    runtime.delivery.sweep()
    assert set(statuses(runtime.db).values()) == {"queued"}
