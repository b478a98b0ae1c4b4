"""The send-to-friend form of a campaign that enables WhatsApp: the sender picks how mobile
numbers get the offer; a friend without WhatsApp consent is held, and the sender is answered
exactly as for one with it."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import select

from engine import create_app
from engine.clock import FixedClock
from engine.models import Forward, Message
from engine.runtime import Runtime
from engine.services.consents import ConsentImporter
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import forward_form, make_campaign, runtime_of, visible_text

ANNA = "+31612345678"
BOB = "+31687654321"
TEMPLATE = {
    "whatsapp": {
        "content_sid": "HX" + "0123456789abcdef" * 2,
        "body": "{{1}} sent you an offer: {{2}}",
        "variables": {"1": "sender_name", "2": "link"},
    }
}


@pytest.fixture
def app(database_url: str, settings_for, transport: MemoryTransport, clock: FixedClock) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    transports = Transports(email=transport, sms=transport, whatsapp=transport)
    application = create_app(
        settings_for(database_url, whatsapp_transport="outbox"), transports=transports, clock=clock
    )
    yield application
    runtime_of(application).db.dispose()


def campaign(runtime: Runtime, slug: str, channels: list[str], policy: str = "us") -> str:
    make_campaign(
        runtime.db, slug, channels=channels, policy_name=policy, policy_settings={}, channel_settings=TEMPLATE
    )
    return slug


def give_whatsapp_consent(runtime: Runtime, number: str) -> None:
    importer = ConsentImporter(runtime.db, runtime.hasher, "NL", clock=runtime.clock)
    csv = f"contact,evidence\n{number},ticked the WhatsApp box at checkout\n".encode()
    assert importer.import_csv(io.BytesIO(csv), "whatsapp").imported == 1


def choices(page: str) -> list[tuple[str, bool]]:
    return [
        (re.search(r'value="([^"]*)"', tag).group(1), " checked" in tag)  # type: ignore[union-attr]
        for tag in re.findall(r'<input type="radio" name="by"[^>]*>', page)
    ]


def test_the_sender_picks_text_or_whatsapp_for_mobile_numbers(app: Flask, runtime: Runtime) -> None:
    slug = campaign(runtime, "both", ["email", "sms", "whatsapp"])
    page = app.test_client().get(f"/c/{slug}").text

    assert choices(page) == [("sms", True), ("whatsapp", False)]
    assert "Send to mobile numbers as a text message a WhatsApp message" in visible_text(page)
    assert "an email address or a mobile number each" in visible_text(page)


def test_a_campaign_without_whatsapp_offers_no_choice(app: Flask, runtime: Runtime) -> None:
    slug = campaign(runtime, "texts", ["email", "sms"])
    page = app.test_client().get(f"/c/{slug}").text
    assert choices(page) == [] and 'name="by"' not in page


@pytest.mark.parametrize("policy", ["eu-strict", "share-only"])
def test_policies_that_never_send_whatsapp_offer_no_choice(app: Flask, runtime: Runtime, policy: str) -> None:
    slug = campaign(runtime, "strict", ["email", "sms", "whatsapp"], policy)
    assert 'name="by"' not in app.test_client().get(f"/c/{slug}").text


def test_whatsapp_goes_to_the_consented_friend_and_the_other_is_held_quietly(
    app: Flask, runtime: Runtime, transport: MemoryTransport
) -> None:
    slug = campaign(runtime, "both", ["email", "sms", "whatsapp"])
    give_whatsapp_consent(runtime, ANNA)
    client = app.test_client()

    answers = []
    for friend in (ANNA, BOB):
        form = forward_form(client.get(f"/c/{slug}").text, friends=[friend], by="whatsapp")
        answers.append(client.post(f"/c/{slug}/forward", data=form))
    runtime.queue.drain()

    # The sender cannot tell which friend had consented.
    assert [(a.status_code, a.headers["Location"]) for a in answers] == [(303, answers[0].headers["Location"])] * 2
    assert [w.to for w in transport.whatsapp] == [ANNA]
    assert transport.sms == []
    with runtime.db.reading() as session:
        rows = session.execute(select(Forward.channel, Message.status).join(Message).order_by(Forward.id)).all()
    assert [tuple(row) for row in rows] == [("whatsapp", "sent"), ("whatsapp", "suppressed")]


def test_a_whatsapp_only_campaign_sends_numbers_by_whatsapp(
    app: Flask, runtime: Runtime, transport: MemoryTransport
) -> None:
    slug = campaign(runtime, "wa", ["whatsapp"])
    give_whatsapp_consent(runtime, ANNA)
    client = app.test_client()
    page = client.get(f"/c/{slug}").text
    assert "Mobile numbers get it as a WhatsApp message" in visible_text(page)
    assert "a mobile number each" in visible_text(page)

    form = forward_form(page, friends=[ANNA], by="whatsapp")
    assert client.post(f"/c/{slug}/forward", data=form).status_code == 303
    runtime.queue.drain()

    assert [w.to for w in transport.whatsapp] == [ANNA]


def test_a_forged_choice_is_refused(app: Flask, runtime: Runtime) -> None:
    slug = campaign(runtime, "both", ["email", "sms", "whatsapp"])
    client = app.test_client()
    form = forward_form(client.get(f"/c/{slug}").text, friends=[ANNA], by="carrier-pigeon")
    answer = client.post(f"/c/{slug}/forward", data=form)
    assert answer.status_code == 422
    assert "Choose how your friends get the offer." in visible_text(answer.text)


def test_the_command_line_imports_whatsapp_consents_with_their_evidence(app: Flask, runtime: Runtime, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from engine.models import Consent

    consents = tmp_path / "whatsapp.csv"
    consents.write_text(f"contact,evidence\n{ANNA},double opt-in on 2026-11-02\nbob@example.com,\n")

    result = app.test_cli_runner().invoke(
        args=["consents", "import", str(consents), "--channel", "whatsapp", "--note", "signup form"]
    )

    # An address is no WhatsApp contact: refused, and said so (status 1, as for any refused row).
    assert result.exit_code == 1, result.output
    assert "2 rows: 1 consents recorded" in result.output
    assert "line 3: not a phone number" in result.output
    with runtime.db.reading() as session:
        [consent] = session.scalars(select(Consent)).all()
    assert (consent.channel, consent.source) == ("whatsapp", "import")
    assert consent.evidence == {"imported": "signup form", "evidence": "double opt-in on 2026-11-02"}
