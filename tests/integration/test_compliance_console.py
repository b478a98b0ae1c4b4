"""The compliance console as compliance staff use it: the opt-out log with its filters, an
entry's details, the CSV export, and the per-contact report that proves no opt-out was ignored."""

from __future__ import annotations

import csv
import io
import re
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import insert, select, update

from engine.db import utcnow
from engine.models import (
    Message,
    MessageStatus,
    OptOutAction,
    OptOutEntry,
    OptOutLogHead,
    SuppressionScope,
    SuppressionSource,
)
from engine.runtime import Runtime
from engine.services.opt_out_log import GENESIS, OptOutRecord, append, entry_digest
from engine.tokens import Purpose
from engine.transports.memory import MemoryTransport
from tests.helpers import csrf_token, make_campaign, staff_client, submission, visible_text


def unsubscribe_token(runtime: Runtime, message_id: int) -> str:
    with runtime.db.reading() as session:
        return runtime.tokens.sign(Purpose.UNSUBSCRIBE, session.get(Message, message_id).public_id)


def send_and_opt_out(
    runtime: Runtime, slug: str, friend: str, scope: SuppressionScope, source: SuppressionSource
) -> int:
    receipt = runtime.forwarding.submit(slug, submission(friend))
    runtime.delivery.deliver(receipt.message_ids)
    runtime.suppression.unsubscribe(unsubscribe_token(runtime, receipt.message_ids[0]), scope, source)
    return receipt.message_ids[0]


@pytest.fixture
def history(runtime: Runtime, campaign, transport: MemoryTransport) -> Runtime:  # type: ignore[no-untyped-def]
    """Three opt-outs: Bob from spring by link, Carol everywhere by one-click, Dan (a text) from autumn."""
    make_campaign(runtime.db, "autumn")
    send_and_opt_out(runtime, "spring", "bob@example.com", SuppressionScope.CAMPAIGN, SuppressionSource.LINK)
    send_and_opt_out(runtime, "spring", "carol@example.com", SuppressionScope.FRIENDS, SuppressionSource.ONE_CLICK)
    send_and_opt_out(runtime, "autumn", "+31612345678", SuppressionScope.FRIENDS, SuppressionSource.LINK)
    return runtime


def test_only_compliance_staff_and_admins_see_the_log(app: Flask, history: Runtime) -> None:
    assert app.test_client().get("/compliance/opt-outs").status_code == 302  # to /login
    assert staff_client(app, "marketer").get("/compliance/opt-outs").status_code == 403
    assert staff_client(app, "marketer", "m2@staff.example").get("/compliance/opt-outs.csv").status_code == 403
    for allowed in ("compliance", "admin"):
        assert staff_client(app, allowed).get("/compliance/opt-outs").status_code == 200


def listed(page_html: str) -> list[tuple[str, ...]]:
    """The log table's rows as (#, action, channel, scope, source, campaign)."""
    body = re.search(r"<tbody>(.*?)</tbody>", page_html, re.DOTALL)
    if body is None:
        return []
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.DOTALL):
        cells = [visible_text(cell) for cell in re.findall(r"<td>(.*?)</td>", row, re.DOTALL)]
        rows.append((cells[0], *cells[2:7]))
    return rows


FRIENDS = "Nothing sent through friends, in any campaign"


def test_the_log_lists_every_opt_out_newest_first_and_filters_it(app: Flask, history: Runtime) -> None:
    client = staff_client(app, "compliance")
    everything = client.get("/compliance/opt-outs")
    assert listed(everything.text) == [
        ("3", "Opted out", "sms", FRIENDS, "Unsubscribe link in a message", "autumn"),
        ("2", "Opted out", "email", FRIENDS, "One-click unsubscribe (the mail program's button)", "spring"),
        ("1", "Opted out", "email", "Nothing from this campaign", "Unsubscribe link in a message", "spring"),
    ]
    assert "bob@example.com" not in everything.text  # contacts appear as hashes only

    def seqs(query: str) -> list[str]:
        return [row[0] for row in listed(client.get(f"/compliance/opt-outs?{query}").text)]

    assert seqs("source=one-click") == ["2"]
    assert seqs("source=link") == ["3", "1"]
    assert seqs("channel=sms") == ["3"]
    assert seqs("campaign=spring&channel=email&source=link") == ["1"]
    today = history.clock.now().date()  # the entries are stamped on the app's clock
    assert seqs(f"to={today - timedelta(days=1)}") == []
    assert seqs(f"from={today}&to={today}") == ["3", "2", "1"]


