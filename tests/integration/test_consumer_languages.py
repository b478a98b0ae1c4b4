"""A campaign's public pages in the consumer's language: the browser's Accept-Language among
the campaign's locales, the switch that overrides it, the form that keeps the language with the
forward (so the friend's landing and unsubscribe pages follow the sender), a language the
campaign does not offer refused, and phone numbers read in the campaign's regions."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine.models import Forward, Message
from engine.runtime import Runtime
from engine.tokens import Purpose
from tests.helpers import counts, forward_form, make_campaign, visible_text

DUTCH_FORM_HEADING = "Stuur dit aanbod naar een vriend"
FRENCH_FORM_HEADING = "Envoyez cette offre à un ami"
ENGLISH_FORM_HEADING = "Send this offer to a friend"


@pytest.fixture
def dutch(runtime: Runtime):  # type: ignore[no-untyped-def]
    """An Amsterdam campaign that speaks Dutch first, then English, and reads Belgian numbers too."""
    return make_campaign(runtime.db, "koffie", locales=["nl", "en"], phone_region="NL", extra_phone_regions=["BE"])


def _html_lang(html: str) -> str:
    match = re.search(r'<html lang="([^"]*)"', html)
    assert match, "no <html lang>"
    return match.group(1)


def _get(client: FlaskClient, path: str, language: str | None = None):  # type: ignore[no-untyped-def]
    headers = {"Accept-Language": language} if language else {}
    return client.get(path, headers=headers)


def test_accept_language_picks_among_the_campaigns_languages(app: Flask, dutch) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    response = _get(client, "/c/koffie", "nl-NL,nl;q=0.9,en;q=0.5")
    html = response.get_data(as_text=True)
    assert _html_lang(html) == "nl"
    assert response.headers["Content-Language"] == "nl"
    assert DUTCH_FORM_HEADING in html
    assert 'name="locale" type="hidden" value="nl"' in html

    english = _get(client, "/c/koffie", "en-GB")
    assert _html_lang(english.get_data(as_text=True)) == "en"
    assert ENGLISH_FORM_HEADING in english.get_data(as_text=True)

    # French is not one of its languages, and German neither: its first language, Dutch.
    for header in ("fr-BE", "de", None):
        page = _get(client, "/c/koffie", header).get_data(as_text=True)
        assert _html_lang(page) == "nl", header


def test_the_language_switch_overrides_the_browser(app: Flask, dutch) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    html = _get(client, "/c/koffie", "nl").get_data(as_text=True)
    # The switch names each language in that language, and links to the page in it.
    assert 'hreflang="en"' in html and ">English</a>" in html
    assert 'aria-current="true" lang="nl">Nederlands' in html

    switched = _get(client, "/c/koffie?lang=en", "nl")
    page = switched.get_data(as_text=True)
    assert _html_lang(page) == "en" and switched.headers["Content-Language"] == "en"
    assert ENGLISH_FORM_HEADING in page
    assert 'name="locale" type="hidden" value="en"' in page
    # A language the campaign does not speak is no switch: the browser's choice stands.
    assert _html_lang(_get(client, "/c/koffie?lang=fr", "nl").get_data(as_text=True)) == "nl"


def test_a_campaign_in_one_language_shows_no_switch(app: Flask, campaign) -> None:  # type: ignore[no-untyped-def]
    html = _get(app.test_client(), "/c/spring", "nl").get_data(as_text=True)
    assert _html_lang(html) == "en"  # the campaigns of before: English only
    assert 'class="languages"' not in html


def test_formal_dutch_says_u(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "bank", locales=["nl"], address_form="formal", phone_region="NL")
    html = _get(app.test_client(), "/c/bank", "nl").get_data(as_text=True)
    assert _html_lang(html) == "nl"
    assert "Uw naam" in html and "Je naam" not in html


def test_the_forward_keeps_the_senders_language_for_the_friends_pages(app: Flask, runtime: Runtime, dutch) -> None:  # type: ignore[no-untyped-def]
    sender = app.test_client()
    page = _get(sender, "/c/koffie?lang=en", "nl").get_data(as_text=True)
    posted = sender.post(
        "/c/koffie/forward",
        data=forward_form(page, friends=["bob@example.com", "06 12345678"], locale="en"),
        headers={"Accept-Language": "nl"},
    )
    assert posted.status_code == 303
    thanks = sender.get(posted.headers["Location"], headers={"Accept-Language": "nl"}).get_data(as_text=True)
    # The thanks page speaks the form's language, not the browser's.
    assert _html_lang(thanks) == "en" and "sending your 2 friends the offer" in thanks

    with runtime.db.reading() as session:
        forwards = session.scalars(select(Forward).order_by(Forward.id)).all()
        assert [f.locale for f in forwards] == ["en", "en"]
        message = session.scalars(select(Message).order_by(Message.id)).first()
        assert message is not None
        forward_id, message_id = forwards[0].public_id, message.public_id

    # The friend's browser asks for Dutch; the page they land on speaks the sender's English.
    friend = app.test_client()
    link = runtime.tokens.sign(Purpose.FORWARD, forward_id)
    followed = _get(friend, f"/f/{link}", "nl")
    assert followed.status_code == 303 and followed.headers["Location"].endswith("/c/koffie")
    landing = _get(friend, followed.headers["Location"], "nl").get_data(as_text=True)
    assert _html_lang(landing) == "en" and "Anna sent you this offer." in landing

    unsubscribe = _get(friend, f"/u/{runtime.tokens.sign(Purpose.UNSUBSCRIBE, message_id)}", "nl")
    assert _html_lang(unsubscribe.get_data(as_text=True)) == "en"
    assert "Why did I get this?" in unsubscribe.get_data(as_text=True)


def test_a_forward_in_dutch_keeps_dutch_and_the_unsubscribe_page_speaks_it(app: Flask, runtime: Runtime, dutch) -> None:  # type: ignore[no-untyped-def]
    sender = app.test_client()
    page = _get(sender, "/c/koffie", "nl").get_data(as_text=True)
    assert sender.post("/c/koffie/forward", data=forward_form(page, locale="nl")).status_code == 303
    with runtime.db.reading() as session:
        message = session.scalars(select(Message)).one()
        assert message.forward.locale == "nl"
        token = runtime.tokens.sign(Purpose.UNSUBSCRIBE, message.public_id)
    page = _get(app.test_client(), f"/u/{token}", "en").get_data(as_text=True)
    assert _html_lang(page) == "nl" and "Waarom kreeg ik dit?" in page
    done = app.test_client().post(f"/u/{token}", data={"scope": "friends"}).get_data(as_text=True)
    assert _html_lang(done) == "nl" and "Je bent afgemeld" in done


@pytest.mark.parametrize("value", ["fr", "de", "xx-evil", "<script>"])
def test_a_language_the_campaign_does_not_offer_is_a_form_error_and_nothing_is_stored(
    app: Flask, runtime: Runtime, dutch, value: str
) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = _get(client, "/c/koffie", "nl").get_data(as_text=True)
    before = counts(runtime.db)
    response = client.post(
        "/c/koffie/forward", data=forward_form(page, locale=value), headers={"Accept-Language": "nl"}
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Kies een van de talen waarin dit aanbod er is." in visible_text(html)
    assert _html_lang(html) == "nl"  # the browser's language, since the posted one is not offered
    assert counts(runtime.db) == before


def test_the_form_errors_speak_the_pages_language(app: Flask, dutch) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = _get(client, "/c/koffie", "nl").get_data(as_text=True)
    response = client.post(
        "/c/koffie/forward", data=forward_form(page, sender_name="", friends=["nobody@", "12"], locale="nl")
    )
    assert response.status_code == 422
    text = visible_text(response.get_data(as_text=True))
    assert "Vul je naam in, dan weten je vrienden van wie dit komt." in text
    assert "Vriend 1: nobody@ is geen geldig e-mailadres." in text
    assert "Vriend 2: 12 is geen telefoonnummer dat we kunnen lezen" in text
    assert "Enter" not in text and "not a valid" not in text


def test_unknown_and_ended_offers_answer_in_a_language_the_reader_reads(app: Flask, runtime: Runtime) -> None:
    client = app.test_client()
    missing = _get(client, "/c/nope", "fr")
    assert missing.status_code == 404 and missing.headers["Content-Language"] == "fr"
    assert "Il n\u2019y a pas d\u2019offre à cette adresse." in missing.get_data(as_text=True)
    posted = client.post("/c/nope/forward", data={"sender_name": "Anna"}, headers={"Accept-Language": "fr"})
    assert posted.status_code in (400, 404) and posted.headers["Content-Language"] == "fr"
    make_campaign(runtime.db, "over", locales=["nl"], status="ended")
    ended = _get(client, "/c/over", "en")
    assert ended.status_code == 410
    # The campaign speaks Dutch only: its pages do, errors included.
    assert "Dit aanbod is afgelopen." in ended.get_data(as_text=True)


PHONE_MATRIX = [
    # (campaign's regions, typed, E.164 or None for a form error)
    (("NL", "BE"), "06 12345678", "+31612345678"),
    (("NL", "BE"), "0612345678", "+31612345678"),
    (("NL", "BE"), "0470 12 34 56", "+32470123456"),
    (("NL", "BE"), "+32 470 12 34 56", "+32470123456"),
    (("NL", "BE"), "0032 470 12 34 56", "+32470123456"),
    (("NL",), "0470 12 34 56", None),
    (("BE", "NL"), "0470 12 34 56", "+32470123456"),
    (("BE", "NL"), "06 12345678", "+31612345678"),
    (("BE",), "0470 12 34 56", "+32470123456"),
    (("BE",), "+31 6 12345678", "+31612345678"),
    (("BE",), "06 12345678", None),
    (("NL", "BE"), "12345", None),
]


@pytest.mark.parametrize(("regions", "typed", "expected"), PHONE_MATRIX)
def test_phone_numbers_are_read_in_the_campaigns_regions(
    app: Flask, runtime: Runtime, regions: tuple[str, ...], typed: str, expected: str | None
) -> None:
    make_campaign(
        runtime.db, "bel", locales=["nl", "fr"], phone_region=regions[0], extra_phone_regions=list(regions[1:])
    )
    client = app.test_client()
    page = _get(client, "/c/bel", "nl").get_data(as_text=True)
    response = client.post("/c/bel/forward", data=forward_form(page, friends=[typed], locale="nl"))
    with runtime.db.reading() as session:
        stored = session.scalars(select(Forward.recipient_contact)).all()
    if expected is None:
        assert response.status_code == 422
        assert "geen telefoonnummer dat we kunnen lezen" in visible_text(response.get_data(as_text=True))
        assert stored == []
    else:
        assert response.status_code == 303, visible_text(response.get_data(as_text=True))
        assert stored == [expected]


def test_a_number_is_shown_back_in_the_campaigns_national_format(app: Flask, dutch) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = _get(client, "/c/koffie", "nl").get_data(as_text=True)
    # The name is missing: the form comes back, with the numbers as people here write them.
    response = client.post(
        "/c/koffie/forward", data=forward_form(page, sender_name="", friends=["+31612345678", "+32470123456"])
    )
    html = response.get_data(as_text=True)
    assert 'value="06 12345678"' in html
    assert 'value="+32 470 12 34 56"' in html


def test_the_thanks_and_copy_link_pages_follow_the_language(app: Flask, dutch) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = _get(client, "/c/koffie?lang=en", "nl").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    shared = client.post("/c/koffie/share", data={"csrf_token": token.group(1), "channel": "link", "locale": "en"})
    html = shared.get_data(as_text=True)
    assert _html_lang(html) == "en" and "Your link to share" in html
    shared_nl = client.post("/c/koffie/share", data={"csrf_token": token.group(1), "channel": "link", "locale": "nl"})
    assert "Je link om te delen" in shared_nl.get_data(as_text=True)


def test_the_landing_template_renders_in_the_language_chosen_for_the_visitor(app: Flask, runtime: Runtime) -> None:
    from engine.models import Campaign
    from engine.services.templates import add_template_versions

    make_campaign(runtime.db, "tweetalig", locales=["nl", "en"])
    with runtime.db.transaction() as session:
        campaign = session.scalars(select(Campaign).where(Campaign.slug == "tweetalig")).one()
        add_template_versions(session, campaign, {"landing.html": '<p class="speaks">{{ locale }}</p>'})
    client = app.test_client()
    # Each language renders (and is kept) apart: the second view in English is not the Dutch one.
    for path, expected in [("/c/tweetalig", "nl"), ("/c/tweetalig?lang=en", "en"), ("/c/tweetalig", "nl")]:
        assert f'<p class="speaks">{expected}</p>' in _get(client, path, "nl").get_data(as_text=True)
