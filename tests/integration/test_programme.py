"""The reward programme on SQLite and PostgreSQL: orders on redemptions (the same order twice,
at once), the rules applied to real conversions, payouts by code (sent to the referrer's
confirmed contact, or waiting for one) and by the shop, and each reward's history."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import Settings
from engine import create_app
from engine.clock import FixedClock
from engine.contacts import Contact
from engine.models import Campaign, Coupon, Forward, Redemption, Suppression, SuppressionScope
from engine.models.rewards import PayoutMethod, PayoutState, Reward, RewardCode, RewardStatus
from engine.models.suppression import scope_key
from engine.runtime import Runtime
from engine.services.coupons import OrderConflict, OrderReport, redeem
from engine.services.payouts import add_payout_codes
from engine.services.referrers import milestones_ahead
from engine.services.reward_history import history
from engine.services.reward_rules import Milestone, Money, ProgrammeKind, RewardRules
from engine.services.rewards import ProgramSettings, ReviewDecision, review, reward_program, set_program
from engine.transports import AmbiguousError, TransientError
from engine.transports.memory import MemoryTransport
from tests.helpers import US_CUSTOM_SMS, csrf_token, form_values, make_campaign, runtime_of, staff_client

WITH_INCENTIVES = {**US_CUSTOM_SMS, "incentives": True}
_numbers = count(1)


def programme(runtime: Runtime, rules: RewardRules, description: str = "A 5 euro voucher") -> None:
    set_program(runtime.db, "spring", ProgramSettings(True, description, rules))


@pytest.fixture
def shop(runtime: Runtime) -> Campaign:
    campaign = make_campaign(runtime.db, "spring", policy_settings=WITH_INCENTIVES, coupon_mode="pool")
    programme(runtime, RewardRules())
    return campaign


def invite(
    runtime: Runtime, campaign: Campaign, sender: str = "Ann", parent: Forward | None = None
) -> tuple[Forward, str]:
    """An invitation from `sender` (known by the contact hash h-<sender>) and its friend's code."""
    n = next(_numbers)
    with runtime.db.transaction() as session:
        forward = Forward(
            public_id=f"pub{n}",
            campaign_id=campaign.id,
            parent_id=parent.id if parent else None,
            generation=parent.generation + 1 if parent else 1,
            channel="email",
            sender_name=sender,
            sender_contact_hash=f"h-{sender}",
            recipient_contact_hash=f"h-friend-{n}",
            policy_name="custom",
            policy_version=1,
            client_ip_hash=f"ip-{sender}-{n}",
        )
        session.add(forward)
        session.flush()
        session.add(Coupon(campaign_id=campaign.id, code=f"CODE-{n}", forward_id=forward.id))
    return forward, f"CODE-{n}"


def order(order_id: str, total: str = "30.00", currency: str = "EUR", new: bool | None = True) -> OrderReport:
    return OrderReport(order_id, Money.parse(total, currency), "cust-1", new)


def rewards(runtime: Runtime) -> list[Reward]:
    with runtime.db.reading() as session:
        return list(session.scalars(select(Reward).order_by(Reward.id)))


def count_of(runtime: Runtime, model: type) -> int:
    with runtime.db.reading() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def key(runtime: Runtime, name: str = "till") -> dict[str, str]:
    return {"Authorization": f"Bearer {runtime.staff.create_api_key(name, 'marketer').secret}"}


# -- orders --------------------------------------------------------------------------------------------


