"""Data-subject requests and retention, on SQLite and PostgreSQL: what `privacy export` gives a
person, what `privacy erase` leaves behind (only hashes), and how long each consent policy
lets a friend's plaintext contact stay."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from engine.db import Base
from engine.models import (
    Campaign,
    CampaignStatus,
    Forward,
    Message,
    MessageStatus,
    OptOutEntry,
    OutboxMessage,
    Suppression,
    SuppressionScope,
    SuppressionSource,
)
from engine.runtime import Runtime
from engine.services.forwarding import ForwardReceipt
from engine.services.privacy import ERASED_SENDER_NAME, PrivacyService
from engine.services.suppression import suppress_contact
from engine.tokens import Purpose
from engine.transports.memory import MemoryTransport
from tests.helpers import US_CUSTOM_SMS, count, make_campaign, statuses, submission

BOB = "bob@example.com"


def privacy(runtime: Runtime) -> PrivacyService:
    return PrivacyService(runtime.db, runtime.hasher, runtime.settings.default_phone_region)


def hash_of(runtime: Runtime, raw: str) -> str:
    return runtime.hasher.hash(privacy(runtime).parse(raw))


def forward(runtime: Runtime, slug: str, *friends: str, **fields: Any) -> ForwardReceipt:
    return runtime.forwarding.submit(slug, submission(*friends, **fields))


def columns_holding(runtime: Runtime, needle: str) -> list[str]:
    """Every `table.column` of every table whose value contains `needle` (case-insensitively),
    read generically from the metadata, so that a new table or column cannot hide a copy."""
    needle = needle.lower()
    found = []
    with runtime.db.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(table.select()):
                for column, value in zip(table.columns, row, strict=True):
                    text = json.dumps(value) if isinstance(value, dict | list) else str(value)
                    if value is not None and needle in text.lower():
                        found.append(f"{table.name}.{column.name}")
    return found


@pytest.fixture
def story(app: Flask, runtime: Runtime, campaign, transport: MemoryTransport) -> Runtime:  # type: ignore[no-untyped-def]
    """Anna forwards spring to Bob and Carol with a note; Bob opens his link and forwards it
    on to Dave (giving his own address); Bob also has a text-free autumn offer waiting."""
    make_campaign(runtime.db, "autumn")
    first = forward(runtime, "spring", BOB, "carol@example.com", sender_contact="anna@example.com", note="Look!")
    runtime.delivery.deliver(first.message_ids)
    with runtime.db.reading() as session:
        to_bob = session.scalars(select(Forward).where(Forward.recipient_contact == BOB)).one()
    token = runtime.tokens.sign(Purpose.FORWARD, to_bob.public_id)
    assert app.test_client().get(f"/f/{token}").status_code == 303
    second = forward(
        runtime, "spring", "dave@example.com", sender_name="Bob", sender_contact="Bob@Example.com", note="Try it"
    )
    runtime.delivery.deliver(second.message_ids)
    forward(runtime, "autumn", BOB, sender_name="Erin")
    pause(runtime, "autumn")  # Erin's forward to Bob stays queued
    return runtime


def pause(runtime: Runtime, slug: str, status: CampaignStatus = CampaignStatus.PAUSED) -> None:
    with runtime.db.transaction() as session:
        session.execute(update(Campaign).where(Campaign.slug == slug).values(status=status))


# -- export -------------------------------------------------------------------------------------


def test_export_lists_what_is_held_about_the_person_and_nothing_of_anyone_else(story: Runtime) -> None:
    document = privacy(story).export("  Bob@example.com ")

    assert (document["format"], document["version"]) == ("fluister.privacy-export", 1)
    # As typed, normalised; the hash ignores case, so it finds everything sent to bob@example.com.
    assert document["contact"] == {"channel": "email", "value": "Bob@example.com", "hash": hash_of(story, BOB)}
    spring, autumn = document["forwards_received"]
    assert spring["campaign"] == {"slug": "spring", "name": "Campaign spring", "brand": "Acme"}
    assert (spring["sender_name"], spring["note"], spring["generation"], spring["channel"]) == (
        "Anna",
        "Look!",
        1,
        "email",
    )
    assert spring["contact_stored"] is True
    assert [(m["status"], m["policy"], m["policy_version"], bool(m["sent_at"])) for m in spring["messages"]] == [
        ("sent", "custom", 1, True)
    ]
    assert len(spring["clicks"]) == 1 and spring["clicks"][0]["at"]
    assert [(m["status"], m["sent_at"]) for m in autumn["messages"]] == [("queued", None)]
    assert [(f["campaign"]["slug"], f["sender_name"], f["note"], f["friends"]) for f in document["forwards_sent"]] == [
        ("spring", "Bob", "Try it", 1)
    ]
    assert (document["suppressions"], document["consents"], document["opt_out_log"]) == ([], [], [])
    assert document["outbox_copies"] == 0

    text = json.dumps(document)  # JSON-serialisable as it is
    for someone_else in ("carol@example.com", "dave@example.com", "anna@example.com"):
        assert someone_else not in text
        assert hash_of(story, someone_else) not in text


def test_export_of_a_stranger_is_an_empty_document(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    document = privacy(runtime).export("06 12345678")
    assert document["contact"]["value"] == "+31612345678"
    assert document["forwards_received"] == document["forwards_sent"] == document["suppressions"] == []


# -- erase --------------------------------------------------------------------------------------


def test_erase_leaves_no_plaintext_keeps_the_suppression_and_stops_every_message(
    app: Flask, story: Runtime, transport: MemoryTransport
) -> None:
    bob_hash = hash_of(story, BOB)
    with story.db.transaction() as session:
        # Copies of the address outside the forward: a bounce reason quoting it, the dev outbox,
        # and someone else's note spelling it out.
        session.execute(
            update(Message)
            .where(Message.forward_id.in_(select(Forward.id).where(Forward.recipient_contact_hash == bob_hash)))
            .where(Message.status == "sent")
            .values(error="550 5.1.1 <BOB@example.com>: user unknown")
        )
        session.add_all(
            [
                OutboxMessage(channel="email", to=BOB, subject="An offer", text="Hi"),
                OutboxMessage(channel="email", to="carol@example.com", subject="An offer", text="Hi"),
            ]
        )
        session.execute(
            update(Forward).where(Forward.sender_name == "Erin").values(note="bob@example.com will like this")
        )
    assert set(columns_holding(story, BOB)) == {
        "forwards.recipient_contact",
        "forwards.note",
        "messages.error",
        "outbox_messages.to",
    }
    sent_before = len(transport.emails)

    report = privacy(story).erase(BOB)

    assert columns_holding(story, BOB) == []
    assert "forwards.recipient_contact" in columns_holding(story, "carol@example.com")  # the scan sees
    assert report.as_dict() == {
        "contact_hash": bob_hash,
        "channel": "email",
        "contacts_erased": 2,
        "messages_stopped": 1,
        "errors_masked": 1,
        "outbox_deleted": 1,
        "forwards_scrubbed": 1,
        "notes_cleared": 1,
        "consents_revoked": 0,
        "referrer_contacts_erased": 0,
        "suppressed": True,
        "changes": 8,
    }
    with story.db.reading() as session:
        suppression = session.scalars(select(Suppression)).one()
        entry = session.scalars(select(OptOutEntry)).one()
        sent_by_bob = session.scalars(select(Forward).where(Forward.sender_contact_hash == bob_hash)).one()
        from_anna = session.scalars(select(Forward).where(Forward.sender_name == "Anna")).all()
    assert (suppression.contact_hash, suppression.channel, suppression.scope, suppression.source) == (
        bob_hash,
        "email",
        "global",
        "erase-request",
    )
    assert (entry.contact_hash, entry.scope, entry.source, entry.action) == (
        bob_hash,
        "global",
        "erase-request",
        "opt-out",
    )
    assert (sent_by_bob.sender_name, sent_by_bob.note) == (ERASED_SENDER_NAME, None)
    assert {(f.sender_name, f.note) for f in from_anna} == {("Anna", "Look!")}  # other people's words stay

    # The queued autumn message ended suppressed; resuming the campaign sends Bob nothing.
    assert sorted(statuses(story.db).values()).count("suppressed") == 1
    pause(story, "autumn", CampaignStatus.ACTIVE)
    story.delivery.dispatch()
    assert len(transport.emails) == sent_before

    # A later forward to him, from anyone, is held back at once and keeps no plaintext.
    make_campaign(story.db, "winter")
    later = forward(story, "winter", "BOB@example.com", sender_name="Frank")
    story.delivery.dispatch()
    assert later.message_ids == () and len(transport.emails) == sent_before
    assert columns_holding(story, BOB) == []

    verified = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert verified.exit_code == 0 and "intact" in verified.output


def test_a_message_queued_before_the_erasure_is_caught_at_send_time_too(
    story: Runtime, transport: MemoryTransport
) -> None:
    """Were the erasure not to touch the queue, the send-time suppression check would still stop it."""
    with story.db.reading() as session:
        queued_id = session.scalars(select(Message.id).where(Message.status == "queued")).one()
    with story.db.transaction() as session:
        suppress_contact(
            session,
            hash_of(story, BOB),
            "email",
            SuppressionScope.GLOBAL,
            SuppressionSource.ERASE_REQUEST,
            now=story.clock.now(),
        )
    pause(story, "autumn", CampaignStatus.ACTIVE)
    sent_before = len(transport.emails)
    report = story.delivery.deliver([queued_id])
    assert report.suppressed == [queued_id] and len(transport.emails) == sent_before


def test_erase_finds_every_spelling_of_the_mailbox(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    forward(runtime, "spring", "Bob.Smith@gmail.com")
    forward(runtime, "spring", "carol@example.com", sender_name="Erin")
    with runtime.db.transaction() as session:
        # Spellings of one Gmail mailbox (case, dots, a +tag, the googlemail.com alias), quoted
        # by a bounce, kept by the dev outbox, spelled out in someone else's note.
        bob = select(Forward.id).where(Forward.recipient_contact == "Bob.Smith@gmail.com")
        session.execute(
            update(Message)
            .where(Message.forward_id.in_(bob))
            .values(error="550 5.1.1 <BOB.SMITH@gmail.com>: unknown; to=bob.smith+x@gmail.com")
        )
        session.add_all(
            [
                OutboxMessage(channel="email", to="Bob.Smith@gmail.com", subject="An offer", text="Hi"),
                OutboxMessage(channel="email", to="bobsmith+deals@googlemail.com", subject="An offer", text="Hi"),
                OutboxMessage(channel="email", to="bob.smith.jr@gmail.com", subject="An offer", text="Hi"),
            ]
        )
        session.execute(
            update(Forward).where(Forward.sender_name == "Erin").values(note="B.o.b.Smith+x@GMAIL.com will like this")
        )
    assert set(columns_holding(runtime, "bob.smith@gmail.com")) == {
        "forwards.recipient_contact",
        "messages.error",
        "outbox_messages.to",
    }

    report = privacy(runtime).erase("bobsmith@gmail.com")

    spellings = (
        "bob.smith@gmail.com",
        "bob.smith+x@gmail.com",
        "bobsmith+deals@googlemail.com",
        "b.o.b.smith+x@gmail.com",
    )
    for spelling in spellings:
        assert columns_holding(runtime, spelling) == [], spelling
    assert (report.outbox_deleted, report.notes_cleared) == (2, 1)
    # Another mailbox of the same provider is someone else's.
    assert columns_holding(runtime, "bob.smith.jr@gmail.com") == ["outbox_messages.to"]
    assert columns_holding(runtime, "carol@example.com") == ["forwards.recipient_contact"]


def test_erasing_twice_is_harmless_and_changes_nothing_the_second_time(app: Flask, story: Runtime) -> None:
    first = privacy(story).erase(BOB)
    second = privacy(story).erase("Bob@Example.com")
    assert first.changes > 0
    assert second.changes == 0 and not second.suppressed
    assert count(story.db, OptOutEntry) == 1
    assert count(story.db, Suppression) == 1
    assert app.test_cli_runner().invoke(args=["audit", "verify"]).exit_code == 0


def test_erasing_a_phone_number_suppresses_texts(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    receipt = forward(runtime, "spring", "06 12345678", "bob@example.com")
    report = privacy(runtime).erase("+31 6 1234 5678")
    assert (report.channel, report.contacts_erased, report.messages_stopped) == ("sms", 1, 1)
    assert columns_holding(runtime, "+31612345678") == []
    assert columns_holding(runtime, BOB) == ["forwards.recipient_contact"]  # Bob's email is not his
    with runtime.db.reading() as session:
        suppression = session.scalars(select(Suppression)).one()
    assert (suppression.channel, suppression.scope) == ("sms", "global")
    assert [statuses(runtime.db)[i] for i in receipt.message_ids] == ["suppressed", "queued"]


# -- the commands -------------------------------------------------------------------------------


def test_export_command_prints_json_or_writes_a_file(
    app: Flask, story: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    runner = app.test_cli_runner()
    printed = runner.invoke(args=["privacy", "export", BOB])
    assert printed.exit_code == 0
    assert json.loads(printed.stdout)["contact"]["value"] == BOB
    assert "\n  " in printed.stdout  # pretty-printed

    target = tmp_path / "bob.json"
    written = runner.invoke(args=["privacy", "export", BOB, "--output", str(target)])
    assert written.exit_code == 0 and BOB not in written.stdout
    assert json.loads(target.read_text())["forwards_sent"][0]["friends"] == 1
    assert BOB not in caplog.text.lower()


@pytest.mark.parametrize("command", ["export", "erase"])
@pytest.mark.parametrize("contact", ["not-a-contact", "bob@", "12", ""])
def test_bad_contacts_exit_non_zero_with_a_reason(app: Flask, story: Runtime, command: str, contact: str) -> None:
    args = ["privacy", command, contact, *(["--yes"] if command == "erase" else [])]
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code != 0
    assert "not an e-mail address or a phone number" in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, ValueError)
    assert count(story.db, Suppression) == 0


def test_erase_command_asks_first_unless_told_yes(app: Flask, story: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    runner = app.test_cli_runner()
    declined = runner.invoke(args=["privacy", "erase", BOB], input="n\n")
    assert declined.exit_code != 0 and "b***@example.com" in declined.output and BOB not in declined.output
    assert count(story.db, Suppression) == 0

    confirmed = runner.invoke(args=["privacy", "erase", BOB], input="y\n")
    assert confirmed.exit_code == 0
    assert "contacts erased: 2" in confirmed.output and "suppressed: true" in confirmed.output

    again = runner.invoke(args=["privacy", "erase", BOB, "--yes"])
    assert again.exit_code == 0 and "nothing left to erase" in again.output
    assert BOB not in caplog.text.lower()


# -- retention ----------------------------------------------------------------------------------


def age(runtime: Runtime, message_id: int, status: MessageStatus, days: float, *, sent: bool) -> None:
    """Make a message end (or wait) `days` ago."""
    then = runtime.clock.now() - timedelta(days=days)
    with runtime.db.transaction() as session:
        session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(status=status.value, sent_at=then if sent else None, updated_at=then, created_at=then)
        )


def stored(runtime: Runtime) -> set[str]:
    with runtime.db.reading() as session:
        return set(session.scalars(select(Forward.recipient_contact).where(Forward.recipient_contact.is_not(None))))


def one_each(runtime: Runtime, slug: str, *friends: str) -> dict[str, int]:
    receipt = forward(runtime, slug, *friends)
    with runtime.db.reading() as session:
        rows = session.execute(
            select(Forward.recipient_contact, Message.id)
            .join(Message, Message.forward_id == Forward.id)
            .where(Message.id.in_(receipt.message_ids))
        )
        return {contact: message_id for contact, message_id in rows}


def test_days_after_send_keeps_contacts_so_many_days_after_any_ending(runtime: Runtime) -> None:
    make_campaign(
        runtime.db,
        "us",
        policy_name="us",
        policy_settings={},
        channels=["email"],
        max_friends_per_submission=10,
        caps={"friends_per_sender_per_day": None},
    )
    endings = [
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.BOUNCED,
        MessageStatus.FAILED,
        MessageStatus.SUPPRESSED,
        MessageStatus.CAPPED,
        MessageStatus.UNKNOWN,
    ]
    old = one_each(runtime, "us", *(f"old-{s}@example.com" for s in endings))
    recent = one_each(runtime, "us", *(f"new-{s}@example.com" for s in endings))
    for status in endings:
        sent = status in (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.BOUNCED)
        age(runtime, old[f"old-{status}@example.com"], status, 31, sent=sent)
        age(runtime, recent[f"new-{status}@example.com"], status, 29, sent=sent)

    assert runtime.delivery.sweep().purged == len(endings)
    assert stored(runtime) == set(recent)


def test_purge_after_send_erases_at_any_ending_and_waits_for_queued_messages(
    runtime: Runtime, transport: MemoryTransport
) -> None:
    make_campaign(runtime.db, "nl", policy_name="eu-strict", policy_settings={}, channels=["email"])
    ids = one_each(runtime, "nl", "sent@example.com", "failed@example.com", "waiting@example.com")
    runtime.delivery.deliver([ids["sent@example.com"]])
    assert stored(runtime) == {"failed@example.com", "waiting@example.com"}  # erased as it was sent
    age(runtime, ids["failed@example.com"], MessageStatus.FAILED, 0, sent=False)
    assert runtime.delivery.sweep().purged == 1
    assert stored(runtime) == {"waiting@example.com"}


def test_a_policy_that_keeps_nothing_never_stores_a_contact(runtime: Runtime) -> None:
    # share-only sends nothing from the server, so it is never given a friend's contact at all;
    # a custom policy may send yet keep nothing.
    make_campaign(runtime.db, "uk", policy_settings={**US_CUSTOM_SMS, "retention": "nothing"})
    forward(runtime, "uk", "bob@example.com")
    assert stored(runtime) == set()
    with runtime.db.reading() as session:
        assert session.scalars(select(Forward.recipient_contact_hash)).one() == hash_of(runtime, BOB)


@pytest.mark.parametrize(("policy", "settings"), [("us", {}), ("eu-strict", {})])
def test_a_message_that_never_goes_out_does_not_keep_the_contact_forever(
    runtime: Runtime, policy: str, settings: dict[str, Any]
) -> None:
    make_campaign(runtime.db, "stuck", policy_name=policy, policy_settings=settings, channels=["email"])
    ids = one_each(runtime, "stuck", "old@example.com", "new@example.com")
    pause(runtime, "stuck")
    age(runtime, ids["old@example.com"], MessageStatus.QUEUED, 31, sent=False)
    age(runtime, ids["new@example.com"], MessageStatus.QUEUED, 29, sent=False)

    assert runtime.delivery.sweep().purged == 1
    assert stored(runtime) == {"new@example.com"}
    # Resumed after all, the campaign cannot send what it no longer has: the message fails.
    pause(runtime, "stuck", CampaignStatus.ACTIVE)
    report = runtime.delivery.deliver([ids["old@example.com"]])
    assert report.failed == [ids["old@example.com"]]


def test_a_full_batch_of_recent_contacts_does_not_hide_an_expired_one(runtime: Runtime) -> None:
    make_campaign(runtime.db, "us", policy_name="us", policy_settings={}, channels=["email"])
    recent = one_each(runtime, "us", "a@example.com", "b@example.com", "c@example.com")
    expired = one_each(runtime, "us", "old@example.com")
    for message_id in recent.values():
        age(runtime, message_id, MessageStatus.SENT, 1, sent=True)
    age(runtime, expired["old@example.com"], MessageStatus.SENT, 31, sent=True)

    assert runtime.delivery.purge_contacts(batch=2) == 1
    assert stored(runtime) == set(recent)
    with runtime.db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Forward)) == 4  # hashes stay
