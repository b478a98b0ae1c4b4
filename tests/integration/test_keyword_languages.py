"""Replies to texts sent to our number, in the language of the campaign that texted it last:
HELP, and the confirmations of the opt-out and opt-in words Twilio does not confirm itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import update

from engine.models import Forward
from engine.sms import measure
from engine.transports.memory import MemoryTransport
from tests.helpers import submission
from tests.integration.test_opt_out_paths import EMPTY_TWIML, World, build_world


@pytest.fixture
def world(database_url: str, settings_for) -> Iterator[World]:  # type: ignore[no-untyped-def]
    built = build_world(database_url, settings_for, MemoryTransport())
    yield built
    built.runtime.db.dispose()


def texted_in(world: World, locale: str | None, **campaign: object) -> None:
    """Bob gets a text of a campaign, his sender having used `locale`."""
    slug = world.campaign(**campaign)
    receipt = world.runtime.forwarding.submit(slug, submission("06 12345678"))
    with world.runtime.db.transaction() as session:
        session.execute(update(Forward).where(Forward.id.in_(receipt.forward_ids)).values(locale=locale))
    world.runtime.delivery.deliver(receipt.message_ids)


def reply(response) -> str:  # type: ignore[no-untyped-def]
    text = response.text
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Message>'), text
    return text.split("<Message>", 1)[1].split("</Message>", 1)[0]


@pytest.mark.parametrize(
    ("locale", "address_form", "expected"),
    [
        ("nl", "informal", "Acme: hulp via help@acme.example. Stuur STOP om je af te melden."),
        ("nl", "formal", "Acme: hulp via help@acme.example. Stuur STOP om u af te melden."),
        ("fr", "informal", "Acme : pour toute aide, help@acme.example. Répondez STOP pour vous désabonner."),
        ("en", "informal", "Acme: help at help@acme.example. Reply STOP to opt out."),
        (None, "informal", "Acme: hulp via help@acme.example. Stuur STOP om je af te melden."),  # the default: nl
    ],
)
def test_help_speaks_the_language_of_the_text_the_number_got_last(
    world: World, locale: str | None, address_form: str, expected: str
) -> None:
    texted_in(world, locale, locales=["nl", "en", "fr"], address_form=address_form)

    answer = reply(world.text_us("HELP"))

    assert answer == expected
    assert measure(answer).encoding == "GSM-7"


def test_the_campaign_that_texted_last_decides(world: World) -> None:
    texted_in(world, "fr", locales=["fr"], brand_name="Café Lune")
    texted_in(world, "nl", locales=["nl"], brand_name="Koffie & Co")

    assert reply(world.text_us("AIDE")).startswith("Koffie &amp; Co: hulp via")


def test_a_dutch_opt_out_word_is_confirmed_in_the_campaigns_language(world: World) -> None:
    texted_in(world, "nl", locales=["nl", "en"])

    answer = reply(world.text_us("Uitschrijven"))

    assert answer == (
        "Acme: je bent afgemeld en krijgt geen berichten meer van dit nummer. Stuur START om je weer aan te melden."
    )
    assert [s.source for s in world.suppressions()] == ["stop"]
    assert world.send("06 12345678").status == "suppressed"


def test_a_french_opt_out_and_opt_in_are_confirmed_in_french(world: World) -> None:
    texted_in(world, "fr", locales=["en", "fr"])

    stopped = reply(world.text_us("ARRÊT", sid="SM" + "a" * 32))
    assert stopped.startswith("Acme : désabonnement confirmé")
    assert measure(stopped).encoding == "GSM-7"

    started = reply(world.text_us("abonner", sid="SM" + "b" * 32))
    assert started.startswith("Acme : vous recevrez de nouveau nos messages. Répondez AIDE pour obtenir de l")
    assert world.suppressions() == []


def test_the_words_twilio_confirms_get_no_second_confirmation(world: World) -> None:
    texted_in(world, "nl", locales=["nl"])

    assert world.text_us("STOP", sid="SM" + "c" * 32).text == EMPTY_TWIML
    assert world.text_us("START", sid="SM" + "d" * 32).text == EMPTY_TWIML
    assert world.text_us("stoppen", OptOutType="STOP", sid="SM" + "e" * 32).text == EMPTY_TWIML


def test_a_number_never_texted_is_answered_in_the_words_language(world: World) -> None:
    assert reply(world.text_us("STOPPEN", sender="+31687654321")).startswith("Je bent afgemeld")
    assert reply(world.text_us("désabonner", sender="+31687654322")).startswith("Désabonnement confirmé")