def test_the_same_order_twice_is_one_redemption_and_one_reward(app: Flask, runtime: Runtime, shop: Campaign) -> None:
    _, code = invite(runtime, shop)
    client, headers = app.test_client(), key(runtime)
    body = {
        "campaign": "spring",
        "code": code,
        "order_id": "SO-1001",
        "order_total": "42.50",
        "currency": "EUR",
        "customer_ref": "c-77",
        "new_customer": True,
    }
    first = client.post("/api/v1/redemptions", json=body, headers=headers)
    again = client.post("/api/v1/redemptions", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()
    assert first.get_json()["order"] == {
        "order_id": "SO-1001",
        "order_total": "42.50",
        "currency": "EUR",
        "customer_ref": "c-77",
        "new_customer": True,
    }
    assert first.get_json()["reward"]["status"] == "held"
    assert count_of(runtime, Redemption) == 1 and count_of(runtime, Reward) == 1
    # The order with another code: refused, and still one of each.
    _, other = invite(runtime, shop)
    conflict = client.post("/api/v1/redemptions", json={**body, "code": other}, headers=headers)
    assert conflict.status_code == 409 and conflict.mimetype == "application/problem+json"
    assert conflict.get_json()["order_id"] == "SO-1001"
    assert count_of(runtime, Redemption) == 1 and count_of(runtime, Reward) == 1
    # The code with another order: redeemed already.
    assert client.post("/api/v1/redemptions", json={**body, "order_id": "SO-2"}, headers=headers).status_code == 409


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"order_id": "A", "order_total": "12,50", "currency": "EUR"}, "order_total"),
        ({"order_id": "A", "order_total": "12.50"}, "currency"),
        ({"order_id": "A", "order_total": 12.5, "currency": "EUR"}, "order_total"),
        ({"order_id": "A", "order_total": "1.005", "currency": "EUR"}, "order_total"),
        ({"order_id": "A", "currency": "EURO", "order_total": "1"}, "order_total"),
        ({"order_id": "", "order_total": "1", "currency": "EUR"}, "order_id"),
        ({"order_id": "A", "new_customer": "yes"}, "new_customer"),
        ({"order_total": "1", "currency": "EUR"}, "order_total"),
        ({"order_id": "A", "customer_ref": "x" * 101}, "customer_ref"),
    ],
)
def test_a_bad_order_is_a_422_that_records_nothing(
    app: Flask, runtime: Runtime, shop: Campaign, fields: dict[str, Any], field: str
) -> None:
    _, code = invite(runtime, shop)
    response = app.test_client().post(
        "/api/v1/redemptions", json={"campaign": "spring", "code": code, **fields}, headers=key(runtime)
    )
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert field in [error["field"] for error in response.get_json()["errors"]]
    assert count_of(runtime, Redemption) == 0


