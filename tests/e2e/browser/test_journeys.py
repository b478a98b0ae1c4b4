"""Every journey of the people Fluister serves, walked on a phone (390x844, touch) and on a laptop
(1366x900): a consumer, a marketer, a compliance officer and an admin. On every page on the way,
form errors included, nothing overflows sideways (a wide table scrolls inside its own region,
never the page) and axe-core finds no WCAG 2.0/2.1 A or AA violation (the `Tab` checks each
page it keeps a screenshot of). Screenshots are kept under
test-artifacts/screenshots/test_<journey>-<viewport>/."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from engine.models import Contest, Forward
from engine.services.history import CLI
from engine.services.opt_out_log import OptOutRecord, append
from engine.services.rewards import ProgramSettings, set_program
from engine.services.variants import VariantInput, add_variant
from tests.e2e.browser.conftest import SCREENSHOTS, TIMEOUT_MS, LiveApp, Tab, _safe
from tests.e2e.browser.test_consumer_flow import message_to
from tests.helpers import STAFF_PASSWORD, US_CUSTOM_SMS, make_campaign, submission, unsubscribe_links

VIEWPORTS = {
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "has_touch": True,
        "device_scale_factor": 2,
    },
    "desktop": {"viewport": {"width": 1366, "height": 900}},
}
MARKETER, OFFICER, ADMIN = "marketer@staff.example", "officer@staff.example", "admin@staff.example"
NEW_CAMPAIGN = {
    "Slug": "autumn-tea",
    "Name (staff only)": "Autumn tea",
    "Offer title": "A free pot of tea at Thee & Co",
    "Offer description": "Show this at any Thee & Co and your first pot is on us.",
    "Brand name": "Thee & Co",
    "Sender email address": "offers@thee.example",
    "Postal address": "Herengracht 2, 1015 BZ Amsterdam, The Netherlands",
}
# The elements sticking out of a page wider than the screen (at most a few), or null. The width is
# the screen's: a phone's browser widens its window (zooms out) to a page too wide for it.
OVERFLOWING = """(width) => {
  if (document.documentElement.scrollWidth <= Math.min(width, window.innerWidth)) return null;
  const scrolls = e => ["auto", "scroll", "hidden", "clip"].includes(getComputedStyle(e).overflowX);
  const clipped = e => {
    for (let a = e.parentElement; a; a = a.parentElement) if (scrolls(a)) return true;
    return false;
  };
  const out = [...document.querySelectorAll("body *")]
    .filter(e => e.getBoundingClientRect().right > width + 1 && !clipped(e))
    .filter(e => !e.parentElement || e.parentElement.getBoundingClientRect().right <= width + 1);
  return out.slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "")
    + (e.className && typeof e.className === "string" ? "." + e.className.trim().split(/\\s+/).join(".") : "")
    + " (" + Math.round(e.getBoundingClientRect().right) + "px): " + (e.textContent || "").trim().slice(0, 40));
}"""


@pytest.fixture(params=list(VIEWPORTS))
def walker(browser: Browser, live: LiveApp, request: pytest.FixtureRequest) -> Iterator[Tab]:
    """A tab at the viewport of the test's parameter, in English."""
    folder = SCREENSHOTS / _safe(request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    context = browser.new_context(locale="en-US", **VIEWPORTS[request.param])  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    yield Tab(context.new_page(), live, folder)
    context.close()


def see(tab: Tab, step: str, path: str | None = None) -> None:
    """Open the page (or take the page as it is), keep its screenshot (and axe's verdict on it),
    and check it fits the screen's width."""
    if path is None:
        tab.shot(step)
    else:
        tab.open(path, step)
    viewport = tab.page.viewport_size
    assert viewport is not None
    sticking_out = tab.page.evaluate(OVERFLOWING, viewport["width"])
    assert sticking_out is None, f"{tab.page.url} ({step}) is wider than the screen: {sticking_out}"


def only_refusals(tab: Tab) -> None:
    """No console error but Chromium's note of a refused form's 422 (or a cap's 429)."""
    assert [e for e in tab.errors if "status of 422" not in e and "status of 429" not in e] == []


def test_consumer_journey(walker: Tab, live: LiveApp) -> None:
    tab, page = walker, walker.page
    see(tab, "landing", "/c/demo")

    # A refused form, its errors beside the fields; then sent.
    page.get_by_label("Your name").fill("Anna")
    page.locator("#friend-1").fill("nobody@")
    page.get_by_role("button", name="Send to my friends").click()
    expect(page.locator("#error-summary")).to_be_focused()
    see(tab, "form-refused")
    page.locator("#friend-1").fill("bob@example.com")
    page.get_by_role("button", name="Send to my friends").click()
    page.wait_for_url("**/c/demo/thanks")
    see(tab, "thanks")

    # Sharing the link herself.
    tab.open("/c/demo", "landing-again")
    page.get_by_role("button", name="Copy the link").click()
    expect(page.get_by_role("heading", name="Your link to share")).to_be_visible()
    see(tab, "share-link")

    # Bob's message in the outbox, and the link in it.
    (email,) = live.wait_for_outbox(1)
    see(tab, "outbox", "/dev/outbox")
    message_to(tab, "bob@example.com").locator(".text a[href*='/f/']").click()
    page.wait_for_url("**/c/demo")
    expect(page.locator(".referral")).to_be_visible()
    see(tab, "landing-from-the-link")

    # Bob unsubscribes, and undoes it.
    see(tab, "unsubscribe", unsubscribe_links(email["text"])[0])
    page.get_by_role("button", name="Never send me offers through friends").click()
    expect(page.get_by_role("heading", name="You're unsubscribed")).to_be_visible()
    see(tab, "unsubscribed")
    page.get_by_role("button", name="Undo").click()
    expect(page.get_by_role("heading", name="Your unsubscribe is undone")).to_be_visible()
    see(tab, "unsubscribe-undone")

    # A campaign that rewards referrers: Anna's own page, and following it (a wrong code first).
    make_campaign(live.runtime.db, "beans", policy_settings={**US_CUSTOM_SMS, "incentives": True}, coupon_mode="pool")
    set_program(live.runtime.db, "beans", ProgramSettings(True, "a bag of beans"))
    tab.open("/c/beans", "referrer-landing")
    page.get_by_label("Your name").fill("Anna")
    page.locator("#friend-1").fill("carla@example.com")
    page.get_by_role("button", name="Send to my friends").click()
    page.wait_for_url("**/c/beans/thanks")
    see(tab, "referrer-thanks")
    page.locator("#referrer-page-link").click()
    page.wait_for_url("**/r/*")
    see(tab, "referrer-page")
    page.get_by_label("Your e-mail address or mobile number").fill("06 1234 5678")
    page.get_by_role("button", name=re.compile("^Send me a")).click()
    page.wait_for_url("**/code")
    see(tab, "referrer-code")
    page.get_by_label("Code", exact=True).fill("000000")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("alert")).to_be_visible()
    see(tab, "referrer-wrong-code")

    # A cap reached: the form comes back as it was typed, with when it frees up.
    make_campaign(live.runtime.db, "tight", caps={"friends_per_sender_per_day": 1})
    for friend in ("dan@example.com", "eve@example.com"):
        tab.open("/c/tight", f"capped-landing-{friend[:3]}")
        page.get_by_label("Your name").fill("Anna")
        page.locator("#friend-1").fill(friend)
        page.get_by_role("button", name="Send to my friends").click()
    expect(page.locator("#friend-1")).to_have_value("eve@example.com")
    see(tab, "cap-reached")

    # A contest the campaign runs: announced on its landing page, its official rules on their own.
    prize = make_campaign(live.runtime.db, "prize", policy_settings={**US_CUSTOM_SMS, "incentives": True})
    now = live.runtime.clock.now()
    with live.runtime.db.transaction() as session:
        session.add(
            Contest(
                campaign_id=prize.id,
                title="Coffee for a year",
                rules="Open to everyone who confirmed their address on their own page. " * 3,
                metric="friends-reached",
                prizes=["Coffee for a year", "A bag of beans"],
                starts_at=now - timedelta(hours=1),
                ends_at=now + timedelta(days=7),
                time_zone="Europe/Amsterdam",
                created_by="ops",
            )
        )
    see(tab, "contest-landing", "/c/prize")
    page.get_by_role("link", name="Official rules").click()
    page.wait_for_url("**/c/prize/contest")
    see(tab, "contest-rules")
    only_refusals(tab)


