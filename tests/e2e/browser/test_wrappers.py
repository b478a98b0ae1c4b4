"""A quiz variant and a scratch card in a real browser, used with the keyboard alone (no click),
on a phone and on a laptop, with JavaScript and without: the quiz is answered with the arrow keys
and Enter, the scratch card opened with Enter and Space, then the send-to-friend form is filled in
and sent, and the friend's message goes out. Each page with JavaScript passes axe-core."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from engine.services.history import CLI
from engine.services.variants import VariantInput, add_variant
from tests.e2e.browser.conftest import SCREENSHOTS, TIMEOUT_MS, LiveApp, Tab, _safe
from tests.e2e.browser.test_landing_video import tab_to

# (viewport, JavaScript): a phone and a laptop with scripts, and a phone without.
WAYS = {
    "phone": ({"width": 390, "height": 844}, True),
    "laptop": ({"width": 1366, "height": 900}, True),
    "phone-without-javascript": ({"width": 390, "height": 844}, False),
}
QUESTION = "Which bean makes our espresso?"


@pytest.fixture(params=list(WAYS))
def visitor(browser: Browser, live: LiveApp, request: pytest.FixtureRequest) -> Iterator[Tab]:
    folder = SCREENSHOTS / _safe(request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    viewport, javascript = WAYS[request.param]
    context = browser.new_context(locale="en-US", viewport=viewport, java_script_enabled=javascript)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    yield Tab(context.new_page(), live, folder, javascript=javascript)
    context.close()


def _type(tab: Tab, selector: str, text: str) -> None:
    tab_to(tab, selector)
    tab.page.keyboard.type(text)


def _send_by_keyboard(tab: Tab, live: LiveApp) -> None:
    """Fill in the form and send it, with the keyboard alone; the friend's message goes out."""
    _type(tab, "#sender_name", "Anna")
    _type(tab, "#friend-1", "bob@example.com")
    tab.shot("form-filled")
    tab_to(tab, "button:has-text('Send to my friends')")
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_url("**/c/demo/thanks*")
    tab.shot("thanks")
    (message,) = live.wait_for_outbox(1)
    assert message["to"] == "bob@example.com"
    tab.assert_no_errors()


def test_a_quiz_is_answered_and_the_offer_forwarded_with_the_keyboard_alone(visitor: Tab, live: LiveApp) -> None:
    tab, page = visitor, visitor.page
    given = VariantInput(
        "Quiz",
        1,
        "quiz",
        quiz_question=QUESTION,
        quiz_answers=("Arabica", "Robusta", "Liberica"),
        quiz_correct=1,
        quiz_explanation="All arabica, roasted in Utrecht.",
    )
    add_variant(live.runtime.db, "demo", given, CLI)
    tab.open("/c/demo?lang=en", "question")
    expect(page.get_by_role("group", name=QUESTION)).to_be_visible()
    expect(page.locator("#forward")).to_have_count(0)

    tab_to(tab, "#answer-0")
    page.keyboard.press("Space")
    expect(page.locator("#answer-0")).to_be_checked()
    page.keyboard.press("ArrowDown")
    expect(page.locator("#answer-1")).to_be_checked()
    tab.shot("chosen")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/c/demo\?lang=en&answer=1$"))
    expect(page.locator("#quiz-result")).to_be_focused()
    expect(page.locator("#quiz-result")).to_contain_text(
        "Not quite. You answered: Robusta. The right answer is: Arabica. All arabica, roasted in Utrecht."
    )
    expect(page.locator("article.offer")).to_be_visible()
    tab.shot("answered")
    _send_by_keyboard(tab, live)


def test_the_skip_link_shows_the_same_offer_with_the_keyboard_alone(visitor: Tab, live: LiveApp) -> None:
    tab, page = visitor, visitor.page
    given = VariantInput("Quiz", 1, "quiz", quiz_question=QUESTION, quiz_answers=("Arabica", "Robusta"))
    add_variant(live.runtime.db, "demo", given, CLI)
    tab.open("/c/demo?lang=en", "question")
    tab_to(tab, "a:has-text('Skip the question')")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/c/demo\?lang=en&skip=1$"))
    expect(page.locator("#forward")).to_be_visible()
    expect(page.locator("#quiz-result")).to_have_count(0)
    tab.shot("skipped")
    _send_by_keyboard(tab, live)


def test_a_scratch_card_is_opened_and_the_offer_forwarded_with_the_keyboard_alone(visitor: Tab, live: LiveApp) -> None:
    tab, page = visitor, visitor.page
    add_variant(live.runtime.db, "demo", VariantInput("Scratch", 1, "scratch"), CLI)
    tab.open("/c/demo?lang=en", "card")
    card = page.locator("details.scratch-card")
    expect(page.locator("#forward")).to_be_hidden()
    tab_to(tab, "details.scratch-card > summary")
    page.keyboard.press("Enter")
    expect(card).to_have_attribute("open", "")
    page.keyboard.press("Space")
    expect(card).not_to_have_attribute("open", "")
    page.keyboard.press("Space")
    expect(card).to_have_attribute("open", "")
    expect(page.locator("#forward")).to_be_visible()
    tab.shot("scratched")
    _send_by_keyboard(tab, live)
