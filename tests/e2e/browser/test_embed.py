"""The send-to-friend button on a brand's own site, in a real browser with third-party cookies
blocked: a host page on a second origin (http://localhost:Q, listed by the demo campaign),
under a strict Content-Security-Policy, loads /embed.js from the app (http://127.0.0.1:P).
Keyboard only, Anna opens the dialog (focus moves into the form), sends the offer to a friend,
and the host page hears of it (a `fluister:forward` event with counts, never a contact); Tab
stays in the dialog, Escape closes it and gives the focus back to the button. A forged message
is ignored. The same page on a third origin, not listed, shows nothing and says why in the
console. In share mode the frame holds the share bar alone, and a share button used from it
(opening its page in a tab of its own) becomes a `fluister:share` event naming the button."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Browser, FrameLocator, Locator, Page, expect
from sqlalchemy import update

from engine.models import Campaign, Forward
from tests.e2e.browser.conftest import BROWSER_ARGS, SCREENSHOTS, TIMEOUT_MS, LiveApp, Tab, _safe, chromium_executable
from tests.helpers import count

OFFER = "A free coffee at Koffie & Co"

HOST_SCRIPT = """
window.fluisterEvents = [];
window.messagesSeen = 0;
window.addEventListener("message", function () { window.messagesSeen += 1; });
document.addEventListener("fluister:forward", function (event) {
  window.fluisterEvents.push(event.detail);
  document.getElementById("events").textContent = JSON.stringify(event.detail);
});
document.addEventListener("fluister:share", function (event) {
  document.getElementById("events").textContent = JSON.stringify(event.detail);
});
"""


def host_page(app_url: str, mode: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Koffie shop</title>
<script src="/host.js"></script></head>
<body><h1>Koffie shop</h1><a href="/about">About us</a>
<script src="{app_url}/embed.js" data-fluister-campaign="demo" data-fluister-mode="{mode}" async></script>
<p id="events"></p><a href="/contact">Contact</a></body></html>"""


@dataclass(frozen=True)
class Site:
    url: str
    server: ThreadingHTTPServer