def test_the_same_order_reported_at_once_is_redeemed_once(runtime: Runtime, shop: Campaign) -> None:
    # On PostgreSQL the reports race for real; SQLite's writers take turns.
    _, code = invite(runtime, shop)
    start = threading.Barrier(8)
    answers: list[Any] = []

    def report() -> None:
        start.wait()
        try:
            answers.append(redeem(runtime.db, "spring", code, order=order("SO-9")))
        except BaseException as error:  # reported below
            answers.append(error)

    threads = [threading.Thread(target=report) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(not isinstance(answer, BaseException) for answer in answers), answers
    assert len({answer.id for answer in answers}) == 1
    assert sum(not answer.replayed for answer in answers) == 1
    assert count_of(runtime, Redemption) == 1 and count_of(runtime, Reward) == 1


def test_one_order_with_two_codes_at_once_converts_once(runtime: Runtime, shop: Campaign) -> None:
    codes = [invite(runtime, shop)[1] for _ in range(4)]
    start = threading.Barrier(len(codes))
    answers: list[Any] = []

    def report(code: str) -> None:
        start.wait()
        try:
            answers.append(redeem(runtime.db, "spring", code, order=order("SO-10")))
        except BaseException as error:  # reported below
            answers.append(error)

    threads = [threading.Thread(target=report, args=(code,)) for code in codes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(answer, OrderConflict) for answer in answers) == len(codes) - 1, answers
    assert count_of(runtime, Redemption) == 1 and count_of(runtime, Reward) == 1


# -- the rules on real conversions ---------------------------------------------------------------------


def test_minimum_order_and_new_customers_decide_the_reward(runtime: Runtime, shop: Campaign) -> None:
    programme(runtime, RewardRules(min_order=Money.parse("25", "EUR"), new_customers_only=True))
    outcomes = []
    for n, (total, new) in enumerate([("24.99", True), ("25.00", False), ("25.00", None), ("25.00", True)]):
        _, code = invite(runtime, shop)
        outcomes.append(redeem(runtime.db, "spring", code, order=order(f"O-{n}", total, new=new)).reward is not None)
    _, bare = invite(runtime, shop)
    outcomes.append(redeem(runtime.db, "spring", bare).reward is not None)  # no order: no total, not new
    assert outcomes == [False, False, False, True, False]


def test_a_referrer_is_capped(runtime: Runtime, shop: Campaign) -> None:
    programme(runtime, RewardRules(cap_per_referrer=2))
    for _ in range(3):
        redeem(runtime.db, "spring", invite(runtime, shop, "Ann")[1])
    redeem(runtime.db, "spring", invite(runtime, shop, "Bob")[1])
    assert [r.referrer_name for r in rewards(runtime)] == ["Ann", "Ann", "Bob"]


def test_a_rejected_reward_frees_its_place_under_the_cap(runtime: Runtime, shop: Campaign) -> None:
    programme(runtime, RewardRules(cap_per_referrer=1))
    redeem(runtime.db, "spring", invite(runtime, shop, "Ann")[1])
    review(runtime.db, "spring", rewards(runtime)[0].id, ReviewDecision(False, "mia", "a test order"))
    redeem(runtime.db, "spring", invite(runtime, shop, "Ann")[1])
    assert [r.status for r in rewards(runtime)] == ["rejected", "held"]


def test_milestones_reward_the_third_and_tenth_friend(runtime: Runtime, shop: Campaign) -> None:
    rules = RewardRules(
        kind=ProgrammeKind.TIERED, milestones=(Milestone(3, "a coffee"), Milestone(10, "a bag of beans"))
    )
    programme(runtime, rules, description="")
    for n in range(11):
        # The fifth friend orders too little to count: milestones count qualifying friends only.
        total = "5.00" if n == 4 else "30.00"
        redeem(runtime.db, "spring", invite(runtime, shop, "Ann")[1], order=order(f"M-{n}", total))
        if n == 0:
            programme(
                runtime, RewardRules(kind=rules.kind, milestones=rules.milestones, min_order=Money.parse("10", "EUR"))
            )
    assert [(r.milestone, r.description) for r in rewards(runtime)] == [(3, "a coffee"), (10, "a bag of beans")]
    assert rewards(runtime)[1].redemption_id == 11  # the eleventh order, the tenth that qualified


def test_an_order_earns_nothing_once_the_policy_allows_no_incentives(
    app: Flask, runtime: Runtime, shop: Campaign
) -> None:
    _, code = invite(runtime, shop)
    with runtime.db.transaction() as session:
        session.execute(Campaign.__table__.update().values(policy_name="eu-strict", policy_settings={}))
    response = app.test_client().post(
        "/api/v1/redemptions",
        json={"campaign": "spring", "code": code, "order_id": "Q-1", "order_total": "50", "currency": "EUR"},
        headers=key(runtime),
    )
    # The friend had their code before the change: the conversion counts, and rewards nobody.
    assert response.status_code == 201 and response.get_json()["reward"] is None
    assert count_of(runtime, Redemption) == 1 and count_of(runtime, Reward) == 0


# -- payouts -----------------------------------------------------------------------------------------


class Confirmed:
    """A stand-in for the referrers' module: the contacts referrers confirmed, by sender key."""

    def __init__(self) -> None:
        self.contacts: dict[str, Contact] = {}

    def __call__(self, session: Session, campaign_id: int, referrer_key: str) -> Contact | None:
        return self.contacts.get(referrer_key)


def approve_all(runtime: Runtime) -> None:
    for reward in rewards(runtime):
        if reward.status == RewardStatus.HELD:
            review(runtime.db, "spring", reward.id, ReviewDecision(True, "mia"), runtime.clock.now())


def test_a_coupon_payout_waits_out_the_hold_then_reaches_the_confirmed_referrer(
    runtime: Runtime, shop: Campaign, clock: FixedClock, transport: MemoryTransport
) -> None:
    programme(runtime, RewardRules(hold_days=14, payout=PayoutMethod.COUPON, code_prefix="THANKS-"))
    confirmed = Confirmed()
    runtime.payouts.contacts = confirmed
    add_payout_codes(runtime.db, "spring", ["POOL-1"])
    redeem(runtime.db, "spring", invite(runtime, shop, "Ann")[1], now=clock.now())
    redeem(runtime.db, "spring", invite(runtime, shop, "Bob")[1], now=clock.now())
    approve_all(runtime)
    ann, bob = rewards(runtime)
    confirmed.contacts[ann.referrer_key] = Contact("email", "ann@example.com")

    clock.advance(timedelta(days=13))
    report = runtime.payouts.run_due()
    runtime.queue.drain()
    assert report.queued == [] and transport.emails == []  # still in the hold period

    clock.advance(timedelta(days=1))
    report = runtime.payouts.run_due()
    assert report.queued == [ann.id] and report.waiting_contact == [bob.id]
    runtime.queue.drain()
    [email] = transport.emails
    assert email.to == "ann@example.com"
    assert "POOL-1" in email.text and "A 5 euro voucher" in email.text
    ann, bob = rewards(runtime)
    assert (ann.status, ann.payout_state, ann.payout_code) == ("paid", "sent", "POOL-1")
    assert (bob.status, bob.payout_state) == ("approved", "waiting_contact")

    # Bob confirms his number later: the next pass sends him a generated code by text.
    confirmed.contacts[bob.referrer_key] = Contact("sms", "+31612345678")
    runtime.payouts.run_due()
    runtime.queue.drain()
    bob = rewards(runtime)[1]
    assert bob.status == "paid" and bob.payout_code is not None and bob.payout_code.startswith("THANKS-")
    [text] = transport.sms
    assert text.to == "+31612345678" and text.text.endswith(bob.payout_code)
    # Nothing is sent twice: another pass and another job find nothing to do.
    runtime.payouts.run_due()
    runtime.payouts.send(bob.id)
    runtime.queue.drain()
    assert len(transport.emails) == len(transport.sms) == 1
    with runtime.db.reading() as session:
        steps = [entry.action for entry in history(session, [ann.id])[ann.id]]
        assert session.scalar(select(func.count()).select_from(RewardCode)) == 2
    assert steps == ["earned", "approved", "hold over", "code assigned", "notice queued", "notice sent", "paid"]


def test_a_suppressed_referrer_gets_no_code(
    runtime: Runtime, shop: Campaign, clock: FixedClock, transport: MemoryTransport
) -> None:
    programme(runtime, RewardRules(payout=PayoutMethod.COUPON))
    confirmed = Confirmed()
    runtime.payouts.contacts = confirmed
    redeem(runtime.db, "spring", invite(runtime, shop, "Ann")[1], now=clock.now())
    approve_all(runtime)
    contact = Contact("email", "ann@example.com")
    confirmed.contacts[rewards(runtime)[0].referrer_key] = contact
    with runtime.db.transaction() as session:
        session.add(
            Suppression(
                contact_hash=runtime.hasher.hash(contact),
                channel="email",
                scope="global",
                scope_key=scope_key(SuppressionScope.GLOBAL, None),
                source="link",
            )
        )
    runtime.payouts.run_due()
    runtime.queue.drain()
    assert transport.emails == []
    assert rewards(runtime)[0].payout_state == PayoutState.SUPPRESSED


def test_the_shop_pays_and_confirms_webhook_payouts(
    app: Flask, runtime: Runtime, shop: Campaign, clock: FixedClock
) -> None:
    programme(runtime, RewardRules(hold_days=7, payout=PayoutMethod.WEBHOOK, auto_approve=True))
    redeem(runtime.db, "spring", invite(runtime, shop, "Ann")[1], now=clock.now())
    reward_id = rewards(runtime)[0].id
    client, headers = app.test_client(), key(runtime)
    early = client.post(f"/api/v1/rewards/{reward_id}/paid", json={"reference": "V-1"}, headers=headers)
    assert early.status_code == 409 and "held" in early.get_json()["detail"]

    clock.advance(timedelta(days=7))
    report = runtime.payouts.run_due()
    assert report.approved == [reward_id] and report.shop_told == [reward_id]
    paid = client.post(f"/api/v1/rewards/{reward_id}/paid", json={"reference": "V-1"}, headers=headers)
    again = client.post(f"/api/v1/rewards/{reward_id}/paid", json={"reference": "V-1"}, headers=headers)
    assert paid.status_code == again.status_code == 200 and paid.get_json() == again.get_json()
    assert paid.get_json()["status"] == "paid" and paid.get_json()["payout"]["reference"] == "V-1"
    other = client.post(f"/api/v1/rewards/{reward_id}/paid", json={"reference": "V-2"}, headers=headers)
    assert other.status_code == 409 and other.get_json()["reference"] == "V-1"
    assert client.post("/api/v1/rewards/999/paid", headers=headers).status_code == 404
    assert client.post(f"/api/v1/rewards/{reward_id}/paid", json={"ref": 1}, headers=headers).status_code == 422
    with runtime.db.reading() as session:
        steps = [(e.actor, e.action) for e in history(session, [reward_id])[reward_id]]
    assert steps == [
        ("system", "earned"),
        ("system", "approved"),
        ("system", "hold over"),
        ("system", "shop told"),
        ("till", "paid"),
    ]


def test_flagged_rewards_are_not_approved_automatically(runtime: Runtime, shop: Campaign, clock: FixedClock) -> None:
    programme(runtime, RewardRules(auto_approve=True))
    redeem(runtime.db, "spring", invite(runtime, shop, "Ann")[1], now=clock.now())
    with runtime.db.transaction() as session:
        session.execute(Reward.__table__.update().values(flagged=True, flags=["same_ip"]))
    assert runtime.payouts.run_due().approved == []
    assert rewards(runtime)[0].status == "held"


def test_a_payout_is_refused_once_the_policy_allows_no_incentives(
    app: Flask, runtime: Runtime, shop: Campaign, clock: FixedClock
) -> None:
    redeem(runtime.db, "spring", invite(runtime, shop, "Ann")[1], now=clock.now())
    approve_all(runtime)
    runtime.payouts.run_due()
    with runtime.db.transaction() as session:
        session.execute(Campaign.__table__.update().values(policy_name="eu-strict", policy_settings={}))
    response = app.test_client().post(f"/api/v1/rewards/{rewards(runtime)[0].id}/paid", headers=key(runtime))
    assert response.status_code == 403 and response.mimetype == "application/problem+json"
    assert rewards(runtime)[0].status == "approved"


def test_money_is_summed_exactly(runtime: Runtime, shop: Campaign) -> None:
    for n, total in enumerate(["0.10", "0.20", "0.30"]):
        redeem(runtime.db, "spring", invite(runtime, shop)[1], order=order(f"S-{n}", total))
    with runtime.db.reading() as session:
        cents = session.scalar(select(func.sum(Redemption.order_total_minor)))
    assert Money.from_minor(int(cents or 0), "EUR").amount == Decimal("0.60")


# -- the console -------------------------------------------------------------------------------------


def rules_form(page_html: str, **fields: str) -> dict[str, str]:
    return {
        "csrf_token": csrf_token(page_html),
        "enabled": "y",
        "description": "A 5 euro voucher",
        "kind": "single",
        "payout": "webhook",
        "hold_days": "0",
        **fields,
    }


def test_marketers_set_the_rules_in_the_console(app: Flask, runtime: Runtime, shop: Campaign) -> None:
    client = staff_client(app, "marketer")
    page = client.get("/console/campaigns/spring/rewards")
    saved = client.post(
        "/console/campaigns/spring/rewards/program",
        data=rules_form(
            page.text,
            kind="tiered",
            milestones="3: a coffee\n10: a bag of beans\n",
            min_order="25.00",
            currency="eur",
            new_customers_only="y",
            cap_per_referrer="4",
            hold_days="14",
            payout="coupon",
            code_prefix="THANKS-",
        ),
    )
    assert saved.status_code == 303
    expected = RewardRules(
        kind=ProgrammeKind.TIERED,
        milestones=(Milestone(3, "a coffee"), Milestone(10, "a bag of beans")),
        min_order=Money.parse("25.00", "EUR"),
        new_customers_only=True,
        cap_per_referrer=4,
        hold_days=14,
        payout=PayoutMethod.COUPON,
        code_prefix="THANKS-",
    )
    assert reward_program(runtime.db, "spring").rules == expected
    shown = form_values(client.get("/console/campaigns/spring/rewards").text)
    assert shown["milestones"] == ["3: a coffee\n10: a bag of beans"] and shown["min_order"] == ["25.00"]
    assert shown["hold_days"] == ["14"] and shown["code_prefix"] == ["THANKS-"]

    for fields, message in [
        ({"kind": "tiered", "milestones": "three: a coffee"}, "is not &#34;friends: reward&#34;"),
        ({"kind": "tiered", "milestones": "10: beans\n3: coffee"}, "milestones go up"),
        ({"min_order": "12,50", "currency": "EUR"}, "decimal string"),
        ({"currency": "EUR"}, "give both, or neither"),
        ({"code_prefix": "-X"}, "formula"),
    ]:
        refused = client.post("/console/campaigns/spring/rewards/program", data=rules_form(page.text, **fields))
        assert refused.status_code == 422 and message.lower() in refused.text.lower(), fields
    too_long = client.post("/console/campaigns/spring/rewards/program", data=rules_form(page.text, hold_days="400"))
    assert too_long.status_code == 422
    assert reward_program(runtime.db, "spring").rules == expected


def test_rewards_are_found_and_reviewed_together(
    app: Flask, runtime: Runtime, shop: Campaign, clock: FixedClock
) -> None:
    for sender in ("Ann", "Ann", "Bob"):
        redeem(runtime.db, "spring", invite(runtime, shop, sender)[1], now=clock.now())
    flagged, ann, bob = rewards(runtime)
    with runtime.db.transaction() as session:
        session.execute(
            Reward.__table__.update().where(Reward.id == flagged.id).values(flagged=True, flags=["same_ip"])
        )
    client = staff_client(app, "marketer")
    found = client.get("/console/campaigns/spring/rewards?flagged=no&referrer=ann")
    assert f'id="found-{ann.id}"' in found.text and f'id="found-{bob.id}"' not in found.text
    assert f'id="found-{flagged.id}"' not in found.text and "Approve the 1 held reward found" in found.text
    approved = client.post(
        "/console/campaigns/spring/rewards/bulk",
        data={"csrf_token": csrf_token(found.text), "decision": "approve", "flagged": "no", "referrer": "ann"},
    )
    assert approved.status_code == 303 and "referrer=ann" in approved.headers["Location"]
    assert [r.status for r in rewards(runtime)] == ["held", "approved", "held"]

    page = client.get("/console/campaigns/spring/rewards?status=held")
    no_reason = client.post(
        "/console/campaigns/spring/rewards/bulk",
        data={"csrf_token": csrf_token(page.text), "decision": "reject", "status": "held"},
    )
    assert no_reason.status_code == 422 and "Nothing was reviewed" in no_reason.text
    rejected = client.post(
        "/console/campaigns/spring/rewards/bulk",
        data={"csrf_token": csrf_token(page.text), "decision": "reject", "status": "held", "reason": "test orders"},
    )
    assert rejected.status_code == 303
    assert [(r.status, r.reason) for r in rewards(runtime)] == [
        ("rejected", "test orders"),
        ("approved", None),
        ("rejected", "test orders"),
    ]
    tomorrow = (clock.now() + timedelta(days=1)).date().isoformat()
    today = clock.now().date().isoformat()
    assert "No reward matches." in client.get(f"/console/campaigns/spring/rewards?from={tomorrow}").text
    assert f'id="found-{ann.id}"' in client.get(f"/console/campaigns/spring/rewards?from={today}&to={today}").text
    bad = client.get("/console/campaigns/spring/rewards?from=yesterday")
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.text
    history_shown = client.get("/console/campaigns/spring/rewards?referrer=ann&flagged=no").text
    assert "approved · marketer@staff.example" in history_shown and "earned · system" in history_shown


def test_the_rewards_export_is_safe_in_a_spreadsheet(
    app: Flask, runtime: Runtime, shop: Campaign, clock: FixedClock
) -> None:
    redeem(runtime.db, "spring", invite(runtime, shop, '=HYPERLINK("http://x")')[1], order=order("@SUM(1)", "12.50"))
    redeem(runtime.db, "spring", invite(runtime, shop, "Bob")[1])
    review(runtime.db, "spring", rewards(runtime)[1].id, ReviewDecision(True, "mia"))
    client = staff_client(app, "marketer")
    response = client.get("/console/campaigns/spring/rewards.csv?status=held")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:3] == ["id", "earned_at", "referrer"] and len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["referrer"] == '\'=HYPERLINK("http://x")' and row["order_id"] == "'@SUM(1)"
    assert row["order_total"] == "12.50 EUR" and row["status"] == "held"
    everything = list(csv.reader(io.StringIO(client.get("/console/campaigns/spring/rewards.csv").text)))
    assert [r[7] for r in everything[1:]] == ["held", "approved"]
    assert client.get("/console/campaigns/spring/rewards.csv?flagged=maybe").status_code == 400
    assert (
        staff_client(app, "compliance", "c@staff.example").get("/console/campaigns/spring/rewards.csv").status_code
        == 403
    )


