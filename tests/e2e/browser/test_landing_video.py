"""A landing page's hero video in a real browser, used with the keyboard only. Nothing is loaded
from YouTube or from the media host before the visitor asks for it; pressing play loads the
(stubbed) privacy-enhanced player and counts one play; the video's end, or "Skip the video",
reveals the send-to-friend form. No real provider is contacted: every request to their hosts is
answered here, and recorded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import update

from engine.models import Campaign
from engine.services.analytics import campaign_metrics
from tests.e2e.browser.conftest import SCREENSHOTS, TIMEOUT_MS, LiveApp, Tab, _safe
from tests.helpers import wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Route

MEDIA_HOST = "media.koffie.example"
# The stub player: when the page asks to hear about the player's state (YouTube's "listening"),
# it reports at once that the video has ended (state 0), as the real player does at the end.
STUB_PLAYER = """<!doctype html><title>stub player</title><p>stub player</p>
<script>
window.addEventListener("message", function () {
  parent.postMessage(JSON.stringify({event: "onStateChange", info: 0}), "*");
});
</script>"""


@pytest.fixture
def video_tab(browser: Browser, live: LiveApp, request: pytest.FixtureRequest) -> Iterator[tuple[Tab, list[str]]]:
    """A tab whose every request to the video providers and the media host is answered by a stub,
    and listed (the second item), in English."""
    folder = SCREENSHOTS / _safe(request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    outside: list[str] = []

    def player(route: Route) -> None:
        outside.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body=STUB_PLAYER)

    def media(route: Route) -> None:
        outside.append(route.request.url)
        route.fulfill(status=404, body="")

    context.route("https://www.youtube-nocookie.com/**", player)
    context.route("https://player.vimeo.com/**", player)
    context.route("https://*.youtube.com/**", player)
    context.route(f"https://{MEDIA_HOST}/**", media)
    yield Tab(context.new_page(), live, folder), outside
    context.close()


def set_video(live: LiveApp, **video: str) -> None:
    with live.runtime.db.transaction() as session:
        session.execute(
            update(Campaign)
            .where(Campaign.slug == "demo")
            .values(media_hosts=[MEDIA_HOST], landing_video={"caption": "Our coffee", **video})
        )


def tab_to(tab: Tab, selector: str, *, presses: int = 40) -> None:
    """Move the focus with the Tab key alone until the element is focused."""
    target = tab.page.locator(selector)
    for _ in range(presses):
        tab.page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return
    pytest.fail(f"{selector} never got the focus by Tab")


def plays(live: LiveApp) -> int:
    runtime = live.runtime
    figures = campaign_metrics(
        runtime.db, "demo", runtime.clock.now(), visits=runtime.visits, plays=runtime.plays.counts
    )
    return figures.overall.plays


def test_play_with_the_keyboard_counts_once_and_the_end_reveals_the_form(
    video_tab: tuple[Tab, list[str]], live: LiveApp
) -> None:
    tab, outside = video_tab
    page = tab.page
    set_video(live, url="https://www.youtube.com/watch?v=dQw4w9WgXcQ", reveal_form="after-video")
    tab.open("/c/demo?lang=en", "facade")
    form = page.locator("#forward")
    expect(form).to_be_hidden()
    expect(page.locator("[data-skip-video]")).to_be_visible()
    assert page.locator("iframe").count() == 0
    assert outside == []  # no request to the provider on page view

    tab_to(tab, "[data-play-button]")
    page.keyboard.press("Enter")
    frame = page.locator("iframe")
    expect(frame).to_have_attribute(
        "src", "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ?autoplay=1&enablejsapi=1&rel=0"
    )
    expect(frame).to_have_attribute("title", "Our coffee")
    # The stub player says the video ended: the form appears, its heading focused; no skip button.
    expect(form).to_be_visible()
    expect(page.locator("#forward-heading")).to_be_focused()
    expect(page.locator("[data-skip-video]")).to_be_hidden()
    tab.shot("played-and-revealed")
    assert [url for url in outside if "youtube-nocookie.com/embed/" in url]
    assert wait_until(lambda: plays(live) or None, what="the play counted") == 1

    # Pressing play again in this view counts nothing more.
    page.evaluate("""() => {
        const video = document.querySelector("[data-video]").dataset;
        return fetch(video.playUrl, {method: "POST", body: new URLSearchParams({stamp: video.playStamp})});
    }""")
    assert plays(live) == 1
    # The one console error is that refused second play (409).
    assert [e for e in tab.errors if "409" not in e] == []


def test_a_self_hosted_video_loads_nothing_until_played_and_skip_reveals_the_form(
    video_tab: tuple[Tab, list[str]], live: LiveApp
) -> None:
    tab, outside = video_tab
    page = tab.page
    set_video(
        live,
        url=f"https://{MEDIA_HOST}/coffee.webm",
        poster=f"https://{MEDIA_HOST}/poster.jpg",
        reveal_form="after-video",
    )
    tab.open("/c/demo?lang=en", "self-hosted")
    video = page.locator("video")
    expect(video).to_have_attribute("preload", "none")
    expect(page.locator("#forward")).to_be_hidden()
    # Only the poster was asked for; the video itself waits for play.
    assert [url for url in outside if url.endswith(".webm")] == []

    tab_to(tab, "[data-skip-video]")
    page.keyboard.press("Enter")
    expect(page.locator("#forward")).to_be_visible()
    expect(page.locator("#forward-heading")).to_be_focused()
    tab.shot("skipped")

    # The video's own play event counts the play (the stub host has no real file to play).
    video.evaluate("element => element.dispatchEvent(new Event('play'))")
    assert wait_until(lambda: plays(live) or None, what="the play counted") == 1
    assert [e for e in tab.errors if MEDIA_HOST not in e] == []


def test_without_javascript_the_form_is_shown_and_play_is_a_link(browser: Browser, live: LiveApp) -> None:
    set_video(live, url="https://vimeo.com/76979871", reveal_form="after-video")
    context = browser.new_context(java_script_enabled=False, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(f"{live.url}/c/demo?lang=en")
        expect(page.locator("#forward")).to_be_visible()
        expect(page.locator("[data-skip-video]")).to_be_hidden()
        link = page.get_by_role("link", name="Watch the video on Vimeo: Our coffee")
        expect(link).to_have_attribute("href", "https://vimeo.com/76979871")
        assert page.locator("iframe").count() == 0
    finally:
        context.close()
