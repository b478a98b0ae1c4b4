"""The built-in messages in every language: nothing left untranslated (the pseudo-locale), the
text message within GSM-7 and its segments, the catalogs' own words where a friend reads them,
and the replies to keywords."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from flask import Flask

from engine.i18n import PSEUDO_CLOSE, PSEUDO_OPEN, PseudoTranslations, init_i18n
from engine.keywords import Keyword, KeywordKind
from engine.rendering import TemplateRenderer, default_templates, translation_values
from engine.services.composer import catalogue
from engine.services.keyword_replies import keyword_reply
from engine.services.provider_events import TextedBy
from engine.sms import measure

# Values without a letter of their own, so that every letter left in a message is its template's.
VALUES = {
    "campaign_name": "1",
    "offer_title": "2",
    "offer_description": "3",
    "brand_name": "4",
    "postal_address": "5",
    "support_contact": "6",
    "sender_name": "7",
    "note": "8",
    "link": "9",
    "unsubscribe_link": "0",
    "coupon_code": "11",
    # No logo: the brand's name shows (a logo's alt text is the brand name too).
    "logo_url": "",
    "logo_width": "",
    "logo_height": "",
}
RENDERER = TemplateRenderer()


class _Text(HTMLParser):
    """The words a reader sees: a <style> sheet's rules are not text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = self._in_style or tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = self._in_style and tag != "style"

    def handle_data(self, data: str) -> None:
        if not self._in_style:
            self.parts.append(data)


def _untranslated(text: str) -> list[str]:
    """The words outside every ⟦…⟧ of the pseudo-locale."""
    outside = re.sub(re.escape(PSEUDO_OPEN) + ".*?" + re.escape(PSEUDO_CLOSE), " ", text, flags=re.S)
    return re.findall(r"[^\W\d_]+", outside)


def _html_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(parser.parts)


@pytest.mark.parametrize(("note", "code"), [("8", "11"), ("", "")], ids=["with-note-and-code", "bare"])
def test_every_default_message_renders_every_word_through_the_catalog(note: str, code: str) -> None:
    context = {**VALUES, "note": note, "coupon_code": code, **translation_values(PseudoTranslations())}
    email = RENDERER.render_email(default_templates(), context)
    sms = RENDERER.render_sms(default_templates(), context, segment_limit=10, smart=False)

    assert _untranslated(email.subject) == []
    assert _untranslated(_html_text(email.html)) == []
    assert _untranslated(email.text) == []
    assert _untranslated(sms) == []
    # And the pseudo-locale did reach every part (a part rendered without it would be plain).
    assert all(PSEUDO_OPEN in part for part in (email.subject, email.html, email.text, sms))


LANGUAGES = ["en", "nl", "nl@formal", "fr"]
SAMPLE = {
    **VALUES,
    "offer_title": "10% korting",
    "brand_name": "Koffie & Co",
    "sender_name": "Anna",
    "note": "",
    "coupon_code": "SPRING-7K3M",
    "link": "https://o.example/f/abc",
    "unsubscribe_link": "https://o.example/u/def",
}


@pytest.mark.parametrize("catalog", LANGUAGES)
def test_the_default_text_keeps_to_gsm7_and_to_the_english_number_of_segments(catalog: str) -> None:
    english = RENDERER.render_sms(
        default_templates(), {**SAMPLE, **translation_values(catalogue("en"))}, segment_limit=3
    )
    text = RENDERER.render_sms(
        default_templates(), {**SAMPLE, **translation_values(catalogue(catalog))}, segment_limit=3
    )

    assert measure(text).encoding == "GSM-7", text
    assert measure(text).segments <= max(2, measure(english).segments), text
    assert "STOP" in text


@pytest.mark.parametrize(
    ("catalog", "greeting", "button", "opt_out"),
    [
        ("en", "Hi,", "See the offer", "Reply STOP to opt out"),
        ("nl", "Hoi,", "Bekijk het aanbod", "Stuur STOP om je af te melden"),
        ("nl@formal", "Goedendag,", "Bekijk het aanbod", "Stuur STOP om u af te melden"),
        ("fr", "Bonjour,", "Voir l'offre", "Répondez STOP pour vous désabonner"),
    ],
)
def test_each_language_speaks_its_own_words(catalog: str, greeting: str, button: str, opt_out: str) -> None:
    context = {**SAMPLE, **translation_values(catalogue(catalog))}
    email = RENDERER.render_email(default_templates(), context)
    sms = RENDERER.render_sms(default_templates(), context, segment_limit=3)

    assert email.text.startswith(greeting)
    assert button in _html_text(email.html)
    assert opt_out in sms


@pytest.mark.parametrize(
    ("word", "kind"),
    [("HELP", KeywordKind.HELP), ("STOPPEN", KeywordKind.OPT_OUT), ("AANMELDEN", KeywordKind.OPT_IN)],
)
@pytest.mark.parametrize("texted", [True, False], ids=["texted", "never-texted"])
def test_every_keyword_reply_goes_through_the_catalog(word: str, kind: KeywordKind, texted: bool) -> None:
    app = Flask(__name__)
    init_i18n(app, pseudo_locale=True)
    by = TextedBy(1, 1, "4", "6", locale="nl") if texted else None
    with app.app_context():
        answer = keyword_reply(Keyword(kind, word), by, help_fallback="The operator's own line")

    assert answer is not None
    if by is None and kind is KeywordKind.HELP:
        assert answer == "The operator's own line"  # SMS_HELP_REPLY: the operator's words, as set
    else:
        assert _untranslated(answer) == []
