"""A referrer in a real browser: Anna forwards an offer that rewards referrers, opens her own page
from the thanks page, confirms her mobile number with the code the outbox shows, and sees her
friends counted (never named) and her rewards; then stops the messages with one click. No page
logs an error, a CSP violation included."""

from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlalchemy import select

from engine.models import Click, Consent, Forward
from engine.services.rewards import ProgramSettings, set_program
from tests.e2e.browser.conftest import LiveApp, Tab
from tests.helpers import US_CUSTOM_SMS, make_campaign

SLUG = "beans"


def test_a_referrer_confirms_her_number_and_follows_her_friends_on_her_own_page(tab: Tab, live: LiveApp) -> None:
    make_campaign(live.runtime.db, SLUG, policy_settings={**US_CUSTOM_SMS, "incentives": True}, coupon_mode="pool")
    set_program(live.runtime.db, SLUG, ProgramSettings(True, "a bag of beans"))
    page = tab.page

    # Anna forwards the offer to two friends by e-mail.
    tab.open(f"/c/{SLUG}", "landing")
    page.get_by_label("Your name").fill("Anna")
    page.locator("#friend-1").fill("bob@example.com")
    page.locator("#friend-2").fill("carla@example.com")
    page.get_by_role("button", name="Send to my friends").click()
    page.wait_for_url(f"**/c/{SLUG}/thanks")
    expect(page.locator("#referrer-offer")).to_contain_text("Follow your rewards")
    tab.shot("thanks")
    live.wait_for_outbox(2)

    # Her own page: counts, her personal link and its QR code; nothing asked of her yet.
    page.locator("#referrer-page-link").click()
    page.wait_for_url("**/r/*")
    own_page = page.url
    expect(page.locator('[data-count="reached"]')).to_have_text("2")
    expect(page.locator('[data-count="clicked"]')).to_have_text("0")
    expect(page.locator("#personal-link")).to_have_value(re.compile(rf"^{re.escape(live.url)}/f/"))
    expect(page.locator("figure.qr svg")).to_have_count(1)
    expect(page.locator("#rewards")).to_contain_text("a bag of beans")
    tab.shot("own-page")

    # She asks to follow her rewards by text; the code arrives (in the outbox).
    page.get_by_label("Your e-mail address or mobile number").fill("06 1234 5678")
    page.get_by_role("button", name=re.compile("^Send me a")).click()
    page.wait_for_url("**/code")
    tab.shot("code-form")
    (text,) = [m for m in live.wait_for_outbox(3) if m["channel"] == "sms"]
    assert text["to"] == "+31612345678"
    code = re.search(r"\b(\d{6})\b", text["text"])
    assert code

    # A wrong code first: refused, saying so; then the right one.
    page.get_by_label("Code", exact=True).fill("000000" if code.group(1) != "000000" else "111111")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("alert")).to_contain_text("not the code we sent")
    tab.shot("wrong-code")
    # The browser logs the refusal's status, which is the point here: that one, and nothing else.
    assert [e for e in tab.errors if "422 (UNPROCESSABLE ENTITY)" not in e] == []
    assert len(tab.errors) == 1
    tab.errors.clear()
    page.get_by_label("Code", exact=True).fill(code.group(1))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(re.compile(r".*/r/[^/]+\?confirmed=1$"))
    expect(page.locator("#following")).to_contain_text("+3161****78")
    tab.shot("confirmed")
    with live.runtime.db.reading() as session:
        (consent,) = session.scalars(select(Consent))
        assert (consent.purpose, consent.channel, consent.revoked_at) == ("rewards", "sms", None)

    # Bob opens his invitation: her page counts a click, and never says who.
    with live.runtime.db.transaction() as session:
        bob = session.scalars(select(Forward).where(Forward.channel == "email").order_by(Forward.id)).first()
        assert bob is not None
        session.add(Click(forward_id=bob.id, client_ip_hash="ip-bob"))
    tab.open(own_page, "after-a-click")
    expect(page.locator('[data-count="clicked"]')).to_have_text("1")
    expect(page.locator("main")).not_to_contain_text("bob@example.com")

    # One click stops the messages and forgets her number.
    page.get_by_role("button", name="Stop messages about my rewards").click()
    expect(page.get_by_role("status")).to_contain_text("will not message you about your rewards")
    tab.shot("stopped")
    with live.runtime.db.reading() as session:
        assert session.scalars(select(Consent)).one().revoked_at is not None

    tab.assert_no_errors()
