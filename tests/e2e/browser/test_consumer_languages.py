"""The consumer journey in Dutch and in French, on a phone: a browser set to the language lands
on the offer in it, fills in the form the way people there type phone numbers, sees the form's
errors and the thanks page in its language; the friend, whose browser asks for another
language, follows the tracked link and lands on the offer in the sender's language. The
language switch overrides the browser. Screenshots of every step are kept."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from engine.models import Forward
from engine.tokens import Purpose
from tests.e2e.browser.conftest import SCREENSHOTS, TIMEOUT_MS, LiveApp, Tab, _safe
from tests.helpers import US_CUSTOM_SMS, make_campaign

# An iPhone-sized screen, where most forwards are made.
PHONE = {"width": 390, "height": 844}

OpenTab = Callable[[str, str], Tab]


@pytest.fixture
def phone(browser: Browser, live: LiveApp, request: pytest.FixtureRequest) -> Iterator[OpenTab]:
    """Tabs of phones whose browser is set to a language (its Accept-Language), each in a
    context of its own; screenshots under test-artifacts/screenshots/<test>/<who>/."""
    root = SCREENSHOTS / _safe(request.node.name)
    shutil.rmtree(root, ignore_errors=True)
    contexts = []

    def open_tab(who: str, locale: str) -> Tab:
        folder = root / who
        folder.mkdir(parents=True)
        context = browser.new_context(
            viewport=PHONE, locale=locale, is_mobile=True, has_touch=True, device_scale_factor=2
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return Tab(context.new_page(), live, folder)

    yield open_tab
    for context in contexts:
        context.close()


def _tracked_link(live: LiveApp, recipient: str) -> str:
    """The link the friend's message carries (as the outbox shows it)."""
    with live.runtime.db.reading() as session:
        forward = session.scalars(select(Forward).where(Forward.recipient_contact == recipient)).one()
        return f"/f/{live.runtime.tokens.sign(Purpose.FORWARD, forward.public_id)}"


def _locale_of(live: LiveApp, recipient: str) -> str | None:
    with live.runtime.db.reading() as session:
        return session.scalars(select(Forward.locale).where(Forward.recipient_contact == recipient)).one()


def test_a_dutch_consumer_on_a_phone_and_her_friend_whose_phone_is_in_english(phone: OpenTab, live: LiveApp) -> None:
    anna = phone("anna", "nl-NL")
    page = anna.page
    anna.open("/c/demo", "aanbod")
    expect(page.locator("html")).to_have_attribute("lang", "nl")
    expect(page.get_by_role("heading", name="Stuur dit aanbod naar een vriend")).to_be_visible()
    expect(page.locator("nav.languages")).to_contain_text("English")

    # A Dutch mobile number as people type it, and a mistake: a number nobody has.
    page.get_by_label("Je naam").fill("Anna")
    page.locator("#friend-1").fill("bob@example.com")
    page.locator("#friend-2").fill("06 1234")
    anna.shot("formulier-met-fout")
    page.get_by_role("button", name="Naar mijn vrienden sturen").click()
    expect(page.locator("#friend-2-error")).to_contain_text(
        "Vriend 2: 06 1234 is geen telefoonnummer dat we kunnen lezen"
    )
    anna.shot("foutmelding")

    page.locator("#friend-2").fill("06 12345678")
    page.get_by_role("button", name="Naar mijn vrienden sturen").click()
    page.wait_for_url("**/c/demo/thanks")
    expect(page.get_by_role("status")).to_contain_text("Bedankt!")
    expect(page.get_by_role("status")).to_contain_text("We sturen je 2 vrienden het aanbod")
    anna.shot("bedankt")
    assert _locale_of(live, "bob@example.com") == "nl"
    assert _locale_of(live, "+31612345678") == "nl"

    # Bob's phone is set to English; the offer Anna sent him is in her Dutch.
    bob = phone("bob", "en-US")
    bob.open(_tracked_link(live, "bob@example.com"), "friend-landing")
    expect(bob.page.locator("html")).to_have_attribute("lang", "nl")
    expect(bob.page.locator(".referral")).to_have_text("Anna stuurde je dit aanbod.")
    # The switch is his: English at a tap, and his form then posts English.
    bob.page.locator("nav.languages").get_by_role("link", name="English").click()
    expect(bob.page.locator("html")).to_have_attribute("lang", "en")
    expect(bob.page.get_by_role("heading", name="Send this offer to a friend")).to_be_visible()
    expect(bob.page.locator("#locale")).to_have_value("en")
    bob.shot("friend-landing-switched-to-english")

    _no_errors_but_the_refused_form(anna)
    bob.assert_no_errors()


def test_a_french_speaking_consumer_in_brussels_and_her_dutch_speaking_friend(phone: OpenTab, live: LiveApp) -> None:
    make_campaign(
        live.runtime.db,
        "bruxelles",
        offer_title="Un café offert",
        brand_name="Café Sablon",
        locales=["fr", "nl"],
        phone_region="BE",
        extra_phone_regions=["NL"],
        policy_settings=US_CUSTOM_SMS,
    )
    claire = phone("claire", "fr-BE")
    page = claire.page
    claire.open("/c/bruxelles", "offre")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.get_by_role("heading", name="Envoyez cette offre à un ami")).to_be_visible()

    page.get_by_label("Votre prénom").fill("Claire")
    page.locator("#friend-1").fill("0470 12 34 56")  # a Belgian mobile, typed the Belgian way
    page.locator("#friend-2").fill("pas-une-adresse@")
    page.get_by_role("button", name="Envoyer à mes amis").click()
    expect(page.locator("#friend-2-error")).to_contain_text(
        "Ami 2 : pas-une-adresse@ n\u2019est pas une adresse e-mail valide."
    )
    # The number comes back as it is written in Belgium.
    expect(page.locator("#friend-1")).to_have_value("0470 12 34 56")
    claire.shot("erreur")

    page.locator("#friend-2").fill("")
    page.get_by_role("button", name="Envoyer à mes amis").click()
    page.wait_for_url("**/c/bruxelles/thanks")
    expect(page.get_by_role("status")).to_contain_text("Merci !")
    expect(page.get_by_role("status")).to_contain_text("Nous envoyons à votre ami l\u2019offre « Un café offert ».")
    claire.shot("merci")
    assert _locale_of(live, "+32470123456") == "fr"

    # Her friend's phone speaks Dutch, which the campaign speaks too: he still lands in French.
    jan = phone("jan", "nl-BE")
    jan.open(_tracked_link(live, "+32470123456"), "landing-van-de-vriend")
    expect(jan.page.locator("html")).to_have_attribute("lang", "fr")
    expect(jan.page.locator(".referral")).to_have_text("Claire vous a envoyé cette offre.")
    assert re.search(r"/c/bruxelles$", jan.page.url)

    _no_errors_but_the_refused_form(claire)
    jan.assert_no_errors()


def _no_errors_but_the_refused_form(tab: Tab) -> None:
    """No console error, CSP violations included, but Chromium's note of the form's 422."""
    assert [e for e in tab.errors if "status of 422" not in e] == []
