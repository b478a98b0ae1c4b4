"""The forward form on a phone (390x844): "Add a friend" adds an input in place, up to the
campaign's maximum; a refused form puts each error beside its own input and focuses the error
summary at the top; several addresses pasted into one input go to each friend. Screenshots of
every step are kept."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.browser.conftest import SCREENSHOTS, TIMEOUT_MS, LiveApp, Tab, _safe

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone_tab(browser: Browser, live: LiveApp, request: pytest.FixtureRequest) -> Iterator[Tab]:
    folder = SCREENSHOTS / _safe(request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    context.set_default_timeout(TIMEOUT_MS)
    yield Tab(context.new_page(), live, folder)
    context.close()


def _fits_the_screen(tab: Tab) -> bool:
    return bool(tab.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_adding_friends_fixing_errors_and_pasting_several_on_a_phone(phone_tab: Tab, live: LiveApp) -> None:
    tab, page = phone_tab, phone_tab.page
    tab.open("/c/demo", "landing")
    friends = page.locator("fieldset.friends input[name=friend]")
    expect(friends).to_have_count(3)
    expect(page.get_by_label("Friend 3")).to_be_visible()

    # "Add a friend" adds an input in place (no reload), focused, up to the maximum of 5.
    add = page.get_by_role("button", name="Add a friend")
    add.click()
    expect(friends).to_have_count(4)
    expect(page.get_by_label("Friend 4")).to_be_focused()
    add.click()
    expect(friends).to_have_count(5)
    expect(add).to_be_hidden()
    assert page.url == f"{live.url}/c/demo"
    tab.shot("five-friends")

    # A bad address among pasted ones: its input alone is marked, the summary takes the focus.
    page.get_by_label("Your name").fill("Anna")
    page.get_by_label("Friend 1").fill("bob@example.com")
    page.get_by_label("Friend 2").fill("carla@example.com, nobody@")
    page.get_by_role("button", name="Send to my friends").click()
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Friend 2: nobody@ is not a valid email address.")
    expect(page.locator("#friend-2")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#friend-2")).to_have_accessible_description(
        "Up to 5 friends: an email address or a mobile number each. Several in one field? Separate them with "
        "commas. We only use them to send this one offer. Friend 2: nobody@ is not a valid email address."
    )
    expect(page.locator("#friend-1")).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("#friend-1")).to_have_value("bob@example.com")
    expect(page.get_by_label("Your name")).to_have_value("Anna")
    assert _fits_the_screen(tab)
    tab.shot("errors-beside-their-fields")

    # The link in the summary goes to the input.
    summary.get_by_role("link").click()
    expect(page.locator("#friend-2")).to_be_focused()

    # Fixed: three friends, two of them pasted into one input.
    page.locator("#friend-2").fill("carla@example.com dave@example.com")
    page.get_by_role("button", name="Send to my friends").click()
    page.wait_for_url("**/c/demo/thanks")
    expect(page.get_by_role("status")).to_contain_text("your 3 friends the offer")
    assert _fits_the_screen(tab)
    tab.shot("thanks")

    assert [e for e in tab.errors if "status of 422" not in e] == []