def _serve(app_url: str) -> Site:
    """A brand's site: its page with the snippet, under the CSP a careful brand sets."""
    policy = (
        f"default-src 'self'; script-src 'self' {app_url}; connect-src {app_url}; frame-src {app_url}; "
        "style-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'"
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            script = self.path == "/host.js"
            mode = {"/inline": "inline", "/share": "share"}.get(self.path, "button")
            body, kind = (HOST_SCRIPT, "text/javascript") if script else (host_page(app_url, mode), "text/html")
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Security-Policy", policy)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return Site(f"http://localhost:{server.server_address[1]}", server)


@pytest.fixture
def sites(live: LiveApp) -> Iterator[tuple[Site, Site]]:
    """The brand's site the demo campaign lists, and another site it does not."""
    listed, stranger = _serve(live.url), _serve(live.url)
    with live.runtime.db.transaction() as session:
        session.execute(update(Campaign).where(Campaign.slug == "demo").values(embed_origins=[listed.url]))
    yield listed, stranger
    for site in (listed, stranger):
        site.server.shutdown()
        site.server.server_close()


@pytest.fixture
def strict_tab(browser: Browser, live: LiveApp, request: pytest.FixtureRequest) -> Iterator[Tab]:
    """A tab of a Chromium that blocks third-party cookies, as browsers are moving to."""
    folder = SCREENSHOTS / _safe(request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    strict = browser.browser_type.launch(
        executable_path=chromium_executable(),
        args=[*BROWSER_ARGS, "--test-third-party-cookie-phaseout"],
        headless=True,
    )
    context = strict.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    yield Tab(context.new_page(), live, folder)
    context.close()
    strict.close()


def _focused(locator: Locator) -> bool:
    return bool(locator.evaluate("element => element === document.activeElement && document.hasFocus()"))


def _tab_to(page: Page, locator: Locator, presses: int = 40) -> None:
    for _ in range(presses):
        if _focused(locator):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {locator}")


# Functions, not bare expressions: Playwright polls a bare expression with eval(), which the host
# page's CSP (no 'unsafe-eval') refuses whenever the first look is not yet true.
FOCUS_IN_DIALOG = "() => document.querySelector('dialog.fluister-dialog').contains(document.activeElement)"


def test_the_button_dialog_and_a_forward_by_keyboard_on_the_brands_site(
    strict_tab: Tab, live: LiveApp, sites: tuple[Site, Site]
) -> None:
    tab, page = strict_tab, strict_tab.page
    listed, _ = sites
    tab.open(listed.url, "host-page")
    button = page.get_by_role("button", name="Send to a friend")
    expect(button).to_be_visible()
    tab.shot("button")

    # Keyboard only: to the button, Enter opens a dialog named by the offer, focus in its form.
    _tab_to(page, button)
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name=OFFER)
    expect(dialog).to_be_visible()
    form: FrameLocator = page.frame_locator("iframe.fluister-frame")
    expect(form.get_by_label("Your name")).to_be_focused()
    tab.shot("dialog")

    # Tab and Shift+Tab never leave the dialog. The trap's sentinels send the focus back from
    # a focus event: on a busy machine that lands a moment after the key press, so wait for it.
    for key in ["Tab"] * 30 + ["Shift+Tab"] * 30:
        page.keyboard.press(key)
        page.wait_for_function(FOCUS_IN_DIALOG, timeout=5000)

    # Escape closes it, from inside the frame, and the focus is back on the button.
    _tab_to(page, form.get_by_label("Your name"))
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(button).to_be_focused()

    # Again, and a forward: the host page is told how many friends, never who.
    page.keyboard.press("Enter")
    expect(form.get_by_label("Your name")).to_be_focused()
    page.keyboard.type("Anna")
    _tab_to(page, form.get_by_label("Friend 1"))
    page.keyboard.type("bob@example.com")
    _tab_to(page, form.get_by_role("button", name="Send to my friends"))
    page.keyboard.press("Enter")
    expect(form.get_by_role("status")).to_contain_text(f"We're sending {OFFER} to your friend.")
    expect(page.locator("#events")).to_have_text(
        json.dumps({"campaign": "demo", "friends": 1, "kinds": ["email-address"]}, separators=(",", ":"))
    )
    assert count(live.runtime.db, Forward) == 1
    live.wait_for_outbox(1)
    tab.shot("sent")

    # A message that is not the frame's (another origin, another source) is ignored.
    seen = page.evaluate("window.messagesSeen")
    page.evaluate("window.postMessage({fluister: 1, type: 'forward', friends: 9, kinds: []}, '*')")
    page.wait_for_function(f"() => window.messagesSeen > {seen}")
    assert page.evaluate("window.fluisterEvents.length") == 1

    # The close button too gives the focus back.
    page.get_by_role("button", name="Close").focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(button).to_be_focused()
    tab.assert_no_errors()


def test_a_site_the_campaign_does_not_list_shows_nothing_and_says_why(
    strict_tab: Tab, live: LiveApp, sites: tuple[Site, Site]
) -> None:
    tab, page = strict_tab, strict_tab.page
    _, stranger = sites
    with page.expect_console_message(lambda message: message.text.startswith("Fluister:")) as said:
        tab.open(stranger.url, "not-listed")
    assert f"is not shown on {stranger.url}" in said.value.text
    assert f"{stranger.url} is not among the sites that may embed campaign 'demo'" in said.value.text
    expect(page.locator("button.fluister-button")).to_have_count(0)
    expect(page.locator("iframe")).to_have_count(0)


def test_the_inline_form_on_the_brands_page_takes_its_height_and_sends(
    strict_tab: Tab, live: LiveApp, sites: tuple[Site, Site]
) -> None:
    tab, page = strict_tab, strict_tab.page
    listed, _ = sites
    tab.open(f"{listed.url}/inline", "inline")
    form = page.frame_locator("iframe.fluister-frame")
    expect(form.get_by_label("Your name")).to_be_visible()
    # The frame grows to the form's height (the script starts it smaller): no scrolling inside.
    page.wait_for_function(
        "() => { const f = document.querySelector('iframe.fluister-frame');"
        " return f.getBoundingClientRect().height > 34 * 16; }"
    )
    form.get_by_label("Your name").fill("Anna")
    form.get_by_label("Friend 1").fill("bob@example.com, carla@example.com")
    form.get_by_role("button", name="Send to my friends").click()
    expect(form.get_by_role("status")).to_contain_text(f"We're sending {OFFER} to your 2 friends.")
    expect(page.locator("#events")).to_have_text(
        json.dumps({"campaign": "demo", "friends": 2, "kinds": ["email-address"]}, separators=(",", ":"))
    )
    tab.shot("inline-sent")
    tab.assert_no_errors()


def test_the_share_bar_on_the_brands_page_tells_the_page_which_button_was_used(
    tab: Tab, live: LiveApp, sites: tuple[Site, Site]
) -> None:
    page = tab.page
    listed, _ = sites
    tab.open(f"{listed.url}/share", "share-bar")
    bar = page.frame_locator("iframe.fluister-frame")
    expect(bar.get_by_role("button", name="WhatsApp")).to_be_visible()
    expect(bar.get_by_label("Your name")).to_have_count(0)  # the share bar only, no form
    # "Copy the link" opens our own page with the link: nothing is asked of a sharing app's
    # site (a popup's redirect to one cannot be answered here, so none is used).
    button = bar.get_by_role("button", name="Copy the link")
    _tab_to(page, button)
    with page.expect_popup() as popup:
        page.keyboard.press("Enter")
    sharing = popup.value
    sharing.wait_for_load_state()
    assert sharing.url.startswith(f"{live.url}/c/demo/embed/share")
    assert f"{live.url}/f/" in sharing.content()  # the tracked link, to copy
    # The host page heard which button, and nothing else.
    expect(page.locator("#events")).to_have_text(
        json.dumps({"campaign": "demo", "channel": "link"}, separators=(",", ":"))
    )
    tab.shot("shared")
    tab.assert_no_errors()
