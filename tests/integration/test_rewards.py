"""Referrer rewards on SQLite and PostgreSQL: a reward per conversion, only where the policy
allows incentives and the campaign has rewards on; held until reviewed; each fraud flag; the
contest leaderboard; the review page and the API."""

from __future__ import annotations

import re
from itertools import count
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from engine.models import Campaign, Click, Coupon, Forward
from engine.models.rewards import Reward, RewardStatus
from engine.runtime import Runtime
from engine.services import coupons
from engine.services.rewards import (
    AlreadyReviewed,
    ProgramSettings,
    ReviewDecision,
    RewardsNotAllowed,
    leaderboard,
    review,
    set_program,
)
from tests.helpers import US_CUSTOM_SMS, csrf_token, make_campaign, staff_client

WITH_INCENTIVES = {**US_CUSTOM_SMS, "incentives": True}
_numbers = count(1)


@pytest.fixture
def shop(runtime: Runtime) -> Campaign:
    campaign = make_campaign(runtime.db, "spring", policy_settings=WITH_INCENTIVES, coupon_mode="pool")
    set_program(runtime.db, "spring", ProgramSettings(True, "A 5 euro voucher per friend who orders"))
    return campaign


def invite(
    runtime: Runtime,
    campaign: Campaign,
    sender: str = "Ann",
    *,
    sender_contact: str | None = None,
    parent: Forward | None = None,
    ip: str | None = None,
    recipient: str | None = None,
    recipient_contact: str | None = None,
) -> tuple[Forward, str]:
    """A forward (an invitation from `sender`) and the code its friend was given."""
    n = next(_numbers)
    with runtime.db.transaction() as session:
        forward = Forward(
            public_id=f"pub{n}",
            campaign_id=campaign.id,
            parent_id=parent.id if parent else None,
            generation=parent.generation + 1 if parent else 1,
            channel="email",
            sender_name=sender,
            sender_contact_hash=sender_contact,
            recipient_contact_hash=recipient or f"h-friend-{n}",
            recipient_contact=recipient_contact,
            policy_name="custom",
            policy_version=1,
            client_ip_hash=ip or f"ip-{sender}",
        )
        session.add(forward)
        session.flush()
        session.add(Coupon(campaign_id=campaign.id, code=f"CODE-{n}", forward_id=forward.id))
    return forward, f"CODE-{n}"


def click(runtime: Runtime, forward: Forward, user_agent: str = "Mozilla/5.0 (iPhone)", ip: str = "ip-x") -> None:
    with runtime.db.transaction() as session:
        session.add(Click(forward_id=forward.id, user_agent=user_agent, client_ip_hash=ip))


def rewards_of(runtime: Runtime) -> list[Reward]:
    with runtime.db.reading() as session:
        return list(session.scalars(select(Reward).order_by(Reward.id)))


def reward_for(runtime: Runtime, code: str) -> Reward:
    record = coupons.redeem(runtime.db, "spring", code)
    (reward,) = [r for r in rewards_of(runtime) if r.redemption_id == record.id]
    return reward


def board(runtime: Runtime) -> list[tuple[str, int, int]]:
    return [(e.sender_name, e.converted_friends, e.approved) for e in leaderboard(runtime.db, "spring").entries]


# -- when a reward is made ---------------------------------------------------------------------------


def test_a_conversion_earns_the_referrer_a_reward_held_for_review(runtime: Runtime, shop: Campaign) -> None:
    forward, code = invite(runtime, shop, "Ann", sender_contact="h-ann")
    click(runtime, forward)
    reward = reward_for(runtime, code)
    assert (reward.referrer_name, reward.forward_id, reward.status, reward.flags) == ("Ann", forward.id, "held", [])
    assert reward.referrer_key == "c:h-ann"
    assert board(runtime) == [("Ann", 1, 0)]  # held and unflagged: counts, not yet approved

    approved = review(runtime.db, "spring", reward.id, ReviewDecision(True, "m@staff.example"))
    assert (approved.status, approved.reviewed_by) == ("approved", "m@staff.example")
    assert approved.reviewed_at is not None
    assert board(runtime) == [("Ann", 1, 1)]
    with pytest.raises(AlreadyReviewed):
        review(runtime.db, "spring", reward.id, ReviewDecision(False, "m@staff.example", "changed my mind"))


def test_no_reward_without_incentives_or_with_rewards_off(runtime: Runtime) -> None:
    strict = make_campaign(runtime.db, "strict", policy_name="eu-strict", policy_settings={}, coupon_mode="pool")
    with pytest.raises(RewardsNotAllowed, match="eu-strict"):
        set_program(runtime.db, "strict", ProgramSettings(True, "A voucher"))
    # Even a program switched on before the policy changed rewards nothing under eu-strict.
    with runtime.db.transaction() as session:
        from engine.models.rewards import RewardProgram

        session.add(RewardProgram(campaign_id=strict.id, enabled=True, description="A voucher"))
    _, strict_code = invite(runtime, strict)
    coupons.redeem(runtime.db, "strict", strict_code)

    plain = make_campaign(runtime.db, "plain", policy_settings=WITH_INCENTIVES, coupon_mode="pool")
    _, plain_code = invite(runtime, plain)
    coupons.redeem(runtime.db, "plain", plain_code)  # incentives allowed, rewards never switched on
    assert rewards_of(runtime) == []
    assert leaderboard(runtime.db, "strict").entries == []

    set_program(runtime.db, "plain", ProgramSettings(True, "A voucher"))
    set_program(runtime.db, "plain", ProgramSettings(False, "A voucher"))
    _, another = invite(runtime, plain)
    coupons.redeem(runtime.db, "plain", another)
    assert rewards_of(runtime) == []


