"""The eu-strict sender's preview on a phone (375x812): the message their friend will get is
shown whole, as wide as the screen allows and no wider: no horizontal scroll, neither of the
page nor inside the message's frame. Screenshots of the preview are kept."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.browser.conftest import SCREENSHOTS, TIMEOUT_MS, LiveApp, Tab, _safe
from tests.helpers import make_campaign

PHONE = {"width": 375, "height": 812}


@pytest.fixture
def phone_tab(browser: Browser, live: LiveApp, request: pytest.FixtureRequest) -> Iterator[Tab]:
    folder = SCREENSHOTS / _safe(request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    context.set_default_timeout(TIMEOUT_MS)
    yield Tab(context.new_page(), live, folder)
    context.close()


def test_the_eu_strict_preview_shows_the_whole_email_on_a_phone(phone_tab: Tab, live: LiveApp) -> None:
    make_campaign(
        live.runtime.db, "stil", policy_name="eu-strict", policy_settings={}, channels=["email"], postal_address=""
    )
    tab, page = phone_tab, phone_tab.page
    tab.open("/c/stil", "form")
    page.get_by_label("Your name").fill("Anna")
    page.get_by_label("Friend 1").fill("bob@example.com")
    page.get_by_label("A short note (optional)").fill("Their flat white is the best in town, trust me on this one.")
    page.get_by_role("button", name="Send to my friends").click()
    expect(page.get_by_role("heading", name="This is what your friend will get")).to_be_visible()

    frame_box = page.locator("iframe.preview").bounding_box()
    assert frame_box is not None
    assert frame_box["x"] >= 0 and frame_box["x"] + frame_box["width"] <= PHONE["width"]
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    email = page.frame_locator("iframe.preview")
    card = email.locator("table table").first  # the message column, inside the page's full-width table
    expect(email.get_by_role("link", name="See the offer")).to_be_visible()
    inside = card.evaluate(
        "card => ({right: card.getBoundingClientRect().right, frame: card.ownerDocument.defaultView.innerWidth,"
        " scroll: card.ownerDocument.documentElement.scrollWidth,"
        " height: card.ownerDocument.documentElement.scrollHeight,"
        " frameHeight: card.ownerDocument.defaultView.innerHeight})"
    )
    # The message's right edge within its frame, and nothing to scroll sideways to.
    assert inside["right"] <= inside["frame"] and inside["scroll"] <= inside["frame"]
    # The frame is tall enough for all of it: nothing below the fold of the frame.
    assert inside["height"] <= inside["frameHeight"]
    # The footer's last line: the brand alone, without a postal address and without a comma.
    expect(email.locator(".fl-foot")).to_contain_text("Stop offers forwarded through Acme")
    assert email.locator(".fl-foot").inner_text().rstrip().endswith("Acme")
    tab.shot("preview")
    tab.assert_no_errors()
