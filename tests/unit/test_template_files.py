"""Template file names per language, and which file a message in a language renders."""

from __future__ import annotations

import pytest

from engine.template_files import (
    BUILT_IN,
    CAMPAIGN_DEFAULT,
    CAMPAIGN_LOCALE,
    TemplateFile,
    TemplateFileNameError,
    TemplateName,
    resolve,
)

KNOWN = ("en", "nl", "fr")


@pytest.mark.parametrize(
    ("name", "template", "locale"),
    [
        ("email.html", TemplateName.EMAIL_HTML, None),
        ("email.nl.html", TemplateName.EMAIL_HTML, "nl"),
        ("sms.fr.txt", TemplateName.SMS, "fr"),
        ("subject.EN.txt", TemplateName.SUBJECT, "en"),
        ("landing.nl.html", TemplateName.LANDING, "nl"),
    ],
)
def test_a_file_name_says_its_template_and_language(name: str, template: TemplateName, locale: str | None) -> None:
    parsed = TemplateFile.parse(name, KNOWN)
    assert (parsed.template, parsed.locale) == (template, locale)
    assert parsed.file_name == name.replace("EN", "en")


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("email.de.html", "'de' is not a language Fluister speaks (en, fr, nl)"),
        ("email.xx.html", "'xx' is not a language Fluister speaks"),
        ("email.nl-BE.html", "'nl-BE' is not a language code such as nl or fr"),
        ("email.n1.html", "'n1' is not a language code"),
        ("mail.nl.html", "'mail.nl.html' is not a template file name"),
        ("email.nl.htm", "'email.nl.htm' is not a template file name"),
        ("email..html", "'email..html' is not a template file name"),
        ("email.nl.fr.html", "'nl.fr' is not a language code"),
        ("../email.nl.html", "not a template file name"),
    ],
)
def test_a_name_that_is_no_template_file_is_refused_naming_the_file(name: str, says: str) -> None:
    with pytest.raises(TemplateFileNameError) as refused:
        TemplateFile.parse(name, KNOWN)
    assert says in str(refused.value)
    assert name in str(refused.value)


DEFAULTS = {t.value: f"built-in {t.value}" for t in TemplateName}


def test_the_languages_file_wins_then_the_campaigns_default_then_the_built_in() -> None:
    own = {"email.html": "own default html", "email.nl.html": "own dutch html", "sms.txt": "own sms"}

    dutch = resolve(own, DEFAULTS, "nl")
    assert dutch.sources["email.html"] == "own dutch html"
    assert dutch.sources["sms.txt"] == "own sms"
    assert dutch.sources["subject.txt"] == "built-in subject.txt"
    assert dutch.levels["email.html"] == CAMPAIGN_LOCALE
    assert dutch.levels["sms.txt"] == CAMPAIGN_DEFAULT
    assert dutch.levels["subject.txt"] == BUILT_IN

    english = resolve(own, DEFAULTS, "en")
    assert english.sources["email.html"] == "own default html"
    assert set(english.files) == {"email.html", "sms.txt"}


def test_an_html_part_more_specific_than_the_text_part_gets_its_text_derived() -> None:
    # A Dutch HTML part must not travel with the default file's (English) text part.
    own = {"email.txt": "own english text", "email.nl.html": "own dutch html"}
    assert "email.txt" not in resolve(own, DEFAULTS, "nl").sources
    assert resolve(own, DEFAULTS, "en").sources["email.txt"] == "own english text"
    # As before languages: an own HTML part without an own text part derives its text.
    assert "email.txt" not in resolve({"email.html": "own"}, DEFAULTS, None).sources
    # An own text part beside the built-in HTML is kept.
    assert resolve({"email.txt": "own"}, DEFAULTS, "nl").sources["email.txt"] == "own"
    # Both for the language: both kept.
    both = resolve({"email.nl.html": "h", "email.nl.txt": "t"}, DEFAULTS, "nl")
    assert (both.sources["email.html"], both.sources["email.txt"]) == ("h", "t")
