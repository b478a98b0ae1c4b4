"""The send-to-friend form after a step of the campaign's own landing template (a quiz), in a
real browser used with the keyboard only: answering the quiz reveals the form, and so does
"Skip this step"; without JavaScript the form is simply there."""

from __future__ import annotations

from playwright.sync_api import Browser, expect
from sqlalchemy import update

from engine.models import Campaign
from engine.services.lookups import find_campaign
from engine.services.templates import add_template_versions
from tests.e2e.browser.conftest import TIMEOUT_MS, LiveApp, Tab
from tests.e2e.browser.test_landing_video import tab_to

# A quiz as a marketer writes it in their landing template: no script (the upload refuses one),
# any answer is the step done.
QUIZ = (
    "<h1>{{ offer_title }}</h1>"
    '<section class="quiz" aria-labelledby="quiz"><h2 id="quiz">Which bean makes our espresso?</h2>'
    '<button type="button" data-fluister-step-done>Arabica</button> '
    '<button type="button" data-fluister-step-done>Robusta</button></section>'
)


def set_step(live: LiveApp) -> None:
    """The demo campaign's landing page (each of its languages) opens with the quiz, and its form
    waits for an answer."""
    with live.runtime.db.transaction() as session:
        campaign = find_campaign(session, "demo", with_templates=True)
        add_template_versions(session, campaign, {"landing.html": QUIZ, "landing.en.html": QUIZ})
        session.execute(
            update(Campaign).where(Campaign.slug == "demo").values(landing_video={"reveal_form": "after-step"})
        )


def test_answering_the_quiz_with_the_keyboard_reveals_the_form(tab: Tab, live: LiveApp) -> None:
    page = tab.page
    set_step(live)
    tab.open("/c/demo?lang=en", "quiz")
    form = page.locator("#forward")
    expect(form).to_be_hidden()
    expect(page.get_by_role("button", name="Skip this step: show the send-to-friend form")).to_be_visible()

    tab_to(tab, "button:has-text('Robusta')")
    page.keyboard.press("Enter")
    expect(form).to_be_visible()
    expect(page.locator("#forward-heading")).to_be_focused()
    expect(page.locator("[data-skip-step]")).to_be_hidden()
    tab.shot("answered")
    tab.assert_no_errors()


def test_skip_this_step_reveals_the_form(tab: Tab, live: LiveApp) -> None:
    page = tab.page
    set_step(live)
    tab.open("/c/demo?lang=en", "quiz")
    expect(page.locator("#forward")).to_be_hidden()
    tab_to(tab, "[data-skip-step]")
    page.keyboard.press("Space")
    expect(page.locator("#forward")).to_be_visible()
    expect(page.locator("#forward-heading")).to_be_focused()
    expect(page.locator("[data-skip-step]")).to_be_hidden()
    tab.shot("skipped")
    tab.assert_no_errors()


def test_without_javascript_the_form_is_simply_there(browser: Browser, live: LiveApp) -> None:
    set_step(live)
    context = browser.new_context(java_script_enabled=False, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(f"{live.url}/c/demo?lang=en")
        expect(page.get_by_role("button", name="Robusta")).to_be_visible()
        expect(page.locator("#forward")).to_be_visible()
        expect(page.locator("[data-skip-step]")).to_be_hidden()
    finally:
        context.close()