def test_the_log_pages_back_through_older_entries(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    for n in range(53):
        send_and_opt_out(runtime, "spring", f"p{n}@example.com", SuppressionScope.FRIENDS, SuppressionSource.LINK)
    client = staff_client(app, "compliance")
    first = client.get("/compliance/opt-outs?channel=email")
    assert [row[0] for row in listed(first.text)] == [str(n) for n in range(53, 3, -1)]
    older = re.search(r'href="([^"]*before=4[^"]*)"', first.text)
    assert older is not None and "channel=email" in older.group(1)
    second = client.get(older.group(1).replace("&amp;", "&"))
    assert [row[0] for row in listed(second.text)] == ["3", "2", "1"]
    assert "Older entries" not in second.text


def test_searching_by_contact_keeps_the_contact_out_of_urls(app: Flask, history: Runtime) -> None:
    client = staff_client(app, "compliance")
    page = client.get("/compliance/opt-outs")
    found = client.post(
        "/compliance/opt-outs", data={"contact": " Carol@Example.com ", "csrf_token": csrf_token(page.text)}
    )
    assert found.status_code == 303
    assert "carol" not in found.headers["Location"].lower()
    assert [row[0] for row in listed(client.get(found.headers["Location"]).text)] == ["2"]
    # A phone number, spelled as people do; and never in a link, where access logs keep it.
    sms = client.post("/compliance/opt-outs", data={"contact": "+31 6 12345678", "csrf_token": csrf_token(page.text)})
    assert [row[0] for row in listed(client.get(sms.headers["Location"]).text)] == ["3"]
    for route in ("/compliance/opt-outs", "/compliance/opt-outs.csv"):
        refused = client.get(route, query_string={"contact": "carol@example.com"})
        assert refused.status_code == 400
        assert "carol" not in refused.text


@pytest.mark.parametrize(
    ("query", "complaint"),
    [
        ("from=yesterday", "From must be a date"),
        ("from=2026-12-02&to=2026-12-01", "the From date is after the To date"),
        ("channel=fax", "unknown channel"),
        ("source=rumour", "unknown source"),
        ("contact=not-a-contact", "search for a contact with the form"),
        ("to=9999-12-31", "To must be between"),
        ("from=0001-01-01", "From must be between"),
        ("campaign=%00", "no campaign can have that name"),
    ],
)
def test_bad_filters_are_explained_not_crashed_on(app: Flask, history: Runtime, query: str, complaint: str) -> None:
    client = staff_client(app, "compliance")
    page = client.get(f"/compliance/opt-outs?{query}")
    assert page.status_code == 400
    assert complaint in page.text
    export = client.get(f"/compliance/opt-outs.csv?{query}")
    assert export.status_code == 400


def test_an_entry_shows_its_details_and_its_place_in_the_chain(app: Flask, history: Runtime) -> None:
    client = staff_client(app, "compliance")
    with history.db.reading() as session:
        first = session.scalars(select(OptOutEntry).order_by(OptOutEntry.seq)).first()
    page = client.get(f"/compliance/opt-outs/{first.seq}")
    assert page.status_code == 200
    assert first.entry_hash in page.text and "0" * 64 in page.text
    assert "changed after it was written" not in page.text
    assert client.get("/compliance/opt-outs/999").status_code == 404
    assert client.get(f"/compliance/opt-outs/{10**20}").status_code == 404
    assert client.get(f"/compliance/opt-outs?before={10**20}").status_code == 200


def test_the_csv_export_holds_the_filtered_entries_in_log_order(app: Flask, history: Runtime) -> None:
    client = staff_client(app, "compliance")
    export = client.get("/compliance/opt-outs.csv?channel=email")
    assert export.status_code == 200
    assert export.mimetype == "text/csv"
    assert "attachment" in export.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [(r["seq"], r["source"], r["campaign"], r["scope"]) for r in rows] == [
        ("1", "link", "spring", "campaign"),
        ("2", "one-click", "spring", "friends"),
    ]
    assert all(len(r["contact_hash"]) == 64 for r in rows)


def test_the_contact_report_shows_messages_opt_outs_and_that_none_came_after(app: Flask, history: Runtime) -> None:
    client = staff_client(app, "compliance")
    page = client.get("/compliance/contacts")
    found = client.post(
        "/compliance/contacts", data={"contact": "bob@example.com", "csrf_token": csrf_token(page.text)}
    )
    assert found.status_code == 303 and "bob" not in found.headers["Location"]
    report = client.get(found.headers["Location"])
    text = visible_text(report.text)
    assert "No message was sent to this contact after an opt-out that covered it." in text
    assert "Custom rules set by an admin, version 1" in text  # the policy that allowed the message
    assert "Nothing from this campaign (spring), Unsubscribe link in a message" in text  # in force now


def test_the_contact_report_flags_a_message_sent_after_an_opt_out(app: Flask, history: Runtime) -> None:
    # Bob opted out of spring; a message of spring reaching him afterwards must show up.
    # (Written by hand: the engine itself refuses to send it, as other tests prove.)
    later = history.forwarding.submit("spring", submission("bob@example.com", sender_name="Eve"))
    assert later.message_ids == ()  # already invited: nothing queued
    with history.db.transaction() as session:
        bob_message = session.scalars(select(Message).order_by(Message.id)).first()
        session.execute(
            update(Message)
            .where(Message.id == bob_message.id)
            .values(status=MessageStatus.SENT, sent_at=utcnow() + timedelta(minutes=5))
        )
    client = staff_client(app, "compliance")
    page = client.get("/compliance/contacts")
    found = client.post(
        "/compliance/contacts", data={"contact": "bob@example.com", "csrf_token": csrf_token(page.text)}
    )
    text = visible_text(client.get(found.headers["Location"]).text)
    assert "1 message was sent after an opt-out that covered it." in text
    assert "yes, entry 1" in text


def test_a_contact_search_that_is_not_a_contact_is_a_form_error(app: Flask, history: Runtime) -> None:
    client = staff_client(app, "compliance")
    page = client.get("/compliance/contacts")
    answer = client.post("/compliance/contacts", data={"contact": "<script>", "csrf_token": csrf_token(page.text)})
    assert answer.status_code == 400
    assert "not an e-mail address or a phone number" in answer.text
    assert client.get("/compliance/contacts/not-a-hash").status_code == 404


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_export_of_100_000_entries_streams_in_constant_memory(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    total = 100_000
    write_log(runtime, campaign.id, total)
    client = staff_client(app, "compliance")
    response = client.get("/compliance/opt-outs.csv", buffered=False)
    assert response.status_code == 200
    tracemalloc.start()
    try:
        size = lines = 0
        for chunk in response.response:
            size += len(chunk)
            lines += chunk.count(b"\r\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        response.close()
    assert lines == total + 1  # and the header
    # The whole file is some 27 MB; the server never held more than a few chunks of it
    # (about 3 MB here, whatever the length of the log).
    assert size > 20_000_000
    assert peak < 6_000_000, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB export"


def write_log(runtime: Runtime, campaign_id: int, total: int) -> None:
    """A long, valid chain, written in bulk (appending one by one would take minutes)."""
    prev, now, batch = GENESIS, utcnow(), []
    with runtime.db.transaction() as session:
        for seq in range(1, total + 1):
            entry = OptOutEntry(
                seq=seq,
                action="opt-out",
                contact_hash=f"{seq:064x}",
                channel="email",
                scope="friends",
                campaign_id=campaign_id,
                message_id=None,
                source="link",
                detail={"ip": f"{seq:032x}"},
                created_at=now,
                prev_hash=prev,
            )
            entry.entry_hash = prev = entry_digest(entry)
            batch.append({c.key: getattr(entry, c.key) for c in OptOutEntry.__table__.columns if c.key != "id"})
            if len(batch) == 5000:
                session.execute(insert(OptOutEntry), batch)
                batch = []
        session.add(OptOutLogHead(id=1, seq=total, entry_hash=prev))


def test_an_entry_speaks_in_words_in_the_readers_zone_with_its_raw_record_a_click_away(
    app: Flask, runtime: Runtime
) -> None:
    at = datetime(2026, 6, 3, 21, 30, 5, tzinfo=UTC)  # 23:30:05 in Amsterdam (CEST)
    detail = {"client_ip_hash": "f" * 64, "user_agent": "Mozilla/5.0 (iPhone)"}
    with runtime.db.transaction() as session:
        record = OptOutRecord("a" * 64, "email", "global", "one-click", OptOutAction.OPT_OUT, detail=detail)
        seq = append(session, record, now=at).seq
    client = staff_client(app, "compliance")
    page = client.get("/account")
    client.post("/account/preferences", data={"csrf_token": csrf_token(page.text), "time_zone": "Europe/Amsterdam"})

    entry = client.get(f"/compliance/opt-outs/{seq}").text
    words = re.search(r'<table class="data" id="entry">(.*?)</table>', entry, re.S)
    assert words is not None
    labelled = visible_text(words.group(1))
    assert "Address of the device (hashed) " + "f" * 64 in labelled
    assert "Browser Mozilla/5.0 (iPhone)" in labelled
    assert "When (Europe/Amsterdam) Jun 3, 2026, 11:30:05" in labelled
    assert "One-click unsubscribe (the mail program's button)" in labelled and "Nothing from this brand" in labelled
    assert "client_ip_hash" not in labelled and "2026-06-03T21:30:05" not in labelled

    raw = re.search(r'<details class="raw-record" id="raw-\d+">(.*?)</details>', entry, re.S)
    assert raw is not None
    record_text = visible_text(raw.group(1))
    assert "Raw record" in record_text
    assert (
        "detail.client_ip_hash " + "f" * 64 in record_text and "detail.user_agent Mozilla/5.0 (iPhone)" in record_text
    )
    assert "created_at 2026-06-03T21:30:05Z" in record_text and "source one-click" in record_text

    report = client.get(f"/compliance/contacts/{'a' * 64}").text
    assert "One-click unsubscribe (the mail program's button)" in visible_text(report)
    assert 'id="raw-opt-outs"' in report and "2026-06-03T21:30:05Z" in report


def test_exports_keep_the_stored_field_names(app: Flask, runtime: Runtime) -> None:
    with runtime.db.transaction() as session:
        append(session, OptOutRecord("a" * 64, "email", "global", "one-click", OptOutAction.OPT_OUT))
    exported = staff_client(app, "compliance").get("/compliance/opt-outs.csv").text
    header, row = exported.splitlines()[:2]
    assert header.split(",")[:6] == ["seq", "created_at", "action", "channel", "scope", "source"]
    assert ",opt-out,email,global,one-click," in row
