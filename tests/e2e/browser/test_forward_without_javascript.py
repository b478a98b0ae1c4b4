"""The forward is the landing page's one job, and it needs no JavaScript: with scripts off, a
visitor fills in the form, sends it, lands on the thanks page, and the friend's e-mail goes out."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.browser.conftest import SCREENSHOTS, TIMEOUT_MS, LiveApp, Tab, _safe

OFFER = "A free coffee at Koffie & Co"


@pytest.fixture
def tab_without_javascript(browser: Browser, live: LiveApp, request: pytest.FixtureRequest) -> Iterator[Tab]:
    """As the `tab` fixture, in a browser that runs no script at all."""
    folder = SCREENSHOTS / _safe(request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    context = browser.new_context(java_script_enabled=False, locale="en-US", viewport={"width": 390, "height": 844})
    context.set_default_timeout(TIMEOUT_MS)
    yield Tab(context.new_page(), live, folder, javascript=False)
    context.close()


def test_a_forward_goes_out_with_javascript_off(tab_without_javascript: Tab, live: LiveApp) -> None:
    tab = tab_without_javascript
    page = tab.page
    tab.open("/c/demo?lang=en", "landing-without-javascript")
    expect(page.locator("article.offer")).to_contain_text(OFFER)
    page.get_by_label("Your name").fill("Anna")
    page.locator("#friend-1").fill("bob@example.com")
    tab.shot("form-filled")
    page.get_by_role("button", name="Send to my friends").click()
    page.wait_for_url("**/c/demo/thanks*")
    expect(page.get_by_role("status")).to_contain_text(f"We're sending your friend the offer “{OFFER}”.")
    tab.shot("thanks")
    live.wait_for_outbox(1)
    tab.assert_no_errors()
