"""Coupons: codes loaded from a CSV or generated, one per friend, shown in their message and on
the landing page they reach, and redeemed once through the API.

What a marketer, a friend and a shop notice, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import re
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine import create_app
from engine.contacts import parse_contact
from engine.ids import new_public_id
from engine.models import Campaign, Coupon, Forward, Redemption, SuppressionScope, SuppressionSource
from engine.runtime import Runtime
from engine.services import coupon_imports
from engine.services.coupon_imports import IMPORTS_FOLDER, PROGRESS_KEY
from engine.services.coupons import (
    CouponFileRefused,
    CouponMode,
    CouponsNotAllowed,
    assign_codes,
    coupon_counts,
    generate_codes,
    import_codes,
    set_mode,
)
from engine.services.suppression import suppress_contact
from engine.transports import Transports
from engine.transports.memory import BatchingMemoryTransport, MemoryTransport
from engine.web.console.coupons import wait_for_imports
from tests.helpers import (
    US_CUSTOM_SMS,
    copy_button,
    csrf_token,
    make_campaign,
    runtime_of,
    staff_client,
    static_path,
    submission,
    tracked_links,
)

# The test campaign's custom policy, but with incentives: coupons are allowed.
WITH_INCENTIVES = {**US_CUSTOM_SMS, "incentives": True}


@pytest.fixture
def shop(runtime: Runtime) -> Campaign:
    return make_campaign(runtime.db, "spring", policy_settings=WITH_INCENTIVES, coupon_mode="pool")


def load(runtime: Runtime, text: str, slug: str = "spring"):  # type: ignore[no-untyped-def]
    return import_codes(runtime.db, slug, io.StringIO(text))


def code_of(runtime: Runtime, forward_id: int) -> str | None:
    with runtime.db.reading() as session:
        return session.scalar(select(Coupon.code).where(Coupon.forward_id == forward_id))


def email_to(transport: MemoryTransport, address: str):  # type: ignore[no-untyped-def]
    (email,) = [e for e in transport.emails if e.to == address]
    return email


# -- importing -------------------------------------------------------------------------------------


def test_a_csv_with_a_code_column_is_imported_with_duplicates_and_bad_rows_counted(runtime: Runtime, shop) -> None:  # type: ignore[no-untyped-def]
    report = load(
        runtime,
        "order,code,note\n"  # line 1: the header names the column
        "1,AAA-1,first\n"
        "2, BBB-2 ,trimmed\n"
        "3,AAA-1,again\n"  # line 4: repeated in the file
        "4,TEN OFF,space\n"  # line 5: bad
        "\n"  # line 6: blank, ignored
        "5,,empty\n"  # line 7: bad
        "6,CCC-3,ok\n",
    )
    assert (report.imported, report.duplicates_in_file, report.already_there, report.bad) == (3, 1, 0, 2)
    assert [(bad.line, "space" in bad.reason) for bad in report.bad_rows] == [(5, True), (7, False)]
    assert "code" in report.bad_rows[1].reason

    # Loaded again with one new code: the others are already there, nothing twice.
    again = load(runtime, "code\nAAA-1\nBBB-2\nDDD-4\n")
    assert (again.imported, again.already_there, again.duplicates_in_file) == (1, 2, 0)
    counts = coupon_counts(runtime.db, "spring")
    assert (counts.total, counts.assigned, counts.available) == (4, 0, 4)


def test_a_single_unnamed_column_is_a_list_of_codes(runtime: Runtime, shop) -> None:  # type: ignore[no-untyped-def]
    report = load(runtime, "\ufeffAAA\nBBB,\nCCC,extra\n" + "X" * 65 + "\n")
    assert report.imported == 2
    assert [bad.line for bad in report.bad_rows] == [3, 4]
    assert "more than one column" in report.bad_rows[0].reason
    assert "longer than 64" in report.bad_rows[1].reason


def test_only_the_first_twenty_bad_rows_are_listed_but_all_are_counted(runtime: Runtime, shop) -> None:  # type: ignore[no-untyped-def]
    report = load(runtime, "code\n" + "bad code\n" * 30 + "GOOD\n")
    assert (report.bad, len(report.bad_rows), report.imported) == (30, 20, 1)
    assert [bad.line for bad in report.bad_rows] == list(range(2, 22))


def test_a_file_with_columns_but_no_code_column_is_refused_whole(runtime: Runtime, shop) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CouponFileRefused, match="none is named `code`"):
        load(runtime, "order,coupon\n1,AAA\n")
    assert coupon_counts(runtime.db, "spring").total == 0


def test_a_large_file_streams_in_batches_with_little_memory(runtime: Runtime, shop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = 200_000
    path = tmp_path / "codes.csv"
    with path.open("w") as out:
        out.write("code\n")
        for n in range(rows):
            out.write(f"SPRING-{n:08d}-{'X' * 24}\n")  # 41 characters: 8 MB of codes, ~20 MB as Python strings
    seen: list[int] = []
    tracemalloc.start()
    try:
        with path.open(newline="") as source:
            report = import_codes(runtime.db, "spring", source, progress=seen.append)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.imported == rows
    assert peak < 4 * 1024 * 1024, f"peak {peak:,} bytes: the file was held in memory"
    assert seen == sorted(seen) and seen[-1] == rows + 1 and len(seen) > 100
    assert coupon_counts(runtime.db, "spring").total == rows


# -- the policy ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy", [{"policy_name": "eu-strict", "channels": ["email"]}, {"policy_settings": US_CUSTOM_SMS}]
)
def test_a_policy_without_incentives_refuses_coupons_everywhere(runtime: Runtime, policy: dict[str, Any]) -> None:
    make_campaign(runtime.db, "strict", **policy)
    with pytest.raises(CouponsNotAllowed, match="does not allow incentives"):
        set_mode(runtime.db, "strict", CouponMode.POOL)
    with pytest.raises(CouponsNotAllowed, match="does not allow incentives"):
        load(runtime, "code\nAAA\n", slug="strict")
    with pytest.raises(CouponsNotAllowed, match="does not allow incentives"):
        generate_codes(runtime.db, "strict", 10)
    set_mode(runtime.db, "strict", CouponMode.NONE)  # switching off is always allowed
    counts = coupon_counts(runtime.db, "strict")
    assert (counts.total, counts.mode, counts.refusal is not None) == (0, "none", True)


def test_codes_are_not_handed_out_once_the_policy_forbids_incentives(
    runtime: Runtime, transport: MemoryTransport
) -> None:
    # Coupons switched on, then the policy changed to one without incentives: friends get no code.
    make_campaign(runtime.db, "spring", policy_settings=WITH_INCENTIVES, coupon_mode="pool")
    load(runtime, "code\nAAA\n")
    with runtime.db.transaction() as session:
        session.scalars(select(Campaign)).one().policy_settings = US_CUSTOM_SMS
    receipt = runtime.forwarding.submit("spring", submission("bob@example.com"))
    runtime.delivery.deliver(receipt.message_ids)
    assert "AAA" not in email_to(transport, "bob@example.com").text
    assert coupon_counts(runtime.db, "spring").assigned == 0


# -- friends get their codes -----------------------------------------------------------------------


def test_each_friend_gets_one_code_in_their_messages(runtime: Runtime, shop, transport: MemoryTransport) -> None:  # type: ignore[no-untyped-def]
    load(runtime, "code\nAAA\nBBB\nCCC\n")
    receipt = runtime.forwarding.submit("spring", submission("bob@example.com", "carol@example.com", "06 12345678"))
    runtime.delivery.deliver(receipt.message_ids)
    codes = {code_of(runtime, forward_id) for forward_id in receipt.forward_ids}
    assert codes == {"AAA", "BBB", "CCC"}
    for forward_id in receipt.forward_ids:
        with runtime.db.reading() as session:
            forward = session.get(Forward, forward_id)
        code = code_of(runtime, forward_id)
        if forward.channel == "sms":
            (sms,) = transport.sms
            assert f"Your code: {code}" in sms.text
        else:
            email = email_to(transport, forward.recipient_contact or "")
            assert f"Your code: {code}" in email.text
            assert f">{code}</strong>" in email.html


def test_batched_emails_give_each_friend_their_own_code(database_url: str, settings_for) -> None:  # type: ignore[no-untyped-def]
    # One provider request for many friends (SendGrid): the code is a per-friend substitution.
    batching = BatchingMemoryTransport()
    app = create_app(settings_for(database_url), transports=Transports(email=batching, sms=batching))
    runtime = runtime_of(app)
    try:
        make_campaign(runtime.db, "spring", policy_settings=WITH_INCENTIVES, coupon_mode="pool")
        load(runtime, "code\nAAA\nBBB\n")
        friends = ("bob@example.com", "carol@example.com", "dan@example.com")
        receipt = runtime.forwarding.submit("spring", submission(*friends))
        runtime.delivery.deliver(receipt.message_ids)
        assert len(batching.batches) >= 1 and len(batching.emails) == 3
        for forward_id in receipt.forward_ids:
            with runtime.db.reading() as session:
                address = session.get(Forward, forward_id).recipient_contact
            email = email_to(batching, address or "")
            code = code_of(runtime, forward_id)
            if code is None:  # the pool ran out for one of the three
                assert "Your code" not in email.text
            else:
                assert f"Your code: {code}" in email.text and f">{code}</strong>" in email.html
        assert sorted(filter(None, (code_of(runtime, f) for f in receipt.forward_ids))) == ["AAA", "BBB"]
    finally:
        runtime.db.dispose()


def test_a_forward_keeps_its_code(runtime: Runtime, shop) -> None:  # type: ignore[no-untyped-def]
    load(runtime, "code\nAAA\nBBB\n")
    receipt = runtime.forwarding.submit("spring", submission("bob@example.com"))
    with runtime.db.reading() as session:
        forward = session.get(Forward, receipt.forward_ids[0])
        forward.campaign  # noqa: B018 - loaded, as delivery loads it
    first = assign_codes(runtime.db, [forward])
    second = assign_codes(runtime.db, [forward])
    assert first == second == {forward.id: "AAA"}
    assert coupon_counts(runtime.db, "spring").assigned == 1


def test_friends_held_back_use_no_code(runtime: Runtime, shop, transport: MemoryTransport) -> None:  # type: ignore[no-untyped-def]
    load(runtime, "code\nAAA\nBBB\nCCC\n")
    # Dan opted out before the forward; Bob opts out after it was accepted, before the send.
    with runtime.db.transaction() as session:
        for friend in ("dan@example.com",):
            contact_hash = runtime.hasher.hash(parse_contact(friend, "NL"))
            suppress_contact(
                session,
                contact_hash,
                "email",
                SuppressionScope.GLOBAL,
                SuppressionSource.MANUAL,
                now=runtime.clock.now(),
            )
    receipt = runtime.forwarding.submit("spring", submission("bob@example.com", "carol@example.com", "dan@example.com"))
    with runtime.db.transaction() as session:
        contact_hash = runtime.hasher.hash(parse_contact("bob@example.com", "NL"))
        suppress_contact(
            session, contact_hash, "email", SuppressionScope.GLOBAL, SuppressionSource.MANUAL, now=runtime.clock.now()
        )
    runtime.delivery.deliver(receipt.message_ids)
    assert [e.to for e in transport.emails] == ["carol@example.com"]
    assert "Your code: AAA" in transport.emails[0].text
    counts = coupon_counts(runtime.db, "spring")
    assert (counts.assigned, counts.available) == (1, 2)


def test_an_empty_pool_sends_the_message_without_a_code_and_warns_once(
    runtime: Runtime, shop, transport: MemoryTransport, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    load(runtime, "code\nAAA\n")
    receipt = runtime.forwarding.submit("spring", submission("bob@example.com", "carol@example.com", "dan@example.com"))
    with caplog.at_level("WARNING", logger="engine.services.coupons"):
        runtime.delivery.deliver(receipt.message_ids)
    assert len(transport.emails) == 3
    with_code = [e for e in transport.emails if "Your code:" in e.text]
    assert len(with_code) == 1 and "Your code: AAA" in with_code[0].text
    warnings = [r for r in caplog.records if "pool is empty" in r.getMessage()]
    assert len(warnings) == 1 and "2 friends" in warnings[0].getMessage()


def test_generated_mode_uses_free_codes_first_then_makes_new_ones(runtime: Runtime, shop, transport) -> None:  # type: ignore[no-untyped-def]
    set_mode(runtime.db, "spring", CouponMode.GENERATED)
    load(runtime, "code\nUPLOADED-1\n")
    receipt = runtime.forwarding.submit("spring", submission("bob@example.com", "carol@example.com", "dan@example.com"))
    runtime.delivery.deliver(receipt.message_ids)
    codes = [code_of(runtime, f) or "" for f in receipt.forward_ids]
    # The uploaded code goes to one of them, two new ones to the others.
    assert codes.count("UPLOADED-1") == 1
    generated = [code for code in codes if code != "UPLOADED-1"]
    assert len(set(generated)) == 2 and all(len(code) == 10 for code in generated)
    assert all(f"Your code: {code}" in " ".join(e.text for e in transport.emails) for code in codes)


def test_the_landing_page_shows_the_friend_their_code_after_the_click(
    app: Flask, runtime: Runtime, shop, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    receipt = runtime.forwarding.submit("spring", submission("bob@example.com"))
    runtime.delivery.deliver(receipt.message_ids)  # sent before there were codes: none in it
    assert "Your code" not in transport.emails[0].text
    load(runtime, "code\nAAA\nBBB\n")

    client = app.test_client()
    without = client.get("/c/spring").text
    assert "Your code" not in without and "copy.js" not in without  # a visitor without a link gets none
    (link,) = tracked_links(transport.emails[0].text)
    followed = client.get(urlsplit(link).path)
    assert followed.status_code == 303
    page = client.get("/c/spring")
    assert page.status_code == 200
    assert 'Your code: <strong class="code" id="coupon-code">AAA</strong>' in page.text
    again = client.get("/c/spring").text  # the same code again
    assert 'Your code: <strong class="code" id="coupon-code">AAA</strong>' in again
    # A "Copy code" button for it, hidden until static/copy.js shows it (none without JavaScript).
    button = copy_button(page.text, "coupon-code")
    assert button["text"] == "Copy code" and "hidden" in button and button["status"] == "status"
    assert static_path("copy.js") in page.text
    assert code_of(runtime, receipt.forward_ids[0]) == "AAA"
    assert coupon_counts(runtime.db, "spring").assigned == 1


def test_the_landing_page_shows_the_code_of_the_forward_that_was_clicked(
    app: Flask, runtime: Runtime, shop, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    load(runtime, "code\nFOR-BOB\nFOR-CAROL\n")
    receipt = runtime.forwarding.submit("spring", submission("bob@example.com", "carol@example.com"))
    runtime.delivery.deliver(receipt.message_ids)
    carol = email_to(transport, "carol@example.com")
    code = "FOR-CAROL" if "FOR-CAROL" in carol.text else "FOR-BOB"
    client = app.test_client()
    client.get(urlsplit(tracked_links(carol.text)[0]).path)
    page = client.get("/c/spring").text
    assert f'Your code: <strong class="code" id="coupon-code">{code}</strong>' in page
    assert page.count("Your code") == 1


# PostgreSQL only: SQLite runs writers one at a time, so nothing could interleave there.
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_concurrent_assignment_never_gives_one_code_twice(runtime: Runtime, shop) -> None:  # type: ignore[no-untyped-def]
    load(runtime, "code\n" + "".join(f"CODE-{n}\n" for n in range(150)))
    forwards = _forwards(runtime, shop, 120)
    start = threading.Barrier(6)
    errors: list[BaseException] = []
    results: list[dict[int, str]] = []

    def assign(part: list[Forward]) -> None:
        start.wait()
        try:
            for offset in range(0, len(part), 10):
                results.append(assign_codes(runtime.db, part[offset : offset + 10]))
        except BaseException as error:  # reported below
            errors.append(error)

    # Six workers over overlapping halves: each forward is asked for by three of them.
    parts = [forwards[i * 20 :] + forwards[: i * 20] for i in range(6)]
    threads = [threading.Thread(target=assign, args=(part[:60],)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with runtime.db.reading() as session:
        given = session.execute(select(Coupon.forward_id, Coupon.code).where(Coupon.forward_id.is_not(None))).all()
    assert len(given) == len({code for _, code in given}) == len({fid for fid, _ in given}) == 120
    # Whatever each worker was told is what the friend has.
    stored = dict(given)
    assert all(stored[fid] == code for result in results for fid, code in result.items())


def _forwards(runtime: Runtime, campaign: Campaign, n: int) -> list[Forward]:
    with runtime.db.transaction() as session:
        rows = [
            Forward(
                public_id=new_public_id(),
                campaign_id=campaign.id,
                channel="email",
                sender_name="Anna",
                recipient_contact_hash=f"hash-{i}",
                policy_name="custom",
                policy_version=1,
            )
            for i in range(n)
        ]
        session.add_all(rows)
    with runtime.db.reading() as session:
        loaded = list(session.scalars(select(Forward).order_by(Forward.id)))
        for forward in loaded:
            forward.campaign  # noqa: B018 - loaded, as delivery loads it
        return loaded


# -- redemption through the API ----------------------------------------------------------------------


def new_key(app: Flask, role: str = "marketer", name: str = "shop") -> str:
    result = app.test_cli_runner().invoke(args=["api-keys", "create", name, "--role", role])
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


def redeem(client: FlaskClient, key: str | None, body: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post("/api/v1/redemptions", json=body, headers=headers, **kwargs)


def test_a_shop_redeems_a_code_once_and_the_chain_gets_the_credit(
    app: Flask, runtime: Runtime, shop, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    load(runtime, "code\nFOR-BOB\nFOR-DAN\nNEVER-GIVEN\n")
    first = runtime.forwarding.submit("spring", submission("bob@example.com"))
    runtime.delivery.deliver(first.message_ids)
    token = tracked_links(transport.emails[0].text)[0].rsplit("/f/", 1)[1]
    second = runtime.forwarding.submit("spring", submission("dan@example.com", sender_name="Bob", referrer_token=token))
    runtime.delivery.deliver(second.message_ids)
    with runtime.db.reading() as session:
        bob_forward = session.get(Forward, first.forward_ids[0])
        dan_forward = session.get(Forward, second.forward_ids[0])
    assert code_of(runtime, dan_forward.id) == "FOR-DAN"

    key = new_key(app)
    client = app.test_client()
    response = redeem(client, key, {"campaign": "spring", "code": "FOR-DAN", "external_ref": "order-1001"})
    assert response.status_code == 201, response.json
    body = response.json
    assert body["code"] == "FOR-DAN" and body["external_ref"] == "order-1001" and body["reported_by"] == "shop"
    assert body["forward"] == {
        "id": dan_forward.public_id,
        "generation": 2,
        "chain": [dan_forward.public_id, bob_forward.public_id],
    }
    with runtime.db.reading() as session:
        redemption = session.scalars(select(Redemption)).one()
    assert redemption.forward_id == dan_forward.id

    again = redeem(client, key, {"campaign": "spring", "code": "FOR-DAN"})
    assert again.status_code == 409
    assert again.mimetype == "application/problem+json"
    assert again.json["redeemed_at"] == body["redeemed_at"]
    assert body["redeemed_at"] in again.json["detail"]

    # A code nobody was given (the shop handed it out itself) redeems too, credited to no forward.
    orphan = redeem(client, key, {"campaign": "spring", "code": "NEVER-GIVEN"})
    assert orphan.status_code == 201 and orphan.json["forward"] is None
    counts = client.get("/api/v1/campaigns/spring/coupons", headers={"Authorization": f"Bearer {key}"}).json
    assert counts == {
        "campaign": "spring",
        "mode": "pool",
        "total": 3,
        "assigned": 2,
        "redeemed": 2,
        "available": 0,
        "coupons_allowed": True,
    }
    # A redeemed code is never handed to a friend afterwards.
    late = runtime.forwarding.submit("spring", submission("eve@example.com", sender_name="Dan"))
    runtime.delivery.deliver(late.message_ids)
    assert code_of(runtime, late.forward_ids[0]) is None


def test_unknown_codes_and_campaigns_are_404(app: Flask, runtime: Runtime, shop) -> None:  # type: ignore[no-untyped-def]
    load(runtime, "code\nAAA\n")
    key = new_key(app)
    client = app.test_client()
    for body in ({"campaign": "spring", "code": "NOPE"}, {"campaign": "autumn", "code": "AAA"}):
        response = redeem(client, key, body)
        assert response.status_code == 404
        assert response.mimetype == "application/problem+json"
        assert response.json["status"] == 404


def test_redeeming_needs_a_marketer_key(app: Flask, runtime: Runtime, shop) -> None:  # type: ignore[no-untyped-def]
    load(runtime, "code\nAAA\n")
    body = {"campaign": "spring", "code": "AAA"}
    anonymous = redeem(app.test_client(), None, body)
    assert anonymous.status_code == 401 and anonymous.mimetype == "application/problem+json"
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    # A signed-in marketer's session reads the API but does not write to it (no CSRF there).
    session_only = redeem(staff_client(app, "marketer"), None, body)
    assert session_only.status_code == 401
    compliance = redeem(app.test_client(), new_key(app, "compliance", "auditor"), body)
    assert compliance.status_code == 403 and compliance.mimetype == "application/problem+json"
    admin = redeem(app.test_client(), new_key(app, "admin", "ops"), body)
    assert admin.status_code == 201
    with runtime.db.reading() as session:
        assert session.scalars(select(Redemption.reported_by)).all() == ["ops"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "AAA"}, "campaign"),
        ({"campaign": "spring"}, "code"),
        ({"campaign": "spring", "code": "TEN OFF"}, "code"),
        ({"campaign": "spring", "code": 123}, "code"),
        ({"campaign": "Spring!", "code": "AAA"}, "campaign"),
        ({"campaign": "spring", "code": "AAA", "external_ref": "x" * 101}, "external_ref"),
        ({"campaign": "spring", "code": "AAA", "amount": 10}, "amount"),
        (["spring", "AAA"], ""),
    ],
)
def test_bad_bodies_are_422_naming_the_field(app: Flask, runtime: Runtime, shop, body: Any, field: str) -> None:  # type: ignore[no-untyped-def]
    response = redeem(app.test_client(), new_key(app), body)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert field in [error["field"] for error in response.json["errors"]]
    assert {"type", "title", "status", "detail"} <= set(response.json)
    with runtime.db.reading() as session:
        assert session.scalars(select(Redemption)).all() == []


def test_a_body_that_is_not_json_is_refused(app: Flask, runtime: Runtime, shop) -> None:  # type: ignore[no-untyped-def]
    key = new_key(app)
    client = app.test_client()
    as_form = client.post(
        "/api/v1/redemptions", data={"campaign": "spring", "code": "AAA"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert as_form.status_code == 415 and as_form.mimetype == "application/problem+json"
    broken = client.post(
        "/api/v1/redemptions",
        data="{not json",
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert broken.status_code == 422


# -- the command line --------------------------------------------------------------------------------


def test_codes_are_imported_and_generated_from_the_command_line(
    app: Flask, runtime: Runtime, shop, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    csv_file = tmp_path / "codes.csv"
    csv_file.write_text("code\nAAA\nBBB\nAAA\nbad code\n")
    runner = app.test_cli_runner()
    imported = runner.invoke(args=["coupons", "import", "spring", str(csv_file)])
    assert imported.exit_code == 0, imported.output
    assert "2 codes imported; 1 repeated in the file, 0 already there, 1 bad row skipped" in imported.stdout
    assert "line 5: the code contains a space" in imported.stderr

    out = tmp_path / "new.csv"
    generated = runner.invoke(args=["coupons", "generate", "spring", "5", "--prefix", "SP-", "--output", str(out)])
    assert generated.exit_code == 0, generated.output
    lines = out.read_text().splitlines()
    assert lines[0] == "code" and len(lines) == 6 and all(line.startswith("SP-") for line in lines[1:])
    assert coupon_counts(runtime.db, "spring").total == 7

    assert runner.invoke(args=["coupons", "mode", "spring", "generated"]).exit_code == 0
    assert coupon_counts(runtime.db, "spring").mode == "generated"


def test_the_command_line_refuses_coupons_under_eu_strict(app: Flask, runtime: Runtime, tmp_path: Path) -> None:
    make_campaign(runtime.db, "strict", policy_name="eu-strict", channels=["email"])
    csv_file = tmp_path / "codes.csv"
    csv_file.write_text("code\nAAA\n")
    runner = app.test_cli_runner()
    for args in (["import", "strict", str(csv_file)], ["generate", "strict", "3"], ["mode", "strict", "pool"]):
        result = runner.invoke(args=["coupons", *args])
        assert result.exit_code == 1, (args, result.output)
        assert "eu-strict, does not allow incentives" in result.stderr
    assert runner.invoke(args=["coupons", "import", "nope", str(csv_file)]).exit_code == 2
    assert coupon_counts(runtime.db, "strict").total == 0


# -- the console --------------------------------------------------------------------------------------


def console_post(client: FlaskClient, data: dict[str, Any], slug: str = "spring", **kwargs: Any):  # type: ignore[no-untyped-def]
    page = client.get(f"/console/campaigns/{slug}/coupons")
    return client.post(
        f"/console/campaigns/{slug}/coupons", data={"csrf_token": csrf_token(page.text), **data}, **kwargs
    )


IMPORT_PAGE = re.compile(r"/console/campaigns/spring/coupons/imports/[0-9a-f]{32}")
POLLING = ('hx-trigger="every 1s"', "hx-get=", 'hx-select="#import-progress"', 'hx-swap="outerHTML"')


def upload(client: FlaskClient, body: bytes, slug: str = "spring"):  # type: ignore[no-untyped-def]
    return console_post(
        client,
        {"action": "upload", "file": (io.BytesIO(body), "codes.csv")},
        slug=slug,
        content_type="multipart/form-data",
    )


def finished(app: Flask, client: FlaskClient, location: str) -> str:
    """The progress page once the import's thread has ended (asked for as a browser would)."""
    wait_for_imports(app, timeout=60)
    page = client.get(location)
    assert page.status_code == 200
    assert not any(attribute in page.text for attribute in POLLING), "polling goes on after the import"
    assert "htmx" not in page.text
    return page.text


