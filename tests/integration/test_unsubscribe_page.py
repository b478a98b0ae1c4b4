"""The unsubscribe page as a friend meets it: the brand's words, the same scope on the button and
in the confirmation, no second ask on a second visit, and an undo for a slip of the finger."""

from __future__ import annotations

import itertools
import re
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine.models import Message, OptOutEntry, Suppression, SuppressionScope, SuppressionSource
from engine.runtime import Runtime
from engine.services.suppression import suppress_contact
from engine.tokens import Purpose
from engine.transports.memory import MemoryTransport
from tests.helpers import count, make_campaign, submission

BOB = "bob@example.com"
_OTHER_CAMPAIGNS = itertools.count()


def sent_token(runtime: Runtime) -> tuple[str, Message]:
    first = runtime.forwarding.submit("spring", submission(BOB))
    runtime.delivery.deliver(first.message_ids)
    with runtime.db.reading() as session:
        message = session.get(Message, first.message_ids[0])
        session.expunge(message)
    return runtime.tokens.sign(Purpose.UNSUBSCRIBE, message.public_id), message


def undo_field(page: str) -> str:
    found = re.search(r'name="undo" value="([^"]+)"', page)
    assert found, "no undo on the page"
    return found.group(1)


def buttons(page: str) -> list[str]:
    return [re.sub(r"\s+", " ", b).strip() for b in re.findall(r"<button[^>]*>(.*?)</button>", page, re.S)]


def bob_gets_the_next_forward(runtime: Runtime, transport: MemoryTransport) -> bool:
    """A forward of a campaign Bob never heard of: only an opt-out through friends can stop it."""
    slug = f"other-{next(_OTHER_CAMPAIGNS)}"
    make_campaign(runtime.db, slug)
    before = len(transport.emails)
    runtime.delivery.deliver(runtime.forwarding.submit(slug, submission(BOB, sender_name="Dan")).message_ids)
    return len(transport.emails) > before


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_the_page_speaks_of_the_offer_and_the_brand_never_the_campaigns_internal_name(
    client: FlaskClient, runtime: Runtime, campaign
) -> None:  # type: ignore[no-untyped-def]
    token, _ = sent_token(runtime)
    page = client.get(f"/u/{token}").text
    assert buttons(page) == ["Never send me offers through friends", 'Only stop "Ten percent off" from Acme']
    assert campaign.name not in page


def test_the_confirmation_names_the_scope_of_the_button_pressed_and_a_second_visit_does_not_ask_again(
    client: FlaskClient, runtime: Runtime, campaign
) -> None:  # type: ignore[no-untyped-def]
    token, _ = sent_token(runtime)
    done = client.post(f"/u/{token}", data={"scope": "campaign"}).text
    assert 'You won\'t get "Ten percent off" from Acme through friends again.' in done.replace("&#34;", '"')
    # The wider choice is still offered, the one just made is not.
    assert buttons(done) == ["Undo", "Never send me offers through friends"]

    again = client.get(f"/u/{token}").text
    assert "You're unsubscribed" in again
    assert buttons(again) == ["Never send me offers through friends"]

    everyone = client.post(f"/u/{token}", data={"scope": "friends"}).text
    assert "You won't get offers through friends again, from any brand, at this email address." in everyone
    assert buttons(client.get(f"/u/{token}").text) == []


def test_undo_takes_the_opt_out_back_and_the_log_shows_both(
    client: FlaskClient, runtime: Runtime, campaign, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    token, message = sent_token(runtime)
    done = client.post(f"/u/{token}", data={"scope": "friends"}).text
    assert not bob_gets_the_next_forward(runtime, transport)

    undone = client.post(f"/u/{token}/undo", data={"undo": undo_field(done)})
    assert undone.status_code == 200
    assert "Your unsubscribe is undone" in undone.text
    assert buttons(undone.text)[0] == "Never send me offers through friends"  # they may still choose
    assert count(runtime.db, Suppression) == 0
    with runtime.db.reading() as session:
        log = [(e.action, e.source, e.scope, e.message_id) for e in session.scalars(select(OptOutEntry))]
    assert log == [("opt-out", "link", "friends", message.id), ("opt-in", "undo", "friends", message.id)]
    assert bob_gets_the_next_forward(runtime, transport)

    # Pressed twice (a reload): nothing more to take back, nothing more logged.
    assert client.post(f"/u/{token}/undo", data={"undo": undo_field(done)}).status_code == 200
    assert count(runtime.db, OptOutEntry) == 2


def test_undo_is_refused_after_fifteen_minutes_and_the_opt_out_stands(
    client: FlaskClient, runtime: Runtime, campaign, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    token, message = sent_token(runtime)
    client.post(f"/u/{token}", data={"scope": "friends"})
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 16 * 60)
    late = runtime.tokens.sign(Purpose.UNSUBSCRIBE_UNDO, f"{message.public_id}:friends")
    monkeypatch.undo()

    response = client.post(f"/u/{token}/undo", data={"undo": late})
    assert response.status_code == 410
    assert "still unsubscribed" in response.text
    assert count(runtime.db, Suppression) == 1


def test_an_undo_cannot_lift_an_opt_out_made_another_way_or_for_another_message(
    client: FlaskClient, runtime: Runtime, campaign, transport: MemoryTransport, clock
) -> None:  # type: ignore[no-untyped-def]
    token, message = sent_token(runtime)
    # Bob had already reported a message as spam: that opt-out stands whatever the page does.
    forward_hash = _recipient_hash(runtime, message.id)
    with runtime.db.transaction() as session:
        suppress_contact(
            session, forward_hash, "email", SuppressionScope.FRIENDS, SuppressionSource.SPAM_REPORT, now=clock.now()
        )
    done = client.post(f"/u/{token}", data={"scope": "friends"}).text
    assert client.post(f"/u/{token}/undo", data={"undo": undo_field(done)}).status_code == 200
    assert count(runtime.db, Suppression) == 1
    assert not bob_gets_the_next_forward(runtime, transport)

    # An undo signed for another message is no undo for this one.
    foreign = runtime.tokens.sign(Purpose.UNSUBSCRIBE_UNDO, "someone-else:friends")
    assert client.post(f"/u/{token}/undo", data={"undo": foreign}).status_code == 404
    assert client.post(f"/u/{token}/undo", data={"undo": "forged"}).status_code == 404
    assert client.post(f"/u/{token}/undo").status_code == 404
    assert count(runtime.db, Suppression) == 1


def test_a_one_click_opt_out_offers_no_undo(client: FlaskClient, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    token, _ = sent_token(runtime)
    page = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).text
    assert "You're unsubscribed" in page
    assert 'name="undo"' not in page


def _recipient_hash(runtime: Runtime, message_id: int) -> str:
    with runtime.db.reading() as session:
        return session.get(Message, message_id).forward.recipient_contact_hash
