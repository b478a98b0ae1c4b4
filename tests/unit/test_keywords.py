"""Reading texts to our number: opt-out, opt-in and help keywords, in English, Dutch and French."""

from __future__ import annotations

import pytest

from config import ConfigError, load_settings
from engine.keywords import Keyword, KeywordBook, KeywordKind

BOOK = KeywordBook.build()

OUT, IN, HELP = KeywordKind.OPT_OUT, KeywordKind.OPT_IN, KeywordKind.HELP


@pytest.mark.parametrize(
    "word", ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "AFMELDEN", "UITSCHRIJVEN"]
)
def test_every_opt_out_word_stops(word: str) -> None:
    assert BOOK.classify(word) == Keyword(OUT, word)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("  stop  ", Keyword(OUT, "STOP")),
        ("Stop!", Keyword(OUT, "STOP")),
        ("Afmelden.", Keyword(OUT, "AFMELDEN")),
        # An opt-out is honoured however it is phrased.
        ("stop texting me", Keyword(OUT, "STOP")),
        ("START", Keyword(IN, "START")),
        ("unstop", Keyword(IN, "UNSTOP")),
        ("Yes", Keyword(IN, "YES")),
        ("aanmelden", Keyword(IN, "AANMELDEN")),
        ("help", Keyword(HELP, "HELP")),
        ("Info?", Keyword(HELP, "INFO")),
    ],
)
def test_texts_are_read_trimmed_and_case_folded(body: str, expected: Keyword) -> None:
    assert BOOK.classify(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        "",
        "   ",
        "thanks!",
        "Yes, stop texting me",  # consent must be unambiguous: not an opt-in (STOP is not first either)
        "yes please",
        "help me find the shop",
        "startled",
        "non-stop deals?",
    ],
)
def test_ordinary_replies_are_no_keyword(body: str) -> None:
    assert BOOK.classify(body) is None


@pytest.mark.parametrize(
    ("body", "opt_out_type", "kind"),
    [
        ("Please no more", "STOP", OUT),  # Twilio matched a keyword of its own list
        ("stop", "START", IN),  # Twilio has the last word: it has already acted on it
        ("start", "stop", OUT),
        ("huh", "HELP", HELP),
    ],
)
def test_twilios_opt_out_type_wins_over_the_text(body: str, opt_out_type: str, kind: KeywordKind) -> None:
    keyword = BOOK.classify(body, opt_out_type)
    assert keyword is not None
    assert keyword.kind is kind


def test_an_unknown_opt_out_type_falls_back_to_the_text() -> None:
    assert BOOK.classify("stop", "SOMETHING-NEW") == Keyword(OUT, "STOP")
    assert BOOK.classify("hello", "") is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOPPEN", Keyword(OUT, "STOPPEN")),
        ("Uitschrijven", Keyword(OUT, "UITSCHRIJVEN")),
        ("ARRÊT", Keyword(OUT, "ARRET")),
        ("arret", Keyword(OUT, "ARRET")),
        ("Arrêter svp", Keyword(OUT, "ARRETER")),
        ("désabonner", Keyword(OUT, "DESABONNER")),
        ("DESINSCRIRE", Keyword(OUT, "DESINSCRIRE")),
        ("aide", Keyword(HELP, "AIDE")),
        ("Abonner", Keyword(IN, "ABONNER")),
    ],
)
def test_dutch_and_french_words_are_read_with_or_without_accents(body: str, expected: Keyword) -> None:
    assert BOOK.classify(body) == expected


@pytest.mark.parametrize(
    ("body", "opt_out_type", "provider_confirms"),
    [
        ("STOP", None, True),  # on Twilio's own list: it confirms (and blocks) by itself
        ("Unsubscribe", None, True),
        ("start", None, True),
        ("whatever", "STOP", True),  # Twilio matched it
        ("STOPPEN", None, False),  # only we know these words: the confirmation is ours to send
        ("arrêt", None, False),
        ("AANMELDEN", None, False),
    ],
)
def test_whether_twilio_confirms_a_keyword_itself(body: str, opt_out_type: str | None, provider_confirms: bool) -> None:
    keyword = BOOK.classify(body, opt_out_type)
    assert keyword is not None
    assert keyword.provider_confirms is provider_confirms


def test_languages_can_be_chosen_and_words_added() -> None:
    english = KeywordBook.build(["en"], extra_opt_out=["halt"], extra_opt_in=["Subscribe"], extra_help=["SUPPORT"])
    assert english.classify("afmelden") is None
    assert english.classify("HALT") == Keyword(OUT, "HALT")
    assert english.classify("subscribe") == Keyword(IN, "SUBSCRIBE")
    assert english.classify("support") == Keyword(HELP, "SUPPORT")


@pytest.mark.parametrize(
    "build",
    [
        lambda: KeywordBook.build(extra_opt_in=["stop"]),
        lambda: KeywordBook.build(extra_help=["Start"]),
        lambda: KeywordBook.build(["de"]),
        lambda: KeywordBook(opt_out=frozenset({"stop now"}), opt_in=frozenset(), help=frozenset()),
    ],
    ids=["opt-in-clash", "help-clash", "unknown-language", "two-words"],
)
def test_a_book_that_would_be_ambiguous_is_refused(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        build()


BASE = {"FLUISTER_ENV": "test", "SECRET_KEYS": "s" * 20, "CONTACT_HASH_KEY": "k" * 20}


def test_settings_read_extra_keywords_and_languages(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(
        {
            **BASE,
            "SMS_KEYWORD_LANGUAGES": "EN",
            "SMS_OPT_OUT_KEYWORDS": "halt, arrêt",
            "SMS_OPT_IN_KEYWORDS": "subscribe",
            "SMS_HELP_KEYWORDS": "",
            "SMS_HELP_REPLY": "Acme offers. Help: help@acme.example. Reply STOP to stop.",
        },
        dotenv_path=tmp_path / "none.env",
    )
    assert settings.sms_keyword_languages == ("en",)
    assert settings.sms_opt_out_keywords == ("HALT", "ARRÊT")
    assert settings.sms_opt_in_keywords == ("SUBSCRIBE",)
    assert settings.sms_help_keywords == ()
    assert settings.sms_help_reply.startswith("Acme offers")


def test_settings_default_to_english_dutch_and_french(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(BASE, dotenv_path=tmp_path / "none.env")
    assert settings.sms_keyword_languages == ("en", "nl", "fr")
    assert "STOP" in settings.sms_help_reply


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("SMS_OPT_IN_KEYWORDS", "STOP", "cannot mean two things"),
        ("SMS_OPT_OUT_KEYWORDS", "stop now", "single words"),
        ("SMS_HELP_KEYWORDS", "he<lp", "single words"),
        ("SMS_KEYWORD_LANGUAGES", "en,xx", "no keywords for language"),
        ("SMS_HELP_REPLY", "x" * 161, "one text"),
    ],
)
def test_settings_refuse_bad_keywords_with_a_reason(tmp_path, name: str, value: str, says: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=says):
        load_settings({**BASE, name: value}, dotenv_path=tmp_path / "none.env")
