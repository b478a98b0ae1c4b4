"""Compliance staff in a real browser: a friend opts out through the unsubscribe page of the
email they got; an officer signs in, finds the opt-out by searching the contact, opens the entry,
downloads the log as CSV, and the contact report proves nothing was sent after the opt-out."""

from __future__ import annotations

import csv

import requests
from playwright.sync_api import expect

from engine.models import Message
from engine.services.opt_out_log import OptOutRecord, append
from tests.e2e.browser.conftest import Tab
from tests.e2e.live import LiveServer, one
from tests.helpers import (
    STAFF_PASSWORD,
    count,
    make_campaign,
    statuses,
    submission,
    unsubscribe_links,
    wait_until,
)

FRIEND = "dora@example.com"
OTHER_FRIEND = "erik@example.com"
OFFICER = "officer@staff.example"


def test_an_opt_out_is_found_by_contact_shown_and_exported(tab: Tab, live: LiveServer) -> None:
    page = tab.page
    live.runtime.staff.create_user(OFFICER, "compliance", STAFF_PASSWORD)

    # Dora and Erik get the demo offer from Anna. Erik's mail app unsubscribes him in one click (RFC 8058);
    # Dora uses the link in her email. Anna wrote in English (the demo speaks Dutch first).
    live.runtime.forwarding.submit("demo", submission(FRIEND, OTHER_FRIEND, sender_name="Anna", locale="en"))
    emails = {m["to"]: m for m in live.wait_for_outbox(2)}
    one_click = requests.post(
        one(unsubscribe_links(emails[OTHER_FRIEND]["text"])), data={"List-Unsubscribe": "One-Click"}, timeout=10
    )
    assert one_click.status_code == 200
    tab.open(one(unsubscribe_links(emails[FRIEND]["text"])), "unsubscribe-page")
    expect(page.get_by_role("heading", name="Why did I get this?")).to_be_visible()
    page.get_by_role("button", name="Never send me offers through friends").click()
    expect(page.get_by_role("heading", name="You're unsubscribed")).to_be_visible()
    tab.shot("unsubscribed")

    # Anna sends her another brand's offer: the message is held back, nothing reaches the outbox.
    make_campaign(live.runtime.db, "spring")
    live.runtime.forwarding.submit("spring", submission(FRIEND, sender_name="Anna"))
    wait_until(lambda: count(live.runtime.db, Message) == 3, what="the third message")
    assert sorted(statuses(live.runtime.db).values()) == ["sent", "sent", "suppressed"]
    assert len(live.outbox()) == 2

    # The officer signs in.
    tab.open("/login", "login")
    page.get_by_label("E-mail address").fill(OFFICER)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live.url}/console")
    expect(page.get_by_role("navigation", name="Console")).to_contain_text("compliance")
    tab.shot("console")

    # The opt-out log, searched by Dora's address: the address is hashed, never put in the URL.
    page.get_by_role("link", name="Opt-out log").click()
    page.wait_for_url(f"{live.url}/compliance/opt-outs")
    rows = page.locator("table.data tbody tr")
    expect(rows).to_have_count(2)
    tab.shot("opt-out-log")
    page.get_by_label("Contact").fill(FRIEND)
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/compliance/opt-outs?*contact=*")
    assert "dora" not in page.url
    expect(rows).to_have_count(1)
    cells = rows.first.locator("td")
    expect(cells.nth(2)).to_have_text("Opted out")
    expect(cells.nth(3)).to_have_text("email")
    expect(cells.nth(4)).to_have_text("Nothing sent through friends, in any campaign")
    expect(cells.nth(5)).to_have_text("Unsubscribe link in a message")
    expect(cells.nth(6)).to_have_text("demo")
    seq = cells.first.locator("a").inner_text()
    contact_hash = cells.nth(7).locator("a").get_attribute("title")
    assert contact_hash
    tab.shot("opt-out-log-searched")

    # The entry itself, in words, with its hashes; the stored record a click away.
    cells.first.locator("a").click()
    expect(page.get_by_role("heading", name=f"Opt-out log entry {seq}")).to_be_visible()
    entry = page.locator("#entry")
    expect(entry).to_contain_text(contact_hash)
    expect(entry.get_by_role("rowheader", name="Address of the device (hashed)")).to_be_visible()
    expect(entry.get_by_role("rowheader", name="Browser")).to_be_visible()
    expect(entry).not_to_contain_text("client_ip_hash")
    raw = page.locator(f"#raw-{seq}")
    expect(raw.get_by_role("rowheader", name="detail.user_agent")).to_be_hidden()
    tab.shot("opt-out-entry")
    raw.get_by_text("Raw record").click()
    expect(raw.get_by_role("rowheader", name="detail.client_ip_hash")).to_be_visible()
    expect(raw.get_by_role("row", name="source link")).to_be_visible()
    expect(raw.get_by_role("row", name="action opt-out")).to_be_visible()
    tab.shot("opt-out-entry-raw-record")
    page.go_back()
    expect(rows).to_have_count(1)

    # The search exported as CSV holds that entry, and only it.
    with page.expect_download() as downloading:
        page.get_by_role("link", name="Export these as CSV").click()
    download = downloading.value
    assert download.suggested_filename == "opt-outs.csv"
    exported = list(csv.DictReader(tab.keep(download, "opt-outs.csv").read_text(encoding="utf-8").splitlines()))
    assert [(r["seq"], r["action"], r["scope"], r["source"], r["campaign"]) for r in exported] == [
        (seq, "opt-out", "friends", "link", "demo")
    ]
    assert exported[0]["contact_hash"] == contact_hash
    assert FRIEND not in download.path().read_text(encoding="utf-8")

    # The contact report: the message sent before the opt-out, the one held back after it.
    page.get_by_role("link", name="Contact report").click()
    page.get_by_label("E-mail address or phone number").fill(FRIEND)
    page.get_by_role("button", name="Show the report").click()
    page.wait_for_url(f"{live.url}/compliance/contacts/{contact_hash}")
    expect(page.get_by_role("status")).to_have_text(
        "No message was sent to this contact after an opt-out that covered it."
    )
    messages = page.locator("table.data").first.locator("tbody tr")
    expect(messages).to_have_count(2)
    expect(messages.locator("td:nth-child(4)")).to_have_text(["sent", "not sent: opted out"], ignore_case=False)
    tab.shot("contact-report")

    tab.assert_no_errors()