def sign_in(tab: Tab, email: str) -> None:
    page = tab.page
    see(tab, f"login-{email.split('@')[0]}", "/login")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{tab.server.url}/console")


def sign_out(tab: Tab) -> None:
    tab.page.get_by_role("button", name="Sign out").click()
    tab.page.wait_for_url("**/login*")


def test_staff_journeys(walker: Tab, live: LiveApp) -> None:
    """A marketer, a compliance officer, then an admin, in turn in the same tab."""
    tab, page = walker, walker.page
    staff = live.runtime.staff
    for email, role in ((MARKETER, "marketer"), (OFFICER, "compliance"), (ADMIN, "admin")):
        staff.create_user(email, role, STAFF_PASSWORD)
    make_campaign(live.runtime.db, "beans", policy_settings={**US_CUSTOM_SMS, "incentives": True}, coupon_mode="pool")
    set_program(live.runtime.db, "beans", ProgramSettings(True, "a bag of beans"))
    # An experiment: its verdict's table on the Variants page.
    for name, wrapper in (("Plain offer", "plain"), ("A story", "story")):
        add_variant(live.runtime.db, "beans", VariantInput(name=name, weight=1, wrapper=wrapper), CLI)
    live.runtime.forwarding.submit("demo", submission("dora@example.com", sender_name="Anna", locale="en"))
    live.wait_for_outbox(1)
    with live.runtime.db.transaction() as session:
        append(session, OptOutRecord(contact_hash=f"{7:064x}", channel="email", scope="friends", source="link"))

    marketer(tab)
    sign_out(tab)
    compliance(tab)
    sign_out(tab)

    sign_in(tab, ADMIN)
    see(tab, "admin-users", "/console/users")
    see(tab, "admin-api-keys", "/console/api-keys")
    see(tab, "admin-unknown-messages", "/console/messages/unknown")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    only_refusals(tab)


