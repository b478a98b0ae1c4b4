"""One person, one identity: however a friend's address is spelt, an opt-out, "already
invited" and the per-recipient cap find them; and that cap outlives a Redis restart."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.contacts import parse_contact
from engine.models import Message, MessageStatus, Suppression, SuppressionScope, SuppressionSource
from engine.runtime import Runtime
from engine.services.forwarding import ForwardCapped, ForwardRejected
from engine.services.privacy import PrivacyService
from engine.services.suppression import suppress_contact
from tests.helpers import make_campaign, submission


def message_statuses(runtime: Runtime) -> list[str]:
    with runtime.db.reading() as session:
        return list(session.scalars(select(Message.status).order_by(Message.id)))


def opt_out(runtime: Runtime, contact_hash: str) -> None:
    with runtime.db.transaction() as session:
        suppress_contact(
            session, contact_hash, "email", SuppressionScope.GLOBAL, SuppressionSource.LINK, now=runtime.clock.now()
        )


@pytest.mark.parametrize("spelling", ["victim+x@gmail.com", "v.ictim@gmail.com", "victim@googlemail.com"])
def test_an_opted_out_inbox_is_not_reached_by_another_spelling(runtime: Runtime, campaign, spelling: str) -> None:  # type: ignore[no-untyped-def]
    opt_out(runtime, runtime.hasher.hash(parse_contact("victim@gmail.com", "NL")))
    receipt = runtime.forwarding.submit("spring", submission(spelling, "bob@example.com"))
    assert receipt.friend_count == 2  # the sender is not told
    assert message_statuses(runtime) == [MessageStatus.SUPPRESSED, MessageStatus.QUEUED]


def test_the_message_goes_to_the_address_as_typed(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    runtime.forwarding.submit("spring", submission("V.ictim+offers@gmail.com"))
    with runtime.db.reading() as session:
        message = session.scalars(select(Message)).one()
        assert message.forward.recipient_contact == "V.ictim+offers@gmail.com"
        assert message.forward.recipient_contact_hash == runtime.hasher.hash(parse_contact("victim@gmail.com", "NL"))


def test_an_opt_out_recorded_under_an_old_spelling_still_holds(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    # Before canonical identities, the hash was of the address lowercased, and only that
    # hash was kept: typing that spelling again must still find the opt-out.
    opt_out(runtime, runtime.hasher.hash_text("email:v.ictim+x@gmail.com"))
    runtime.forwarding.submit("spring", submission("V.ictim+x@gmail.com"))
    assert message_statuses(runtime) == [MessageStatus.SUPPRESSED]


def test_another_spelling_of_an_invited_friend_is_not_messaged_again(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    runtime.forwarding.submit("spring", submission("victim@gmail.com"))
    receipt = runtime.forwarding.submit("spring", submission("v.ictim+2@googlemail.com", sender_name="Dan"))
    assert receipt.message_ids == ()
    assert message_statuses(runtime) == [MessageStatus.QUEUED]


def test_the_same_friend_twice_in_one_form_under_two_spellings_is_refused(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ForwardRejected) as rejected:
        runtime.forwarding.submit("spring", submission("victim@gmail.com", "vic.tim+a@gmail.com"))
    assert "twice" in str(rejected.value)


def test_the_per_recipient_cap_counts_every_spelling_and_survives_a_redis_restart(runtime: Runtime) -> None:
    for n, spelling in enumerate(["victim@gmail.com", "v.ictim@gmail.com", "victim+3@googlemail.com"], start=1):
        make_campaign(runtime.db, f"c{n}")
        runtime.forwarding.submit(f"c{n}", submission(spelling, client_ip=f"192.0.2.{n}"))
    # Redis restarts and forgets every counter.
    runtime.limiter.connection.flushall()
    make_campaign(runtime.db, "c4")
    receipt = runtime.forwarding.submit("c4", submission("VICTIM@gmail.com", client_ip="192.0.2.4"))
    assert receipt.friend_count == 1  # nobody is told
    assert message_statuses(runtime) == ["queued", "queued", "queued", "capped"]


def test_held_back_messages_are_no_offers(runtime: Runtime) -> None:
    # An opt-out, or a friend over the cap, received nothing: it does not count towards the cap.
    make_campaign(runtime.db, "c0")
    opt_out(runtime, runtime.hasher.hash(parse_contact("bob@example.com", "NL")))
    runtime.forwarding.submit("c0", submission("bob@example.com"))
    with runtime.db.transaction() as session:
        for suppression in session.scalars(select(Suppression)):
            session.delete(suppression)
    for n in range(1, 5):
        make_campaign(runtime.db, f"c{n}")
        runtime.forwarding.submit(f"c{n}", submission("bob@example.com", client_ip=f"192.0.2.{n}"))
    assert message_statuses(runtime) == ["suppressed", "queued", "queued", "queued", "capped"]


def test_a_sender_typing_a_new_contact_each_time_is_still_counted_by_address(runtime: Runtime) -> None:
    make_campaign(
        runtime.db,
        "tight",
        caps={"friends_per_sender_per_day": 1, "challenge_after_submissions_per_ip_per_hour": None},
    )
    for n in range(10):  # one address holds ten senders' allowance
        runtime.forwarding.submit(
            "tight", submission(f"f{n}@example.com", sender_contact=f"me{n}@example.com", client_ip="203.0.113.5")
        )
    with pytest.raises(ForwardCapped) as capped:
        runtime.forwarding.submit(
            "tight", submission("f10@example.com", sender_contact="me10@example.com", client_ip="203.0.113.5")
        )
    assert capped.value.cap == "friends per sender per day"
    # Another network is not held back by this one.
    runtime.forwarding.submit(
        "tight", submission("f11@example.com", sender_contact="me11@example.com", client_ip="198.51.100.5")
    )


def test_rows_kept_before_canonical_identities_are_rehashed_by_a_command(app, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    # What an older version wrote for a friend typed as "V.ictim+x@gmail.com", who then opted out.
    runtime.forwarding.submit("spring", submission("V.ictim+x@gmail.com"))
    old = runtime.hasher.hash_text("email:v.ictim+x@gmail.com")
    with runtime.db.transaction() as session:
        forward = session.scalars(select(Message)).one().forward
        forward.recipient_contact_hash = old
        suppress_contact(
            session, old, "email", SuppressionScope.GLOBAL, SuppressionSource.LINK, now=runtime.clock.now()
        )

    result = app.test_cli_runner().invoke(args=["contacts", "rehash"])
    assert result.exit_code == 0, result.output
    assert "rehashed 1 forwards, 1 suppressions, 0 consents and 0 rewards" in result.output
    # Run again, nothing is left to do.
    assert "rehashed 0 forwards, 0 suppressions" in app.test_cli_runner().invoke(args=["contacts", "rehash"]).output

    # The plain spelling now finds the invitation, and another campaign finds the opt-out.
    assert runtime.forwarding.submit("spring", submission("victim@gmail.com", sender_name="Dan")).message_ids == ()
    make_campaign(runtime.db, "autumn")
    runtime.forwarding.submit("autumn", submission("victim@googlemail.com"))
    assert message_statuses(runtime) == [MessageStatus.QUEUED, MessageStatus.SUPPRESSED]


def test_export_and_erasure_cover_every_spelling_of_the_inbox(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    runtime.forwarding.submit("spring", submission("v.ictim+spring@gmail.com"))
    make_campaign(runtime.db, "autumn")
    runtime.forwarding.submit("autumn", submission("victim@googlemail.com", client_ip="192.0.2.8"))
    privacy = PrivacyService(runtime.db, runtime.hasher, "NL")

    assert len(privacy.export("victim@gmail.com")["forwards_received"]) == 2
    report = privacy.erase("Victim@Gmail.com")
    assert report.contacts_erased == 2 and report.messages_stopped == 2
    # Erased for good, whatever spelling a sender types next.
    make_campaign(runtime.db, "winter")
    runtime.forwarding.submit("winter", submission("vic.tim+new@gmail.com", client_ip="192.0.2.9"))
    assert message_statuses(runtime)[-1] == MessageStatus.SUPPRESSED