# -- revenue -------------------------------------------------------------------------------------------


def test_revenue_by_generation_and_by_ambassador(app: Flask, runtime: Runtime, shop: Campaign) -> None:
    ann_to_cat, code_1 = invite(runtime, shop, "Ann")
    _, code_2 = invite(runtime, shop, "Cat", parent=ann_to_cat)
    _, code_3 = invite(runtime, shop, "Cat", parent=ann_to_cat)
    _, code_4 = invite(runtime, shop, "Bob")
    redeem(runtime.db, "spring", code_1, order=order("R-1", "30.00"))
    redeem(runtime.db, "spring", code_2, order=order("R-2", "20.05"))
    redeem(runtime.db, "spring", code_3, order=order("R-3", "10", "USD"))
    redeem(runtime.db, "spring", code_4)  # no order total: counts nowhere
    response = app.test_client().get("/api/v1/campaigns/spring/metrics", headers=key(runtime))
    revenue = response.get_json()["revenue"]
    assert revenue["totals"] == [
        {"currency": "EUR", "orders": 2, "total": "50.05"},
        {"currency": "USD", "orders": 1, "total": "10.00"},
    ]
    assert revenue["by_generation"] == [
        {"generation": 1, "currency": "EUR", "orders": 1, "total": "30.00"},
        {"generation": 2, "currency": "EUR", "orders": 1, "total": "20.05"},
        {"generation": 2, "currency": "USD", "orders": 1, "total": "10.00"},
    ]
    # Ann's chain brought every order; Cat's the two her friends placed.
    assert revenue["by_ambassador"] == [
        {"sender_name": "Ann", "currency": "EUR", "orders": 2, "total": "50.05"},
        {"sender_name": "Cat", "currency": "EUR", "orders": 1, "total": "20.05"},
        {"sender_name": "Ann", "currency": "USD", "orders": 1, "total": "10.00"},
        {"sender_name": "Cat", "currency": "USD", "orders": 1, "total": "10.00"},
    ]
    page = staff_client(app, "marketer").get("/console/campaigns/spring/dashboard").text
    assert "50.05 EUR" in page and "10.00 USD" in page