def imports_folder(app: Flask) -> Path:
    return Path(app.instance_path) / IMPORTS_FOLDER


def codes_csv(count: int) -> bytes:
    return ("code\n" + "".join(f"SPRING-{n:07d}\n" for n in range(count))).encode()


@pytest.fixture
def held_import(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Imports that stop after their first batch (of 100 codes) until the event is set, with
    their progress written at every batch."""
    gate = threading.Event()
    monkeypatch.setattr(coupon_imports, "PROGRESS_INTERVAL_SECONDS", 0)

    def held(db, slug, source, *, progress, report):  # type: ignore[no-untyped-def]
        def after_batch(lines_read: int) -> None:
            progress(lines_read)
            assert gate.wait(30), "the test never let the import go on"

        return import_codes(db, slug, source, progress=after_batch, report=report, batch_rows=100)

    monkeypatch.setattr(coupon_imports, "import_codes", held)
    yield gate
    gate.set()  # a failed test must not leave the thread waiting


def progress_of(client: FlaskClient, location: str, until: Callable[[str], bool]) -> str:
    """The progress page, fetched until `until` holds (the import runs in its own thread)."""
    deadline = time.monotonic() + 30
    while True:
        page = client.get(location)
        assert page.status_code == 200
        if until(page.text) or time.monotonic() > deadline:
            return page.text
        time.sleep(0.05)


def test_a_large_upload_shows_its_progress_while_it_runs(app: Flask, runtime: Runtime, shop, held_import) -> None:  # type: ignore[no-untyped-def]
    client = staff_client(app, "marketer")
    uploaded = upload(client, codes_csv(1000) + b"bad code\n")
    assert uploaded.status_code == 303 and IMPORT_PAGE.fullmatch(uploaded.location)

    running = progress_of(client, uploaded.location, lambda html: 'data-progress="imported">100<' in html)
    assert 'data-state="running"' in running and 'data-progress="imported">100<' in running
    assert all(attribute in running for attribute in POLLING)
    assert f'hx-get="{uploaded.location}"' in running
    assert f'<script src="{static_path("vendor/htmx/htmx.min.js")}" defer></script>' in running
    assert re.search(r'<progress id="import-bar" value="\d+" max="(\d+)"', running)
    assert f'<a id="import-refresh" href="{uploaded.location}">Refresh</a>' in running
    assert "Started by marketer@staff.example" in running
    # The upload waits on the server's disk, readable by the app's user alone.
    (spooled,) = imports_folder(app).iterdir()
    assert spooled.stat().st_mode & 0o777 == 0o600 and imports_folder(app).stat().st_mode & 0o777 == 0o700
    # The coupons page leads back here; a second upload for the campaign waits its turn.
    assert f'href="{uploaded.location}">see the progress</a>' in client.get("/console/campaigns/spring/coupons").text
    second = upload(client, codes_csv(5))
    assert second.status_code == 409 and "Codes are being imported for this campaign already" in second.text
    # Another campaign may import meanwhile.
    make_campaign(runtime.db, "autumn", policy_settings=WITH_INCENTIVES, coupon_mode="pool")
    assert upload(client, codes_csv(5), slug="autumn").status_code == 303

    held_import.set()
    done = finished(app, client, uploaded.location)
    assert "1,000 codes imported; 0 repeated in the file, 0 already there, 1 bad row skipped" in done
    assert "line 1002: the code contains a space" in done
    assert 'max="' not in done and "Refresh</a>" not in done
    assert coupon_counts(runtime.db, "spring").total == 1000
    assert list(imports_folder(app).iterdir()) == []
    assert upload(client, codes_csv(5)).status_code == 303  # the campaign's turn is free again
    wait_for_imports(app)


def test_an_import_page_is_its_campaigns_alone(app: Flask, runtime: Runtime, shop) -> None:  # type: ignore[no-untyped-def]
    make_campaign(runtime.db, "autumn", policy_settings=WITH_INCENTIVES, coupon_mode="pool")
    client = staff_client(app, "marketer")
    uploaded = upload(client, codes_csv(3))
    finished(app, client, uploaded.location)
    import_id = uploaded.location.rsplit("/", 1)[1]
    assert client.get(f"/console/campaigns/autumn/coupons/imports/{import_id}").status_code == 404
    assert client.get(f"/console/campaigns/spring/coupons/imports/{'0' * 32}").status_code == 404
    assert client.get("/console/campaigns/spring/coupons/imports/not-an-id").status_code == 404
    assert staff_client(app, "compliance").get(uploaded.location).status_code == 403
    assert app.test_client().get(uploaded.location).status_code == 302
    assert staff_client(app, "admin").get(uploaded.location).status_code == 200


def test_an_import_that_stops_says_why(app: Flask, runtime: Runtime, shop) -> None:  # type: ignore[no-untyped-def]
    client = staff_client(app, "marketer")
    refused = upload(client, b"order,coupon\n1,AAA\n")
    assert refused.status_code == 303
    page = finished(app, client, refused.location)
    assert 'data-state="failed"' in page and "none is named `code`" in page and "Nothing was imported." in page

    # An import whose process died (its thread with it) stops making progress: after a while
    # its page says so, and stops polling.
    uploaded = upload(client, codes_csv(3))
    finished(app, client, uploaded.location)
    key = runtime.settings.redis_key_prefix + PROGRESS_KEY.format(id=uploaded.location.rsplit("/", 1)[1])
    runtime.queue.connection.hset(key, mapping={"state": "running", "updated_at": time.time() - 31})
    stale = client.get(uploaded.location).text
    assert 'data-state="interrupted"' in stale and "Upload the file again" in stale
    assert not any(attribute in stale for attribute in POLLING)


def test_a_marketer_manages_coupons_in_the_console(app: Flask, runtime: Runtime, shop) -> None:  # type: ignore[no-untyped-def]
    client = staff_client(app, "marketer")
    # From the list to the campaign, whose pages link each other (its coupons among them).
    assert 'href="/console/campaigns/spring"' in client.get("/console").text
    overview = client.get("/console/campaigns/spring").text
    assert 'href="/console/campaigns/spring/coupons">Coupons</a>' in overview
    page = client.get("/console/campaigns/spring/coupons")
    assert page.status_code == 200 and 'data-count="total">0<' in page.text

    uploaded = upload(client, b"code\nAAA\nBBB\nAAA\nbad code\n")
    assert uploaded.status_code == 303
    assert IMPORT_PAGE.fullmatch(uploaded.location), uploaded.location
    done = finished(app, client, uploaded.location)
    assert 'data-state="done"' in done
    assert "2 codes imported; 1 repeated in the file, 0 already there, 1 bad row skipped" in done
    assert "line 5: the code contains a space" in done
    assert 'data-count="total">2<' in done
    assert list(imports_folder(app).iterdir()) == []  # the spooled file is gone

    generated = console_post(client, {"action": "generate", "count": "3", "prefix": "SP-"})
    assert generated.status_code == 303
    after = client.get("/console/campaigns/spring/coupons").text
    assert "3 codes generated" in after and 'data-count="total">5<' in after

    switched = console_post(client, {"action": "mode", "mode": "generated"})
    assert switched.status_code == 303
    assert coupon_counts(runtime.db, "spring").mode == "generated"

    too_many = console_post(client, {"action": "generate", "count": "1000000"})
    assert too_many.status_code == 422 and "100,000" in too_many.text


def test_the_console_refuses_coupons_under_eu_strict_with_the_reason(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "strict", policy_name="eu-strict", channels=["email"])
    client = staff_client(app, "marketer")
    page = client.get("/console/campaigns/strict/coupons")
    assert "eu-strict, does not allow incentives" in page.text
    for data, kwargs in (
        ({"action": "mode", "mode": "pool"}, {}),
        ({"action": "generate", "count": "5"}, {}),
        ({"action": "upload", "file": (io.BytesIO(b"code\nAAA\n"), "c.csv")}, {"content_type": "multipart/form-data"}),
    ):
        refused = console_post(client, data, slug="strict", **kwargs)
        assert refused.status_code == 422, data
        assert "eu-strict, does not allow incentives" in refused.text
    counts = coupon_counts(runtime.db, "strict")
    assert (counts.total, counts.mode) == (0, "none")


def test_the_coupon_console_is_for_marketers(app: Flask, runtime: Runtime, shop) -> None:  # type: ignore[no-untyped-def]
    assert app.test_client().get("/console/campaigns/spring/coupons").status_code == 302
    assert staff_client(app, "compliance").get("/console/campaigns/spring/coupons").status_code == 403
    assert staff_client(app, "admin").get("/console/campaigns/spring/coupons").status_code == 200
    assert staff_client(app, "marketer", "m2@staff.example").get("/console/campaigns/nope/coupons").status_code == 404


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('code\nGOOD-1\n"OPEN-QUOTE\nGOOD-2\nGOOD-3\n', "line 3: a quote is left open"),
        ("code\nGOOD-1\n" + "X" * 200_000 + "\n", "line 3: not valid CSV"),
    ],
)
def test_a_broken_csv_stops_at_the_line_that_broke_it(runtime: Runtime, shop, text: str, where: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CouponFileRefused, match=where):
        load(runtime, text)


@pytest.mark.parametrize("prefix", ["=SP-", "+1-", "SP;=1"])
def test_a_prefix_a_spreadsheet_could_run_is_refused(app: Flask, shop, prefix: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "codes.csv"
    result = app.test_cli_runner().invoke(
        args=["coupons", "generate", "spring", "5", "--prefix", prefix, "--output", str(out)]
    )
    assert result.exit_code != 0
    assert "formula" in result.output
    assert coupon_counts(runtime_of(app).db, "spring").total == 0


def test_with_redis_an_upload_is_imported_by_a_worker_job_that_takes_its_id(
    database_url: str, redis_url: str, settings_for
) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings_for(database_url, redis_url))
    runtime = runtime_of(app)
    make_campaign(runtime.db, policy_settings=WITH_INCENTIVES, coupon_mode="pool")
    client = staff_client(app, "marketer")
    uploaded = upload(client, codes_csv(250))
    assert uploaded.status_code == 303
    import_id = uploaded.location.rsplit("/", 1)[1]

    # Nothing runs in the web process: one job waits for a worker, and it carries the id alone.
    (job,) = runtime.queue.queue.get_jobs()
    assert (job.func_name, list(job.args)) == ("workers.jobs.import_coupons", [import_id])
    waiting = client.get(uploaded.location).text
    assert 'data-state="running"' in waiting and all(attribute in waiting for attribute in POLLING)

    assert runtime.queue.drain() == 1  # a worker's turn, in this process
    done = client.get(uploaded.location).text
    assert 'data-state="done"' in done and "250 codes imported" in done
    assert coupon_counts(runtime.db, "spring").total == 250
    assert list(imports_folder(app).iterdir()) == []
    runtime.db.dispose()


def test_a_worker_that_cannot_find_the_uploaded_file_says_to_upload_it_again(
    database_url: str, redis_url: str, settings_for
) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings_for(database_url, redis_url))
    runtime = runtime_of(app)
    make_campaign(runtime.db, policy_settings=WITH_INCENTIVES, coupon_mode="pool")
    client = staff_client(app, "marketer")
    uploaded = upload(client, codes_csv(5))
    # The worker runs where the web process's instance folder is not (a folder not shared).
    (spooled,) = imports_folder(app).iterdir()
    spooled.unlink()

    assert runtime.queue.drain() == 1
    page = client.get(uploaded.location).text
    assert 'data-state="failed"' in page and "could not be found by the worker. Upload it again." in page
    assert coupon_counts(runtime.db, "spring").total == 0
    assert upload(client, codes_csv(5)).status_code == 303  # the campaign's turn is free again
    runtime.db.dispose()
