""" "Copy" buttons in a real browser: the sender's tracked link on the copy-link page and a
friend's coupon code on the landing page go to the clipboard, with an announced "Copied";
where the browser has no clipboard to give, the text is selected for the visitor to copy and
the status says so; without JavaScript there is no button, only the text to select.
Screenshots of every step are kept."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from engine.services.coupons import import_codes
from tests.e2e.browser.conftest import SCREENSHOTS, TIMEOUT_MS, LiveApp, Tab, _safe
from tests.e2e.browser.test_consumer_flow import message_to
from tests.helpers import US_CUSTOM_SMS, make_campaign

BY_HAND = (
    "Copying did not work here: the text is selected, so you can copy it yourself (Ctrl+C, or long-press on a phone)."
)


def own_tab(browser: Browser, live: LiveApp, request: pytest.FixtureRequest, **options: object) -> Iterator[Tab]:
    folder = SCREENSHOTS / _safe(request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    yield Tab(context.new_page(), live, folder, javascript=options.get("java_script_enabled", True) is not False)
    context.close()


@pytest.fixture
def clipboard_tab(browser: Browser, live: LiveApp, request: pytest.FixtureRequest) -> Iterator[Tab]:
    """A tab allowed to write to (and, for the test, read) the clipboard."""
    yield from own_tab(browser, live, request, permissions=["clipboard-read", "clipboard-write"])


@pytest.fixture
def no_clipboard_tab(browser: Browser, live: LiveApp, request: pytest.FixtureRequest) -> Iterator[Tab]:
    """A tab whose browser has no clipboard API, as on a page served over plain HTTP."""
    for tab in own_tab(browser, live, request):
        tab.page.add_init_script("Object.defineProperty(Navigator.prototype, 'clipboard', {get: () => undefined})")
        yield tab


@pytest.fixture
def no_script_tab(browser: Browser, live: LiveApp, request: pytest.FixtureRequest) -> Iterator[Tab]:
    yield from own_tab(browser, live, request, java_script_enabled=False)


def open_copy_link_page(tab: Tab) -> None:
    tab.open("/c/demo", "landing")
    tab.page.get_by_role("button", name="Copy the link").click()
    expect(tab.page.get_by_role("heading", name="Your link to share")).to_be_visible()
    tab.shot("copy-link-page")


def test_the_link_and_the_code_go_to_the_clipboard(clipboard_tab: Tab, live: LiveApp) -> None:
    tab, page = clipboard_tab, clipboard_tab.page
    open_copy_link_page(tab)
    link = page.locator("#share-link").input_value()
    assert link.startswith(f"{live.url}/f/")
    page.get_by_role("button", name="Copy link").click()
    expect(page.get_by_role("status").filter(has_text="Copied")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == link
    tab.shot("link-copied")

    # A friend who follows a forward of a campaign with coupons copies their code.
    make_campaign(live.runtime.db, "beans", policy_settings={**US_CUSTOM_SMS, "incentives": True}, coupon_mode="pool")
    import_codes(live.runtime.db, "beans", io.StringIO("code\nBEANS-2026\n"))
    tab.open("/c/beans", "landing-with-coupons")
    page.get_by_label("Your name").fill("Anna")
    page.locator("#friend-1").fill("bob@example.com")
    page.get_by_role("button", name="Send to my friends").click()
    page.wait_for_url("**/c/beans/thanks")
    live.wait_for_outbox(1)
    tab.open("/dev/outbox", "outbox")
    bobs_link = message_to(tab, "bob@example.com").locator(".text a[href*='/f/']").get_attribute("href")
    assert bobs_link
    tab.open(bobs_link, "landing-with-the-code")
    expect(page.locator("#coupon-code")).to_have_text("BEANS-2026")
    page.get_by_role("button", name="Copy code").click()
    expect(page.locator("#coupon-code-copied")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "BEANS-2026"
    tab.shot("code-copied")
    tab.assert_no_errors()


def test_without_a_clipboard_the_link_is_selected_to_copy_by_hand(no_clipboard_tab: Tab) -> None:
    tab, page = no_clipboard_tab, no_clipboard_tab.page
    open_copy_link_page(tab)
    page.get_by_role("button", name="Copy link").click()
    expect(page.locator("#share-link-copied")).to_have_text(BY_HAND)
    field = page.locator("#share-link")
    expect(field).to_be_focused()
    length = len(field.input_value())
    assert field.evaluate("f => [f.selectionStart, f.selectionEnd]") == [0, length]
    tab.shot("link-selected")
    tab.assert_no_errors()


def test_without_javascript_there_is_no_button_only_the_link(no_script_tab: Tab) -> None:
    tab, page = no_script_tab, no_script_tab.page
    open_copy_link_page(tab)
    expect(page.locator("#share-link")).to_be_visible()
    expect(page.get_by_role("button", name="Copy link")).to_have_count(0)  # hidden: not in the accessibility tree
    expect(page.locator("button[data-copy]")).to_be_hidden()