def test_a_code_reaches_the_referrer_through_the_outbox_in_the_campaigns_language(
    database_url: str, settings_for: Callable[..., Settings], clock: FixedClock
) -> None:
    # The app as it runs without providers: messages go to the outbox, readable at /dev/outbox.json.
    app = create_app(settings_for(database_url), clock=clock)
    runtime = runtime_of(app)
    try:
        shop = make_campaign(runtime.db, "spring", policy_settings=WITH_INCENTIVES, coupon_mode="pool", locales=["nl"])
        programme(runtime, RewardRules(payout=PayoutMethod.COUPON), description="een gratis koffie")
        confirmed = Confirmed()
        runtime.payouts.contacts = confirmed
        redeem(runtime.db, "spring", invite(runtime, shop, "Ann")[1], now=clock.now())
        approve_all(runtime)
        confirmed.contacts[rewards(runtime)[0].referrer_key] = Contact("email", "ann@example.com")
        runtime.payouts.links = lambda campaign_id, key: ("http://fluister.test/r/T", "http://fluister.test/r/T/stop")
        runtime.payouts.run_due()
        runtime.queue.drain()
        [message] = app.test_client().get("/dev/outbox.json").get_json()
        assert "http://fluister.test/r/T/stop" in message["text"]  # the one-click stop of these messages
        code = rewards(runtime)[0].payout_code
        assert message["to"] == "ann@example.com" and message["subject"] == "Je beloning van Acme"
        assert f"Je beloning: een gratis koffie. Je code: {code}" in message["text"]
        assert rewards(runtime)[0].status == "paid"
    finally:
        runtime.db.dispose()