def marketer(tab: Tab) -> None:
    page = tab.page
    see(tab, "login-refused-before", "/login")
    page.get_by_label("E-mail address").fill(MARKETER)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    see(tab, "login-refused")
    sign_in(tab, MARKETER)
    see(tab, "campaigns")

    page.get_by_role("link", name="New campaign").click()
    expect(page.get_by_role("heading", name="New campaign")).to_be_visible()
    see(tab, "new-campaign")
    page.get_by_role("button", name="Create draft").click()
    expect(page.locator("[aria-invalid=true]").first).to_be_visible()
    see(tab, "new-campaign-refused")
    for label, value in NEW_CAMPAIGN.items():
        page.get_by_label(label).fill(value)
    page.get_by_role("button", name="Create draft").click()
    page.wait_for_url("**/console/campaigns/autumn-tea")
    see(tab, "campaign-overview")
    see(tab, "campaign-edit", "/console/campaigns/autumn-tea/edit")
    see(tab, "templates", "/console/campaigns/autumn-tea/templates")
    see(tab, "coupons", "/console/campaigns/beans/coupons")
    see(tab, "preview", "/console/campaigns/demo/preview")
    see(tab, "share-card", "/console/campaigns/demo/share-card")
    see(tab, "dashboard", "/console/campaigns/demo/dashboard")
    see(tab, "rewards", "/console/campaigns/beans/rewards")
    see(tab, "webhooks", "/console/webhooks")
    # The campaigns list searched, a forward's tree, each cap's live usage, the A/B variants, the
    # contests (with a refused form), the e-mail logo and the copy of a campaign.
    see(tab, "campaigns-searched", "/console?q=demo")
    see(tab, "campaigns-archived", "/console?status=archived")
    with tab.server.runtime.db.reading() as session:
        forward = session.scalars(select(Forward.public_id).order_by(Forward.id)).first()
    see(tab, "forward-tree", f"/console/campaigns/demo/forwards/{forward}")
    see(tab, "cap-usage", "/console/campaigns/demo/usage")
    see(tab, "variants", "/console/campaigns/beans/variants")
    expect(page.get_by_role("heading", name="Which variant spreads furthest")).to_be_visible()
    expect(page.locator("#verdict-b")).to_contain_text("A story")
    see(tab, "contests", "/console/campaigns/beans/contests")
    page.get_by_role("button", name="Set the contest up").click()
    expect(page.locator("[aria-invalid=true]").first).to_be_visible()
    see(tab, "contest-refused")
    see(tab, "logo", "/console/campaigns/demo/logo")
    see(tab, "duplicate", "/console/campaigns/demo/duplicate")


def compliance(tab: Tab) -> None:
    page = tab.page
    sign_in(tab, OFFICER)
    see(tab, "compliance-console")
    see(tab, "opt-out-log", "/compliance/opt-outs")
    page.locator("table.data tbody tr").first.locator("td a").first.click()
    expect(page.get_by_role("heading", name=re.compile("^Opt-out log entry"))).to_be_visible()
    see(tab, "opt-out-entry")
    see(tab, "contact-search", "/compliance/contacts")
    page.get_by_label("E-mail address or phone number").fill("dora@example.com")
    page.get_by_role("button", name="Show the report").click()
    page.wait_for_url("**/compliance/contacts/*")
    see(tab, "contact-report")