def test_a_code_no_friend_was_given_rewards_nobody(runtime: Runtime, shop: Campaign) -> None:
    with runtime.db.transaction() as session:
        session.add(Coupon(campaign_id=shop.id, code="SHOP-OWN"))
    coupons.redeem(runtime.db, "spring", "SHOP-OWN")
    assert rewards_of(runtime) == []


# -- the fraud flags ---------------------------------------------------------------------------------


def test_self_referral_is_flagged(runtime: Runtime, shop: Campaign) -> None:
    # Ann arrived through a forward sent to her address, then invited that same address.
    to_ann, _ = invite(runtime, shop, "Zoe", recipient="h-ann")
    own, code = invite(runtime, shop, "Ann", parent=to_ann, recipient="h-ann-again")
    with runtime.db.transaction() as session:  # the "friend" forwarded on under Ann's own contact
        session.add(
            Forward(
                public_id="pubSelf",
                campaign_id=shop.id,
                parent_id=own.id,
                generation=3,
                channel="email",
                sender_name="Not Ann",
                sender_contact_hash="h-ann",
                recipient_contact_hash="h-someone",
                policy_name="custom",
                policy_version=1,
            )
        )
    assert reward_for(runtime, code).flags == ["self_referral"]


def test_a_click_from_the_referrers_address_is_flagged(runtime: Runtime, shop: Campaign) -> None:
    forward, code = invite(runtime, shop, "Ann", ip="ip-home")
    click(runtime, forward, ip="ip-home")
    reward = reward_for(runtime, code)
    assert reward.flags == ["same_ip"] and reward.status == "held"


def test_one_device_behind_several_converting_friends_flags_them_all(runtime: Runtime, shop: Campaign) -> None:
    first, first_code = invite(runtime, shop, "Ann", sender_contact="h-ann")
    second, second_code = invite(runtime, shop, "Ann", sender_contact="h-ann")
    elsewhere, elsewhere_code = invite(runtime, shop, "Bo", sender_contact="h-bo")
    for forward in (first, second, elsewhere):
        click(runtime, forward, "Mozilla/5.0 (Burner)", "ip-burner")
    assert reward_for(runtime, first_code).flags == []  # one friend so far: nothing repeated
    assert reward_for(runtime, second_code).flags == ["repeated_device"]
    assert reward_for(runtime, elsewhere_code).flags == []  # another referrer's friend
    flags = {r.forward_id: r.flags for r in rewards_of(runtime)}
    assert flags[first.id] == ["repeated_device"]  # flagged in turn, while still held


def test_a_disposable_address_is_flagged_while_it_is_kept(runtime: Runtime, shop: Campaign) -> None:
    _, kept = invite(runtime, shop, "Ann", recipient_contact="friend@mailinator.com")
    _, purged = invite(runtime, shop, "Ann")  # hash only: nothing to judge
    assert reward_for(runtime, kept).flags == ["disposable_address"]
    assert reward_for(runtime, purged).flags == []


# -- the leaderboard -----------------------------------------------------------------------------------


def test_the_leaderboard_ranks_eligible_converted_friends(runtime: Runtime, shop: Campaign) -> None:
    ids: dict[str, list[int]] = {}
    for sender, clean, flagged in [("Bo", 1, 1), ("Ann", 2, 0), ("Cy", 3, 0), ("Dee", 1, 0)]:
        for _ in range(clean):
            _, code = invite(runtime, shop, sender, sender_contact=f"h-{sender}")
            ids.setdefault(sender, []).append(reward_for(runtime, code).id)
        for _ in range(flagged):
            forward, code = invite(runtime, shop, sender, sender_contact=f"h-{sender}", ip=f"ip-{sender}")
            click(runtime, forward, ip=f"ip-{sender}")
            ids.setdefault(sender, []).append(reward_for(runtime, code).id)
    for reward_id in ids["Cy"][:2]:
        review(runtime.db, "spring", reward_id, ReviewDecision(False, "m@staff.example", "orders cancelled"))
    # Cy: 1 left; Bo: 1 (the flagged one waits); ties go to who converted first (Bo, then Cy, then Dee).
    assert board(runtime) == [("Ann", 2, 0), ("Bo", 1, 0), ("Cy", 1, 0), ("Dee", 1, 0)]
    # A reviewer who approves the flagged one decides it counts.
    review(runtime.db, "spring", ids["Bo"][1], ReviewDecision(True, "m@staff.example"))
    assert board(runtime)[:2] == [("Bo", 2, 1), ("Ann", 2, 0)]


