"""Keywords sent to our number on WhatsApp, through the same signed Twilio hook as texts: they
act on WhatsApp alone (its own suppression scope), and the number is the same person as on texts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.transports.memory import MemoryTransport
from tests.integration.test_opt_out_paths import BOB_PHONE, World, build_world

BOB_WHATSAPP = f"whatsapp:{BOB_PHONE}"


@pytest.fixture
def world(database_url: str, settings_for) -> Iterator[World]:  # type: ignore[no-untyped-def]
    built = build_world(database_url, settings_for, MemoryTransport())
    yield built
    built.runtime.db.dispose()


@pytest.mark.parametrize(
    ("word", "confirmation"),
    [
        # Twilio confirms no keyword on WhatsApp: we do, in the word's language when only one
        # language has it (Bob was never written to), else in English.
        ("STOP", "You are unsubscribed: no more messages from this number. Reply START to undo."),
        ("stoppen", "Je bent afgemeld: je krijgt geen berichten meer van dit nummer."),
        ("Afmelden", "Je bent afgemeld"),
    ],
)
def test_stop_on_whatsapp_suppresses_whatsapp_and_leaves_texts_alone(
    world: World, word: str, confirmation: str
) -> None:
    response = world.text_us(word, sender=BOB_WHATSAPP)

    assert response.status_code == 200
    assert f"<Message>{confirmation}" in response.text
    [suppression] = world.suppressions()
    # One person on both channels: the number hashes as it does for texts.
    assert (suppression.contact_hash, suppression.channel) == (world.hash_of(BOB_PHONE), "whatsapp")
    assert (suppression.scope, suppression.source) == ("global", "stop")
    [entry] = world.log()
    assert (entry.action, entry.source, entry.channel) == ("opt-out", "stop", "whatsapp")
    # Texts to Bob still go.
    assert world.send("06 12345678").status == "sent"


def test_stop_by_text_leaves_whatsapp_consent_alone(world: World) -> None:
    world.text_us("START", sender=BOB_WHATSAPP, sid="SM" + "a" * 32)
    world.text_us("STOP", sid="SM" + "b" * 32)  # a text, not WhatsApp

    [consent] = world.consents()
    assert (consent.channel, consent.revoked_at) == ("whatsapp", None)
    assert [s.channel for s in world.suppressions()] == ["sms"]


def test_start_on_whatsapp_records_whatsapp_consent_with_the_message_as_evidence(world: World) -> None:
    world.text_us("STOP", sender=BOB_WHATSAPP, sid="SM" + "c" * 32)

    response = world.text_us("aanmelden", sender=BOB_WHATSAPP, sid="SM" + "d" * 32)

    assert (
        "<Message>Je krijgt weer berichten van dit nummer." in response.text
    )  # confirmed in Dutch, the word's language
    assert world.suppressions() == []  # the WhatsApp STOP is lifted
    [consent] = world.consents()
    assert (consent.contact_hash, consent.channel, consent.source, consent.campaign_id) == (
        world.hash_of(BOB_PHONE),
        "whatsapp",
        "keyword",
        None,
    )
    assert consent.evidence == {"provider": "twilio", "keyword": "AANMELDEN", "message_sid": "SM" + "d" * 32}
    assert [(e.action, e.channel) for e in world.log()] == [("opt-out", "whatsapp"), ("opt-in", "whatsapp")]


@pytest.mark.parametrize("word", ["HELP", "info"])
def test_help_on_whatsapp_is_answered(world: World, word: str) -> None:
    response = world.text_us(word, sender=BOB_WHATSAPP)

    assert response.status_code == 200
    assert world.runtime.settings.sms_help_reply in response.text
    assert world.suppressions() == [] and world.consents() == []
