"""The whole forward loop over real HTTP, as a browser walks it.

Anna forwards the demo offer to Bob (email) and to a phone (SMS); the messages are delivered,
either by the embedded in-process worker or by a separate worker process on Redis; Bob
follows his tracked link and forwards to Carol (generation 2), who forwards to Dave
(generation 3). Links in the messages point at the live server, so following them is real.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from engine.models import Forward
from engine.tokens import Purpose
from tests.e2e.live import LiveServer, Visitor, one
from tests.helpers import counts, tracked_links, unsubscribe_links, visible_text

OUTBOX_FIELDS = {"id", "channel", "to", "subject", "text", "html", "headers", "created_at"}
OFFER = "A free coffee at Koffie & Co"
PHONE_TYPED, PHONE_E164 = "06 12345678", "+31612345678"


def test_forward_loop_with_the_embedded_worker(database_url: str, serve: Callable[..., LiveServer]) -> None:
    server = serve(database_url, inprocess_worker=True)
    walk_the_forward_loop(server, deliver=lambda: None)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_forward_loop_with_redis_and_a_separate_worker_process(
    database_url: str, redis_url: str, serve: Callable[..., LiveServer]
) -> None:
    server = serve(database_url, redis_url, queue_name=f"e2e-{uuid.uuid4().hex[:8]}")
    walk_the_forward_loop(server, deliver=server.run_worker)


def walk_the_forward_loop(server: LiveServer, deliver: Callable[[], None]) -> None:
    # Generation 1: Anna lands on the offer and forwards it to two friends.
    anna = Visitor(server)
    landing = anna.get("/c/demo")
    assert landing.status_code == 200
    assert OFFER in visible_text(landing.text)
    sent = anna.forward(landing, "bob@example.com", PHONE_TYPED, sender_name="Anna", note="Coffee on me!")
    assert sent.status_code == 303
    assert sent.headers["Location"].endswith("/c/demo/thanks")
    thanks = anna.get(sent.headers["Location"])
    assert thanks.status_code == 200
    assert f"We're sending your 2 friends the offer “{OFFER}”." in visible_text(thanks.text)

    deliver()
    messages = server.wait_for_outbox(2)
    check_outbox_listing(messages)
    email, sms = by_recipient(messages, "bob@example.com"), by_recipient(messages, PHONE_E164)
    check_email(server, email, sender_name="Anna", note="Coffee on me!")
    check_sms(server, sms, sender_name="Anna")
    assert one(tracked_links(email["text"])) != one(tracked_links(sms["text"]))
    assert one(unsubscribe_links(email["text"])) != one(unsubscribe_links(sms["text"]))

    # Generation 2: Bob follows his link, sees who sent it and forwards to Carol.
    bob_forward = forward_of(server, one(tracked_links(email["text"])))
    carol_forward = follow_and_forward(server, email, "Anna", "Bob", "carol@example.com", expected_clicks=1)
    assert (carol_forward.generation, carol_forward.parent_id) == (2, bob_forward.id)

    # Generation 3: Carol does the same, to Dave.
    deliver()
    to_carol = by_recipient(server.wait_for_outbox(3), "carol@example.com")
    check_email(server, to_carol, sender_name="Bob")
    dave_forward = follow_and_forward(server, to_carol, "Bob", "Carol", "dave@example.com", expected_clicks=2)
    assert (dave_forward.generation, dave_forward.parent_id) == (3, carol_forward.id)

    deliver()
    check_outbox_page(server, server.wait_for_outbox(4))


def follow_and_forward(
    server: LiveServer, message: dict[str, Any], sent_by: str, name: str, friend: str, *, expected_clicks: int
) -> Forward:
    """A friend follows the tracked link in `message` with a fresh browser and forwards the offer on;
    the forward that wrote, read back from the database."""
    visitor = Visitor(server)
    landing = visitor.get(one(tracked_links(message["text"])))
    assert landing.status_code == 200
    assert landing.url == f"{server.url}/c/demo"
    assert f"{sent_by} sent you this offer." in visible_text(landing.text)
    assert counts(server.runtime.db)["clicks"] == expected_clicks

    sent = visitor.forward(landing, friend, sender_name=name)
    assert sent.status_code == 303
    with server.runtime.db.reading() as session:
        return session.scalars(select(Forward).where(Forward.recipient_contact == friend)).one()


def check_outbox_listing(messages: list[dict[str, Any]]) -> None:
    assert all(set(m) == OUTBOX_FIELDS for m in messages)
    ids = [m["id"] for m in messages]
    assert ids == sorted(ids, reverse=True), "newest first"
    created = [m["created_at"] for m in messages]
    assert created == sorted(created, reverse=True)


def check_email(server: LiveServer, email: dict[str, Any], *, sender_name: str, note: str | None = None) -> None:
    assert email["channel"] == "email"
    assert email["subject"] == f"{sender_name} thinks you'll like this: {OFFER}"
    assert f"{sender_name} sent you this offer from Koffie & Co" in email["text"]
    assert f"{sender_name} sent you this offer" in visible_text(email["html"])
    link = one(tracked_links(email["text"]))
    unsubscribe = one(unsubscribe_links(email["text"]))
    assert link.startswith(f"{server.url}/f/")
    assert unsubscribe.startswith(f"{server.url}/u/")
    assert f'href="{link}"' in email["html"] and f'href="{unsubscribe}"' in email["html"]
    assert email["headers"]["List-Unsubscribe"] == f"<{unsubscribe}>"
    assert email["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Each link is the recipient's own: it leads to the forward that was sent to them.
    assert forward_of(server, link).recipient_contact == email["to"]
    if note:
        assert f'{sender_name} wrote: "{note}"' in email["text"]
        assert note in visible_text(email["html"])


def check_sms(server: LiveServer, sms: dict[str, Any], *, sender_name: str) -> None:
    assert sms["channel"] == "sms"
    assert (sms["subject"], sms["html"]) == (None, None)
    assert sms["text"].startswith(f"{sender_name} sent you an offer from Koffie & Co: {OFFER}")
    assert one(tracked_links(sms["text"])).startswith(f"{server.url}/f/")
    assert one(unsubscribe_links(sms["text"])).startswith(f"{server.url}/u/")
    assert forward_of(server, one(tracked_links(sms["text"]))).recipient_contact == sms["to"]


def check_outbox_page(server: LiveServer, messages: list[dict[str, Any]]) -> None:
    page = Visitor(server).get("/dev/outbox")
    assert page.status_code == 200
    shown = [int(i) for i in re.findall(r'<article class="message" id="message-(\d+)">', page.text)]
    assert shown == [m["id"] for m in messages]
    text = visible_text(page.text)
    for message in messages:
        assert message["to"] in text
        assert one(tracked_links(message["text"])) in text
        if message["subject"]:
            assert message["subject"] in text


def by_recipient(messages: list[dict[str, Any]], to: str) -> dict[str, Any]:
    found = [m for m in messages if m["to"] == to]
    assert len(found) == 1, f"{len(found)} messages to {to}"
    return found[0]


def forward_of(server: LiveServer, tracked_link: str) -> Forward:
    """The forward a tracked link stands for."""
    public_id = server.runtime.tokens.verify(Purpose.FORWARD, tracked_link.rsplit("/f/", 1)[1])
    with server.runtime.db.reading() as session:
        return session.scalars(select(Forward).where(Forward.public_id == public_id)).one()
