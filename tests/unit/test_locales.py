"""Which language a page speaks (engine.i18n): a campaign's locales, an explicit choice, the
browser's Accept-Language; a staff member's own preference; and rendering in a given language
and time zone outside a request, as a worker does."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask_babel import format_datetime, gettext

from config import load_settings
from engine import create_app
from engine.catalogs import compile_catalogs
from engine.i18n import (
    AddressForm,
    LocaleError,
    accepted_languages,
    catalog_locale,
    catalog_locales,
    current_language,
    negotiate_campaign_locale,
    negotiate_staff_locale,
    pseudo,
    rendering_in,
    validate_locales,
)
from engine.resources import resource_dir


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("nl", "nl"),
        ("nl-BE,nl;q=0.9,en;q=0.5", "nl"),  # a regional tag counts for its language
        ("fr-BE, en;q=0.8", "en"),  # French is not one of this campaign's languages
        ("de-DE,de;q=0.9", "nl"),  # nothing it speaks: the campaign's first, its default
        ("en;q=0.4, nl;q=0.8", "nl"),  # by preference, not by order
        ("", "nl"),
        ("*", "nl"),
        ("this is not a header", "nl"),
    ],
)
def test_a_campaign_page_speaks_the_best_of_the_browsers_languages_it_has(header: str, expected: str) -> None:
    assert negotiate_campaign_locale(["nl", "en"], accept=accepted_languages(header)) == expected


def test_an_explicit_choice_overrides_the_browser_when_the_campaign_offers_it() -> None:
    accept = accepted_languages("nl")
    assert negotiate_campaign_locale(["nl", "en", "fr"], explicit="fr", accept=accept) == "fr"
    assert negotiate_campaign_locale(["nl", "en", "fr"], explicit="FR-be", accept=accept) == "fr"
    # A language the campaign does not speak, or junk, is ignored: the browser decides.
    assert negotiate_campaign_locale(["nl", "en"], explicit="fr", accept=accept) == "nl"
    assert negotiate_campaign_locale(["nl", "en"], explicit="<script>", accept=accept) == "nl"


def test_outside_a_campaign_the_persons_preference_then_the_browser_then_english() -> None:
    assert negotiate_staff_locale("fr", accepted_languages("nl")) == "fr"
    assert negotiate_staff_locale(None, accepted_languages("nl-NL, en;q=0.5")) == "nl"
    assert negotiate_staff_locale(None, accepted_languages("de")) == "en"
    assert negotiate_staff_locale("xx", None) == "en"


def test_a_campaigns_locales_must_have_catalogs() -> None:
    assert set(catalog_locales()) >= {"en", "nl", "fr"}
    assert "nl@formal" not in catalog_locales()  # a variant, chosen by the address form
    assert validate_locales(["nl", "en"]) == ("nl", "en")
    assert validate_locales(["nl-BE", " fr "]) == ("nl", "fr")
    with pytest.raises(LocaleError, match="no translation for 'de'"):
        validate_locales(["nl", "de"])
    with pytest.raises(LocaleError, match="twice"):
        validate_locales(["nl", "NL"])
    with pytest.raises(LocaleError, match="at least one"):
        validate_locales([])
    with pytest.raises(LocaleError, match="not a language code"):
        validate_locales(["../../etc"])


def test_formal_address_selects_the_formal_dutch_catalog_only_for_dutch() -> None:
    assert catalog_locale("nl", AddressForm.FORMAL) == "nl@formal"
    assert catalog_locale("nl", AddressForm.INFORMAL) == "nl"
    assert catalog_locale("fr", AddressForm.FORMAL) == "fr"
    assert catalog_locale("en", AddressForm.FORMAL) == "en"


def test_the_pseudo_locale_wraps_and_accents_but_keeps_placeholders_and_markup() -> None:
    assert pseudo("Send to %(name)s") == "⟦Šéñđ ţö %(name)s⟧"
    assert pseudo("<b>Hi</b> %s {x}") == "⟦<b>Ĥî</b> %s {x}⟧"
    assert pseudo("") == ""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    compile_catalogs(resource_dir("translations"))
    path = tmp_path_factory.mktemp("app")
    return create_app(load_settings({"INSTANCE_PATH": str(path)}, dotenv_path=path / "no.env"))


def test_rendering_in_a_language_and_time_zone_outside_a_request(app: Flask) -> None:
    moment = datetime(2026, 6, 3, 15, 0, tzinfo=UTC)
    with app.app_context():
        assert gettext("Powered by %(product)s", product="Fluister") == "Powered by Fluister"
        with rendering_in("nl", time_zone="Europe/Amsterdam"):
            assert current_language() == "nl"
            assert gettext("Powered by %(product)s", product="Fluister") == "Mogelijk gemaakt door Fluister"
            assert "17:00" in format_datetime(moment)  # CEST
            with rendering_in(catalog_locale("fr")):
                assert gettext("Powered by %(product)s", product="X") == "Propulsé par X"
                assert "15:00" in format_datetime(moment)
            assert current_language() == "nl"
        with rendering_in("nl@formal"):
            assert current_language() == "nl"  # what <html lang> says for formal Dutch too
        assert current_language() == "en"


def test_rendering_in_refuses_an_unknown_locale_and_needs_an_app(app: Flask) -> None:
    with app.app_context(), pytest.raises(LocaleError), rendering_in("zz-not-a-locale"):
        pass
    with pytest.raises(RuntimeError, match="app context"), rendering_in("nl"):
        pass


def test_a_request_outside_a_campaign_follows_accept_language(app: Flask) -> None:
    with app.test_request_context("/", headers={"Accept-Language": "fr-BE,fr;q=0.9"}):
        assert current_language() == "fr"
        assert gettext("Powered by %(product)s", product="Fluister") == "Propulsé par Fluister"


def test_the_pseudo_locale_is_switchable_for_tests(tmp_path: Path) -> None:
    settings = load_settings({"INSTANCE_PATH": str(tmp_path)}, dotenv_path=tmp_path / "no.env")
    app = create_app(settings.with_overrides(pseudo_locale=True))
    with app.app_context(), rendering_in("nl"):
        assert gettext("Powered by %(product)s", product="Fluister") == "⟦Þöŵéŕéđ ƀý Fluister⟧"