def test_the_leaderboard_api_with_a_key(app: Flask, runtime: Runtime, shop: Campaign) -> None:
    _, code = invite(runtime, shop, "Ann", sender_contact="h-ann")
    reward_for(runtime, code)
    key = runtime.staff.create_api_key("contest", "marketer").secret
    client = app.test_client()
    response = client.get("/api/v1/campaigns/spring/leaderboard", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["rewards_enabled"] is True
    assert body["referrers"] == [{"rank": 1, "sender_name": "Ann", "converted_friends": 1, "approved": 0}]
    assert client.get("/api/v1/campaigns/spring/leaderboard").status_code == 401
    compliance = runtime.staff.create_api_key("audit", "compliance").secret
    forbidden = client.get("/api/v1/campaigns/spring/leaderboard", headers={"Authorization": f"Bearer {compliance}"})
    assert forbidden.status_code == 403 and forbidden.mimetype == "application/problem+json"
    missing = client.get("/api/v1/campaigns/nope/leaderboard", headers={"Authorization": f"Bearer {key}"})
    assert missing.status_code == 404


def test_a_redemption_through_the_api_makes_the_reward(app: Flask, runtime: Runtime, shop: Campaign) -> None:
    _, code = invite(runtime, shop, "Ann")
    key = runtime.staff.create_api_key("till", "marketer").secret
    response = app.test_client().post(
        "/api/v1/redemptions", json={"campaign": "spring", "code": code}, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 201
    assert [(r.referrer_name, r.status) for r in rewards_of(runtime)] == [("Ann", "held")]


# -- the review page -----------------------------------------------------------------------------------


def decide(client: Any, reward_id: int, decision: str, reason: str = "") -> Any:
    page = client.get("/console/campaigns/spring/rewards")
    return client.post(
        f"/console/campaigns/spring/rewards/{reward_id}",
        data={"csrf_token": csrf_token(page.text), "decision": decision, "reason": reason},
    )


def test_marketers_review_held_rewards_in_the_console(app: Flask, runtime: Runtime, shop: Campaign) -> None:
    forward, flagged_code = invite(runtime, shop, "Ann", ip="ip-home")
    click(runtime, forward, ip="ip-home")
    flagged = reward_for(runtime, flagged_code)
    _, clean_code = invite(runtime, shop, "Bo")
    clean = reward_for(runtime, clean_code)

    client = staff_client(app, "marketer")
    page = client.get("/console/campaigns/spring/rewards")
    assert page.status_code == 200
    assert re.search(rf'id="reward-{flagged.id}" data-flags="same_ip"', page.text)
    assert "Same address" in page.text and "Held for review (2)" in page.text

    refused = decide(client, flagged.id, "reject")  # no reason
    assert refused.status_code == 422 and "why" in refused.text
    assert decide(client, flagged.id, "reject", "Clicked from the referrer's own connection").status_code == 303
    assert decide(client, clean.id, "approve").status_code == 303
    assert decide(client, clean.id, "reject", "too late").status_code == 409
    statuses = {r.id: (r.status, r.reason) for r in rewards_of(runtime)}
    assert statuses == {
        flagged.id: ("rejected", "Clicked from the referrer's own connection"),
        clean.id: ("approved", None),
    }
    after = client.get("/console/campaigns/spring/rewards")
    assert "Nothing waits for review." in after.text and "marketer@staff.example" in after.text

    without_token = client.post(f"/console/campaigns/spring/rewards/{clean.id}", data={"decision": "approve"})
    assert without_token.status_code in (400, 422)

    dashboard = client.get("/console/campaigns/spring/dashboard")
    assert "Referral contest" in dashboard.text and "Bo" in dashboard.text


def test_compliance_staff_may_not_review(app: Flask, runtime: Runtime, shop: Campaign) -> None:
    _, code = invite(runtime, shop, "Ann")
    reward = reward_for(runtime, code)
    compliance = staff_client(app, "compliance")
    assert compliance.get("/console/campaigns/spring/rewards").status_code == 403
    token = csrf_token(compliance.get("/login").text)  # a valid token of their session: the role decides
    refused = compliance.post(
        f"/console/campaigns/spring/rewards/{reward.id}", data={"csrf_token": token, "decision": "approve"}
    )
    assert refused.status_code == 403
    admin = staff_client(app, "admin", "a@staff.example")
    assert admin.get("/console/campaigns/spring/rewards").status_code == 200
    assert rewards_of(runtime)[0].status == RewardStatus.HELD


def test_the_program_switch_is_refused_under_a_policy_without_incentives(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "spring", policy_name="eu-strict", policy_settings={})
    client = staff_client(app, "marketer")
    page = client.get("/console/campaigns/spring/rewards")
    assert "allows no incentives" in page.text
    response = client.post(
        "/console/campaigns/spring/rewards/program",
        data={"csrf_token": csrf_token(page.text), "enabled": "y", "description": "A voucher"},
    )
    assert response.status_code == 422 and "Rewards stay off" in response.text
    assert leaderboard(runtime.db, "spring").rewards_enabled is False