def test_a_send_that_may_have_left_is_never_repeated(
    runtime: Runtime, shop: Campaign, clock: FixedClock, transport: MemoryTransport
) -> None:
    programme(runtime, RewardRules(payout=PayoutMethod.COUPON))
    confirmed = Confirmed()
    runtime.payouts.contacts = confirmed
    for name in ("Ann", "Bob"):
        redeem(runtime.db, "spring", invite(runtime, shop, name)[1], now=clock.now())
    approve_all(runtime)
    ann, bob = rewards(runtime)
    confirmed.contacts[ann.referrer_key] = Contact("email", "ann@example.com")
    confirmed.contacts[bob.referrer_key] = Contact("email", "bob@example.com")
    transport.fail_next(AmbiguousError("timed out after sending"), TransientError("429 slow down"))
    runtime.payouts.run_due()
    runtime.queue.drain()
    ann, bob = rewards(runtime)
    assert (ann.payout_state, ann.status) == ("unknown", "approved")
    assert (bob.payout_state, bob.status) == ("capped", "approved")  # tried again in an hour
    clock.advance(timedelta(hours=1))
    runtime.payouts.run_due()
    runtime.queue.drain()
    ann, bob = rewards(runtime)
    assert [email.to for email in transport.emails] == ["bob@example.com"]
    assert (ann.payout_state, bob.payout_state, bob.status) == ("unknown", "sent", "paid")


