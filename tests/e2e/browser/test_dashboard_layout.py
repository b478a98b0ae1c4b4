"""The campaign dashboard and a forward's tree in a real browser, on a phone (390 x 844) and a
laptop (1366 x 900): no page-wide horizontal scrolling (tables scroll in their own box), chart
text at 12 px or more as rendered, and the tree folded and unfolded from the keyboard alone."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from engine.services.simulation import SimulationPlan, Simulator, prepare_campaign
from tests.e2e.browser.conftest import LiveApp, Tab
from tests.helpers import STAFF_PASSWORD

MARKETER = "marketer@staff.example"
SLUG = "spreading"

# The smallest chart text as the screen shows it: its font size times the SVG's scale.
SMALLEST_CHART_TEXT = """() => Math.min(...[...document.querySelectorAll('svg.chart text')].map(
    t => parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a))"""
PAGE_OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def seed_and_sign_in(tab: Tab, live: LiveApp) -> None:
    runtime = live.runtime
    prepare_campaign(runtime.db, SLUG)
    plan = SimulationPlan(slug=SLUG, people=300, k=0.9, days=14, seed=3)
    Simulator(runtime.db, runtime.tokens, runtime.hasher, runtime.limiter, plan).run()
    runtime.staff.create_user(MARKETER, "marketer", STAFF_PASSWORD)
    tab.open("/login", "login")
    tab.page.get_by_label("E-mail address").fill(MARKETER)
    tab.page.get_by_label("Password").fill(STAFF_PASSWORD)
    tab.page.get_by_role("button", name="Sign in").click()
    tab.page.wait_for_url(f"{live.url}/console")


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1366, 900)], ids=["phone", "laptop"])
def test_the_dashboard_fits_the_screen_and_its_charts_are_legible(
    tab: Tab, live: LiveApp, width: int, height: int
) -> None:
    page = tab.page
    page.set_viewport_size({"width": width, "height": height})
    seed_and_sign_in(tab, live)
    tab.open(f"/console/campaigns/{SLUG}/dashboard", f"dashboard-{width}")
    expect(page.get_by_role("heading", name="Is it spreading?")).to_be_visible()
    expect(page.get_by_role("heading", name="Who spreads it")).to_be_visible()
    assert page.locator("svg.chart").count() >= 4
    assert page.evaluate(PAGE_OVERFLOW) <= 0
    assert page.evaluate(SMALLEST_CHART_TEXT) >= 12
    # Unfolded, the wide tables scroll inside their own box when they do not fit.
    folded = page.locator("details.folded > summary")
    for index in range(folded.count()):
        folded.nth(index).click()
    tab.shot(f"dashboard-{width}-tables")
    assert page.evaluate(PAGE_OVERFLOW) <= 0
    # The first screen answers the question: K with its window, and who spreads it.
    expect(page.locator("dl.kpis .kpi").first).to_contain_text("days old")
    top = page.locator("section.who table tbody tr")
    assert top.count() >= 1

    top.first.get_by_role("link", name="Tree").click()
    page.wait_for_url(f"{live.url}/console/campaigns/{SLUG}/forwards/*")
    tab.shot(f"tree-{width}")
    assert page.evaluate(PAGE_OVERFLOW) <= 0
    tab.assert_no_errors()


def test_the_tree_folds_and_unfolds_from_the_keyboard(tab: Tab, live: LiveApp) -> None:
    page = tab.page
    seed_and_sign_in(tab, live)
    tab.open(f"/console/campaigns/{SLUG}/dashboard", "dashboard")
    page.locator("table.chains tbody tr").first.get_by_role("link", name="Tree").click()
    page.wait_for_url(f"{live.url}/console/campaigns/{SLUG}/forwards/*")
    root = page.locator("ul.forward-tree > li > details")
    expect(root).to_have_attribute("open", "")
    # From the last link above the tree, one Tab reaches the root's line; Enter folds it.
    page.get_by_role("link", name="this tree as JSON").focus()
    page.keyboard.press("Tab")
    expect(root.locator("> summary")).to_be_focused()
    page.keyboard.press("Enter")
    expect(root).not_to_have_attribute("open", "")
    tab.shot("folded")
    page.keyboard.press("Enter")
    expect(root).to_have_attribute("open", "")
    # A branch two levels down starts folded; Tab to it and Space unfolds it.
    deep = root.locator("details details").first
    if deep.count():
        expect(deep).not_to_have_attribute("open", "")
        summary = deep.locator("> summary")
        for _ in range(50):
            page.keyboard.press("Tab")
            if summary.evaluate("s => s === document.activeElement"):
                break
        expect(summary).to_be_focused()
        page.keyboard.press("Space")
        expect(deep).to_have_attribute("open", "")
    tab.shot("unfolded")
    tab.assert_no_errors()
