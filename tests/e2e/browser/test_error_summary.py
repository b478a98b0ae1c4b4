"""A refused console form's error summary takes the focus as the page loads, in Chromium, with
JavaScript on and off (the `autofocus` attribute alone does it), and its link leads to the field."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser.conftest import LiveApp, Tab
from tests.helpers import STAFF_PASSWORD, make_campaign

MARKETER = "marketer@staff.example"


def _refuse_a_copy(tab: Tab, live: LiveApp) -> Page:
    """Signed in as a marketer, ask for a copy of a campaign under a slug that is taken."""
    page = tab.page
    make_campaign(live.runtime.db, "spring", name="Spring sale")
    live.runtime.staff.create_user(MARKETER, "marketer", STAFF_PASSWORD)
    tab.open("/login", "login")
    page.get_by_label("E-mail address").fill(MARKETER)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live.url}/console")
    tab.open("/console/campaigns/spring/duplicate", "duplicate")
    expect(page.locator("#error-summary")).to_have_count(0)
    page.get_by_label("Slug of the copy").fill("spring")
    page.get_by_role("button", name="Create the copy").click()
    return page


def _is_focused(page: Page, selector: str) -> bool:
    return bool(page.locator(selector).evaluate("element => element === document.activeElement"))


@pytest.mark.parametrize("scripts", ["on", "off"])
def test_the_summary_of_a_refused_form_has_the_focus_and_leads_to_the_field(
    tab: Tab, tab_without_javascript: Tab, live: LiveApp, scripts: str
) -> None:
    shown = tab if scripts == "on" else tab_without_javascript
    page = _refuse_a_copy(shown, live)
    summary = page.locator("#error-summary")
    expect(summary).to_be_visible()
    expect(summary.get_by_role("heading")).to_have_text("There is a problem")
    expect(summary).to_have_attribute("role", "alert")
    # Focused by the page itself, as it loads: the first thing a keyboard or a screen reader meets.
    expect(summary).to_be_focused()
    assert _is_focused(page, "#error-summary")
    shown.shot("refused")

    link = summary.get_by_role("link", name="already a campaign spring")
    expect(link).to_have_attribute("href", "#slug")
    link.click()
    expect(page.get_by_label("Slug of the copy")).to_be_focused()
