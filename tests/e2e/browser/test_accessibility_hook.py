"""The accessibility check of every page the browser tests show (tests/e2e/browser/accessibility.py)
really runs: a page of ours with an unlabeled input, under the app's own strict
Content-Security-Policy, is reported rule by rule, with the page and the step; on a brand's page
only what our embed puts there, and our frame, are ours to judge."""

from __future__ import annotations

import requests
from playwright.sync_api import Route, expect

from tests.e2e.browser.accessibility import report
from tests.e2e.browser.conftest import LiveApp, Tab

BROKEN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Broken</title></head>
<body><main><h1>Broken</h1>
<form><input type="text" name="nameless"></form>
<p id="ran">no script ran</p>
<script>document.getElementById("ran").textContent = "an inline script ran";</script>
</main></body></html>"""


def _serve(body: str, policy: str | None = None) -> object:
    headers = {"Content-Security-Policy": policy} if policy else {}

    def fulfil(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html; charset=utf-8", headers=headers, body=body)

    return fulfil


def test_a_page_of_ours_breaking_a_rule_under_our_csp_is_reported(tab: Tab, live: LiveApp) -> None:
    policy = requests.get(f"{live.url}/c/demo", timeout=10).headers["Content-Security-Policy"]
    script_src = next(d for d in policy.split(";") if d.split()[0] == "script-src")
    assert "unsafe-eval" not in script_src and "unsafe-inline" not in script_src
    tab.page.route(f"{live.url}/broken", _serve(BROKEN, policy))
    tab.open("/broken", "broken-page")

    # The policy held (the inline script was refused), and axe ran all the same.
    assert tab.page.locator("#ran").inner_text() == "no script ran"
    assert any("Content Security Policy" in error for error in tab.errors)
    rules = {v.rule: v for v in tab.violations}
    assert "label" in rules, report(tab.violations)
    unlabeled = rules["label"]
    assert (unlabeled.impact, unlabeled.target, unlabeled.url, unlabeled.step) == (
        "critical",
        "input",
        f"{live.url}/broken",
        "broken-page",
    )
    assert "label (critical)" in report(tab.violations)
    assert f"input  on {live.url}/broken  at step 'broken-page'" in report(tab.violations)
    tab.violations.clear()  # found as it should be: this test passes


def test_a_brands_page_without_our_embed_is_not_judged(tab: Tab, live: LiveApp) -> None:
    tab.page.route("http://brand.example/", _serve(BROKEN))
    tab.open("http://brand.example/", "brand-page")
    assert tab.violations == []


def test_on_a_brands_page_what_we_put_there_and_our_frame_are_judged(tab: Tab, live: LiveApp) -> None:
    """The brand's own unlabeled input is theirs; the one in our place (div.fluister, where embed.js
    puts the button and the dialog) and the one in our frame are ours."""
    host = BROKEN.replace(
        "</main>",
        f'</main><div class="fluister"><input type="text" name="ours"><iframe title="Ours" src="{live.url}/broken">'
        "</iframe></div>",
    )
    tab.page.route("http://brand.example/", _serve(host))
    tab.page.route(f"{live.url}/broken", _serve(BROKEN))
    tab.open("http://brand.example/", "brand-page-with-our-embed")
    expect(tab.page.frame_locator("iframe").locator("h1")).to_have_text("Broken")
    found = sorted((v.rule, v.target, v.url) for v in tab.violations)
    assert found == [
        ("label", "input", f"{live.url}/broken"),
        ("label", 'input[name="ours"]', "http://brand.example/"),
    ], report(tab.violations)
    tab.violations.clear()


def test_a_page_that_keeps_the_rules_passes(tab: Tab, live: LiveApp) -> None:
    tab.open("/login", "login")
    assert tab.violations == [], report(tab.violations)
    # The check did run there: axe-core is in the page, under the app's policy.
    assert tab.page.evaluate("typeof window.axe") == "object"