def test_a_referrer_without_a_contact_waits_visibly(
    app: Flask, runtime: Runtime, shop: Campaign, clock: FixedClock
) -> None:
    programme(runtime, RewardRules(payout=PayoutMethod.COUPON))
    source = app.test_cli_runner().invoke(
        args=["rewards", "load-codes", "spring", "-"], input="POOL-A\nPOOL-B\nPOOL-A\n"
    )
    assert source.exit_code == 0 and "2 payout codes added" in source.output
    redeem(runtime.db, "spring", invite(runtime, shop, "Ann")[1], now=clock.now())
    approve_all(runtime)
    # A WhatsApp number alone is no way to send a code (no approved template for it): still waiting.
    confirmed = Confirmed()
    confirmed.contacts[rewards(runtime)[0].referrer_key] = Contact("whatsapp", "+31612345678")
    runtime.payouts.contacts = confirmed
    runtime.payouts.run_due()
    runtime.queue.drain()
    reward = rewards(runtime)[0]
    assert (reward.status, reward.payout_state, reward.payout_code) == ("approved", "waiting_contact", None)
    page = staff_client(app, "marketer").get("/console/campaigns/spring/rewards?status=approved").text
    assert "the referrer has confirmed no address or number" in page
    bad = app.test_cli_runner().invoke(args=["rewards", "load-codes", "spring", "-"], input="HAS SPACE\n")
    assert bad.exit_code == 1 and "space" in bad.output


