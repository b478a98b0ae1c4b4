"""A marketer in a real browser finds a campaign in the list, duplicates it (a wrong slug is
refused beside its field), archives the copy and brings it back; on a phone the list scrolls
inside its own frame and the page does not."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from engine.models import CampaignStatus
from tests.e2e.browser.conftest import LiveApp, Tab
from tests.helpers import STAFF_PASSWORD, make_campaign

MARKETER = "marketer@staff.example"
WCAG_21_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


def assert_accessible(page: Page, *, leave_out: tuple[str, ...] = ()) -> None:
    """axe-core finds no WCAG 2.1 A or AA violation on the page as it is shown (but in `leave_out`)."""
    context = {"exclude": [[selector] for selector in leave_out]} if leave_out else None
    results = Axe().run(page, context=context, options=WCAG_21_AA)
    assert results.violations_count == 0, results.generate_report()


def test_search_duplicate_and_archive_from_the_list(tab: Tab, live: LiveApp) -> None:
    page = tab.page
    make_campaign(live.runtime.db, "spring", name="Spring sale", brand_name="Acme")
    make_campaign(live.runtime.db, "tea", name="Autumn tea", brand_name="Thee & Co", status=CampaignStatus.ENDED)
    live.runtime.staff.create_user(MARKETER, "marketer", STAFF_PASSWORD)
    tab.open("/login", "login")
    page.get_by_label("E-mail address").fill(MARKETER)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live.url}/console")
    rows = page.locator("table.campaigns tbody tr")
    expect(rows).to_have_count(3)  # the seeded demo among them
    expect(rows.filter(has_text="Spring sale").locator(".badge")).to_have_text("Live")
    expect(page.get_by_role("img", name="0 forwards in the last 30 days, at most 0 a day").first).to_be_visible()
    tab.shot("list")
    assert_accessible(page)

    # Search by brand; then a search that finds nothing says so.
    page.get_by_label("Search").fill("thee")
    page.get_by_role("button", name="Find").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Autumn tea")
    page.get_by_label("Search").fill("no such thing")
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_role("status")).to_contain_text("No campaign matches this search.")
    tab.shot("nothing-found")
    page.get_by_role("link", name="Show every campaign").click()
    expect(rows).to_have_count(3)

    # Duplicate the ended campaign: a slug that is taken is refused beside the field.
    rows.filter(has_text="Autumn tea").get_by_role("link", name="Duplicate").click()
    expect(page.get_by_role("heading", name="Duplicate Autumn tea")).to_be_visible()
    slug = page.get_by_label("Slug of the copy")
    slug.fill("spring")
    page.get_by_role("button", name="Create the copy").click()
    expect(slug).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#slug-error")).to_contain_text("already a campaign spring")
    tab.shot("duplicate-refused")
    assert_accessible(page)
    slug.fill("winter-tea")
    page.get_by_role("button", name="Create the copy").click()
    page.wait_for_url(f"{live.url}/console/campaigns/winter-tea")
    expect(page.get_by_role("status")).to_contain_text("a copy of tea")
    expect(page.locator("[data-status]").first).to_have_text("draft")
    nav = page.get_by_role("navigation", name="Pages of this campaign")
    expect(nav.get_by_role("link", name="Overview")).to_have_attribute("aria-current", "page")
    tab.shot("copy")
    # The overview's own confirmation list (<ul role="status">, older than this page's navigation
    # and actions) is another change's to fix.
    assert_accessible(page, leave_out=("ul.stored",))

    # Archive the copy from the list: it leaves the list, and the archive filter shows it.
    page.get_by_role("link", name="Campaigns", exact=True).click()
    rows.filter(has_text="Autumn tea (copy)").get_by_role("button", name="Archive").click()
    expect(page.get_by_role("status")).to_contain_text("Campaign winter-tea archived.")
    expect(rows.filter(has_text="Autumn tea (copy)")).to_have_count(0)
    page.get_by_label("Show").select_option(label="Archived")
    page.get_by_role("button", name="Find").click()
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".badge")).to_have_text("Archived")
    tab.shot("archived")
    assert_accessible(page)
    rows.first.get_by_role("button", name="Unarchive").click()
    # Back on the list as it was shown: the archive, empty now.
    expect(page.get_by_role("status").first).to_contain_text("Campaign winter-tea is out of the archive.")
    expect(page.get_by_label("Show")).to_have_value("archived")
    expect(rows).to_have_count(0)
    page.get_by_label("Show").select_option(label="All but archived")
    page.get_by_role("button", name="Find").click()
    expect(rows.filter(has_text="Autumn tea (copy)")).to_have_count(1)

    # On a phone the page keeps its width; the table scrolls inside its own frame.
    page.set_viewport_size({"width": 390, "height": 844})
    tab.open("/console", "phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert_accessible(page)
    tab.open("/console/campaigns/winter-tea/templates", "templates-on-a-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert_accessible(page)
    # The refused copy was answered 422, which the browser logs; nothing else went wrong.
    assert [error for error in tab.errors if "status of 422" not in error] == []
