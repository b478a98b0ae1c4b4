"""The forwarding service on SQLite and PostgreSQL: what a submission writes, and what it refuses."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.models import Forward, Message, MessageStatus
from engine.runtime import Runtime
from engine.services.forwarding import ForwardRejected
from engine.services.lookups import CampaignUnavailable
from engine.tokens import Purpose
from tests.helpers import count, counts, make_campaign, statuses, submission


def test_one_forward_and_one_queued_message_per_friend(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    receipt = runtime.forwarding.submit(
        "spring", submission("bob@example.com", "06 12345678", note="Try it", client_ip="203.0.113.9")
    )
    assert receipt.friend_count == 2
    assert receipt.enqueued
    with runtime.db.reading() as session:
        forwards = session.scalars(select(Forward).order_by(Forward.id)).all()
        messages = session.scalars(select(Message).order_by(Message.id)).all()
    assert [(f.channel, f.recipient_contact, f.generation, f.parent_id) for f in forwards] == [
        ("email", "bob@example.com", 1, None),
        ("sms", "+31612345678", 1, None),
    ]
    assert all(f.sender_name == "Anna" and f.note == "Try it" for f in forwards)
    # Contacts and IPs are identified by keyed hashes, never in clear outside recipient_contact.
    assert all(len(f.recipient_contact_hash) == 64 and "203.0.113.9" not in (f.client_ip_hash or "") for f in forwards)
    assert [(m.channel, m.status, m.policy_name, m.policy_version) for m in messages] == [
        ("email", MessageStatus.QUEUED, "custom", 1),
        ("sms", MessageStatus.QUEUED, "custom", 1),
    ]
    assert runtime.queue.queue.count == 1  # one job for the whole submission, carrying ids


def test_generations_follow_the_chain_of_tokens(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    parent_id = None
    token = None
    for generation in range(1, 5):
        runtime.forwarding.submit("spring", submission(f"friend{generation}@example.com", referrer_token=token))
        with runtime.db.reading() as session:
            forward = session.scalars(select(Forward).order_by(Forward.id.desc())).first()
        assert forward.generation == generation
        assert forward.parent_id == parent_id
        parent_id = forward.id
        token = runtime.tokens.sign(Purpose.FORWARD, forward.public_id)


def test_friend_already_invited_is_quietly_not_messaged_again(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    runtime.forwarding.submit("spring", submission("bob@example.com"))
    receipt = runtime.forwarding.submit("spring", submission("BOB@example.com", "carol@example.com", sender_name="Dan"))
    # The sender sees two friends accepted; only Carol gets a message.
    assert receipt.friend_count == 2
    assert len(receipt.message_ids) == 1
    assert count(runtime.db, Message) == 2


@pytest.mark.parametrize(
    ("friends", "fields", "field", "fragment"),
    [
        ((), {}, "friend", "at least one"),
        (tuple(f"f{i}@example.com" for i in range(6)), {}, "friend", "at most 5"),
        (("bob@example.com", "Bob@Example.com"), {}, "friend", "twice"),
        (("anna@example.com",), {"sender_contact": "ANNA@example.com"}, "friend", "your own"),
    ],
)
def test_rule_breaking_submissions_write_nothing(runtime: Runtime, campaign, friends, fields, field, fragment) -> None:  # type: ignore[no-untyped-def]
    before = counts(runtime.db)
    with pytest.raises(ForwardRejected) as rejection:
        runtime.forwarding.submit("spring", submission(*friends, **fields))
    assert fragment in " ".join(rejection.value.errors[field])
    assert counts(runtime.db) == before
    assert runtime.queue.queue.count == 0


def test_channel_the_campaign_does_not_offer_is_refused(runtime: Runtime) -> None:
    make_campaign(runtime.db, "mailonly", channels=["email"])
    with pytest.raises(ForwardRejected, match="text message"):
        runtime.forwarding.submit("mailonly", submission("bob@example.com", "06 12345678"))
    assert count(runtime.db, Forward) == 0


def test_policy_decides_server_sent_sms(runtime: Runtime) -> None:
    # Under `us`, a number typed in by a sender is not its owner's consent: nothing is queued
    # for it (tests/integration/test_consents.py has the friends who did consent).
    make_campaign(runtime.db, "us", policy_name="us", policy_settings={})
    receipt = runtime.forwarding.submit("us", submission("06 12345678"))
    assert receipt.message_ids == ()
    assert set(statuses(runtime.db).values()) == {"suppressed"}
    # Under `share-only`, the server sends nothing at all.
    make_campaign(runtime.db, "shared", policy_name="share-only", policy_settings={})
    with pytest.raises(ForwardRejected, match="email"):
        runtime.forwarding.submit("shared", submission("bob@example.com"))
    assert count(runtime.db, Forward) == 1


@pytest.mark.parametrize(
    ("fields", "status"),
    [({"status": "draft"}, 404), ({"status": "paused"}, 404), ({"status": "ended"}, 410)],
)
def test_closed_campaigns_take_no_forwards(runtime: Runtime, fields, status: int) -> None:  # type: ignore[no-untyped-def]
    make_campaign(runtime.db, "closed", **fields)
    with pytest.raises(CampaignUnavailable) as error:
        runtime.forwarding.submit("closed", submission("bob@example.com"))
    assert error.value.status == status
    assert count(runtime.db, Forward) == 0


def test_unknown_campaign_is_404(runtime: Runtime) -> None:
    with pytest.raises(CampaignUnavailable) as error:
        runtime.forwarding.submit("nope", submission("bob@example.com"))
    assert error.value.status == 404


def test_forged_and_foreign_referrer_tokens_are_refused(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    make_campaign(runtime.db, "other")
    runtime.forwarding.submit("other", submission("bob@example.com"))
    with runtime.db.reading() as session:
        other_forward = session.scalars(select(Forward)).one()
    foreign = runtime.tokens.sign(Purpose.FORWARD, other_forward.public_id)
    unsubscribe_token = runtime.tokens.sign(Purpose.UNSUBSCRIBE, other_forward.public_id)
    for token, fragment in [
        (foreign, "not for this offer"),
        ("forged.token.value", "not valid"),
        (unsubscribe_token, "not valid"),
    ]:
        with pytest.raises(ForwardRejected, match=fragment):
            runtime.forwarding.submit("spring", submission("carol@example.com", referrer_token=token))
    assert count(runtime.db, Forward) == 1


def test_click_is_recorded_against_the_forward(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    runtime.forwarding.submit("spring", submission("bob@example.com"))
    with runtime.db.reading() as session:
        forward = session.scalars(select(Forward)).one()
    token = runtime.tokens.sign(Purpose.FORWARD, forward.public_id)
    followed = runtime.forwarding.follow_link(token, "198.51.100.7", "Mozilla/5.0")
    assert (followed.campaign_slug, followed.forward_public_id) == ("spring", forward.public_id)
    assert counts(runtime.db)["clicks"] == 1


def test_simultaneous_submissions_for_one_friend_message_them_once(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    import threading

    start = threading.Barrier(6)
    errors: list[Exception] = []

    def double_click(n: int) -> None:
        start.wait()
        try:
            runtime.forwarding.submit("spring", submission("bob@example.com", f"other{n}@example.com"))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=double_click, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with runtime.db.reading() as session:
        to_bob = session.scalars(select(Forward).where(Forward.recipient_contact == "bob@example.com")).all()
    assert len(to_bob) == 1
    assert count(runtime.db, Message) == 7


def test_reads_do_not_hold_up_writers(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    with runtime.db.reading() as session:
        session.scalars(select(Forward)).all()  # a read transaction stays open...
        runtime.forwarding.submit("spring", submission("bob@example.com"))  # ...and a write goes through
    assert count(runtime.db, Forward) == 1