def test_an_eu_strict_campaign_offers_no_rules_to_set(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "spring", policy_name="eu-strict", policy_settings={})
    client = staff_client(app, "marketer")
    page = client.get("/console/campaigns/spring/rewards")
    assert "allows no incentives" in page.text and "<fieldset disabled>" in page.text
    response = client.post(
        "/console/campaigns/spring/rewards/program",
        data=rules_form(page.text, kind="tiered", milestones="3: a coffee", payout="coupon"),
    )
    assert response.status_code == 422 and "Rewards stay off" in response.text
    assert reward_program(runtime.db, "spring").enabled is False
    loaded = app.test_cli_runner().invoke(args=["rewards", "load-codes", "spring", "-"], input="POOL-A\n")
    assert loaded.exit_code == 1 and "no incentives" in loaded.output


def test_friends_converting_at_once_stay_under_the_cap(runtime: Runtime, shop: Campaign) -> None:
    # On PostgreSQL the conversions race for real (an advisory lock per referrer orders them);
    # SQLite's writers take turns.
    programme(runtime, RewardRules(cap_per_referrer=2))
    codes = [invite(runtime, shop, "Ann")[1] for _ in range(6)]
    start = threading.Barrier(len(codes))
    errors: list[BaseException] = []

    def convert(code: str) -> None:
        start.wait()
        try:
            redeem(runtime.db, "spring", code)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=convert, args=(code,)) for code in codes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count_of(runtime, Redemption) == 6 and len(rewards(runtime)) == 2


def test_the_referrers_page_shows_the_milestones_ahead(runtime: Runtime, shop: Campaign) -> None:
    rules = RewardRules(
        kind=ProgrammeKind.TIERED, milestones=(Milestone(3, "a coffee"), Milestone(10, "a bag of beans"))
    )
    programme(runtime, rules, description="")
    with runtime.db.reading() as session:
        ahead = milestones_ahead(session, shop.id, 4)
    assert [(m.friends, m.reward, m.to_go) for m in ahead] == [(10, "a bag of beans", 6)]
    programme(runtime, RewardRules())
    with runtime.db.reading() as session:
        assert milestones_ahead(session, shop.id, 0) == []