def test_older_entries_of_the_log_load_in_place(tab: Tab, live: LiveServer) -> None:
    """With JavaScript, "Older entries" appends the next page of rows (htmx, static/vendor/htmx)
    instead of opening it: same URL, no page load, and the link moves on to the page after."""
    page = tab.page
    live.runtime.staff.create_user(OFFICER, "compliance", STAFF_PASSWORD)
    with live.runtime.db.transaction() as session:
        for n in range(57):
            append(session, OptOutRecord(contact_hash=f"{n:064x}", channel="email", scope="friends", source="link"))

    tab.open("/login?next=/compliance/opt-outs", "login")
    page.get_by_label("E-mail address").fill(OFFICER)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live.url}/compliance/opt-outs")
    rows = page.locator("#opt-out-log tbody tr")
    expect(rows).to_have_count(50)
    tab.shot("opt-out-log-first-page")

    log_url = page.url
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    with page.expect_request(lambda request: "before=" in request.url) as requested:
        page.get_by_role("link", name="Older entries").click()
    request = requested.value
    assert request.resource_type in {"xhr", "fetch"} and request.headers.get("hx-request") == "true"
    expect(rows).to_have_count(57)
    expect(rows.first.locator("td").first).to_have_text("57")
    expect(rows.last.locator("td").first).to_have_text("1")
    expect(page.get_by_role("link", name="Older entries")).to_have_count(0)  # the last page has none
    assert page.url == log_url
    assert navigations == []
    tab.shot("opt-out-log-older-appended")

    tab.assert_no_errors()
