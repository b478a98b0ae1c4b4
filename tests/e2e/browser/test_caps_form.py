"""A marketer in a real browser types a cap that is no number into the demo campaign's form,
reads why beside the field, types a good one, saves, and reads the cap's live usage page; both
pages pass axe-core and fit a 390 px wide phone."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.e2e.browser.conftest import LiveApp, Tab
from tests.helpers import STAFF_PASSWORD

MARKETER = "marketer@staff.example"


def test_a_bad_cap_then_a_good_one_and_the_usage_page(tab: Tab, live: LiveApp) -> None:
    page = tab.page
    live.runtime.staff.create_user(MARKETER, "marketer", STAFF_PASSWORD)
    tab.open("/login", "login")
    page.get_by_label("E-mail address").fill(MARKETER)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live.url}/console")

    tab.open("/console/campaigns/demo/edit", "edit-form")
    cap = page.get_by_label("Friends one sender may send to")
    expect(cap).to_have_attribute("placeholder", "10")
    expect(page.locator("#cap-hint-friends_per_sender_per_day")).to_contain_text(
        "Empty: the default, 10 friends a day."
    )
    expect(page.locator("#policy-about-eu-strict")).to_contain_text("No incentives")
    expect(page.get_by_text("Advanced: JSON")).to_have_count(0)  # a marketer types no JSON
    assert_accessible(page)

    cap.fill("lots")
    page.get_by_role("button", name="Save").click()
    expect(cap).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".cap", has=cap).locator(".errors")).to_have_text(
        "Not a number: type a whole number such as 20, or leave it empty for the default."
    )
    expect(cap).to_have_value("lots")
    tab.shot("bad-cap")

    cap.fill("4")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{live.url}/console/campaigns/demo")
    expect(page.get_by_role("status")).to_contain_text("Saved: caps.")
    tab.shot("saved")

    page.get_by_role("navigation", name="Pages of this campaign").get_by_role("link", name="Cap usage").click()
    page.wait_for_url(f"{live.url}/console/campaigns/demo/usage")
    row = page.locator('tr[data-cap="friends_per_sender_per_day"]')
    expect(row).to_contain_text("4 friends a day")
    expect(page.locator('tr[data-cap="campaign_messages_per_day"] meter')).to_have_attribute("value", "0")
    tab.shot("usage")
    assert_accessible(page)
    page.set_viewport_size({"width": 390, "height": 800})
    assert_fits(page)
    tab.shot("usage-phone")
    page.goto(f"{live.url}/console/campaigns/demo/edit")
    assert_fits(page)
    # No console error, CSP violations included, but Chromium's note of the refused form's 422.
    assert [e for e in tab.errors if "status of 422" not in e] == []


def assert_accessible(page: Page) -> None:
    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21aa"]}})
    assert results.violations_count == 0, results.generate_report()


def assert_fits(page: Page) -> None:
    """Nothing wider than the screen: a table scrolls in its own box."""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
