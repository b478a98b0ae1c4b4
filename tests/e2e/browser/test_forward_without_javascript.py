"""The forward is the landing page's one job, and it needs no JavaScript: with scripts off, a
visitor fills in the form, sends it, lands on the thanks page, and the friend's e-mail goes out."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.browser.conftest import LiveApp, Tab

OFFER = "A free coffee at Koffie & Co"


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
