"""Rewards over the API: the list with its filters and pages, one reward, approve and reject (once),
and the refusals: a campaign without incentives, a key without the scope, another team's reward."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engine.models import Campaign
from engine.models.rewards import Reward, RewardProgram
from engine.runtime import Runtime
from engine.services.rewards import ProgramSettings, set_program
from tests.helpers import make_campaign
from tests.integration.test_rewards import WITH_INCENTIVES, click, invite, reward_for


@pytest.fixture
def shop(runtime: Runtime) -> Campaign:
    campaign = make_campaign(runtime.db, "spring", policy_settings=WITH_INCENTIVES, coupon_mode="pool")
    set_program(runtime.db, "spring", ProgramSettings(True, "A 5 euro voucher per friend who orders"))
    return campaign


def bearer(runtime: Runtime, name: str, role: str = "marketer", **kwargs: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {runtime.staff.create_api_key(name, role, **kwargs).secret}"}  # type: ignore[arg-type]


def conversions(runtime: Runtime, shop: Campaign, n: int) -> list[int]:
    """n rewards of different referrers; the second one flagged (same address as its referrer)."""
    ids = []
    for i in range(n):
        forward, code = invite(runtime, shop, f"Referrer {i}", ip=f"ip-{i}")
        click(runtime, forward, ip=f"ip-{i}" if i == 1 else f"elsewhere-{i}")
        ids.append(reward_for(runtime, code).id)
    return ids


def test_the_list_filters_and_pages_in_review_order(app: Flask, runtime: Runtime, shop: Campaign) -> None:
    ids = conversions(runtime, shop, 3)
    client = app.test_client()
    headers = bearer(runtime, "shop")
    everything = client.get("/api/v1/campaigns/spring/rewards", headers=headers)
    assert everything.status_code == 200
    assert [r["id"] for r in everything.json["data"]] == ids
    first = everything.json["data"][0]
    assert (first["campaign"], first["referrer_name"], first["status"]) == ("spring", "Referrer 0", "held")
    flagged = client.get("/api/v1/campaigns/spring/rewards?flagged=true", headers=headers).json["data"]
    assert [(r["id"], r["flags"]) for r in flagged] == [(ids[1], ["same_ip"])]
    clean = client.get("/api/v1/campaigns/spring/rewards?flagged=false&limit=1", headers=headers)
    assert [r["id"] for r in clean.json["data"]] == [ids[0]]
    rest = client.get(clean.json["next"], headers=headers)
    assert [r["id"] for r in rest.json["data"]] == [ids[2]] and rest.json["next"] is None
    # A cursor of the flagged=false list is not one of the unfiltered list.
    moved = client.get(f"/api/v1/campaigns/spring/rewards?cursor={clean.json['next_cursor']}", headers=headers)
    assert moved.status_code == 400
    assert client.get("/api/v1/campaigns/spring/rewards?status=approved", headers=headers).json["data"] == []
    assert client.get("/api/v1/campaigns/spring/rewards?status=paid-ish", headers=headers).status_code == 400
    assert client.get("/api/v1/campaigns/spring/rewards?flagged=yes", headers=headers).status_code == 400


def test_approve_once_and_reject_with_a_reason(app: Flask, runtime: Runtime, shop: Campaign) -> None:
    first, second = conversions(runtime, shop, 2)
    client = app.test_client()
    headers = bearer(runtime, "reviewer")
    approved = client.post(f"/api/v1/rewards/{first}/approve", headers=headers)
    assert approved.status_code == 200
    assert (approved.json["status"], approved.json["reviewed_by"]) == ("approved", "reviewer")
    assert client.get(f"/api/v1/rewards/{first}", headers=headers).json["status"] == "approved"

    again = client.post(f"/api/v1/rewards/{first}/reject", json={"reason": "too late"}, headers=headers)
    assert (again.status_code, again.mimetype) == (409, "application/problem+json")
    assert again.json["type"] == "urn:fluister:problem:already-reviewed"
    assert again.json["reward_status"] == "approved"

    no_reason = client.post(f"/api/v1/rewards/{second}/reject", json={}, headers=headers)
    assert no_reason.status_code == 422 and no_reason.json["errors"][0]["field"] == "reason"
    unknown_field = client.post(f"/api/v1/rewards/{second}/reject", json={"reason": "x", "why": 1}, headers=headers)
    assert unknown_field.status_code == 422
    not_json = client.post(f"/api/v1/rewards/{second}/reject", data="reason=x", headers=headers)
    assert not_json.status_code == 415
    rejected = client.post(f"/api/v1/rewards/{second}/reject", json={"reason": "self-referral"}, headers=headers)
    assert rejected.status_code == 200
    assert (rejected.json["status"], rejected.json["reason"]) == ("rejected", "self-referral")


def test_review_needs_the_rewards_scope_and_the_campaigns_team(app: Flask, runtime: Runtime, shop: Campaign) -> None:
    (reward,) = conversions(runtime, shop, 1)
    client = app.test_client()
    reader = bearer(runtime, "dashboard", scopes=["metrics:read"])
    assert client.get(f"/api/v1/rewards/{reward}", headers=reader).status_code == 200
    refused = client.post(f"/api/v1/rewards/{reward}/approve", headers=reader)
    assert refused.status_code == 403 and "rewards" in refused.json["detail"]
    outsider = bearer(runtime, "other-shop", team="other")
    for answer in (
        client.get(f"/api/v1/rewards/{reward}", headers=outsider),
        client.post(f"/api/v1/rewards/{reward}/approve", headers=outsider),
        client.get("/api/v1/campaigns/spring/rewards", headers=outsider),
        client.get("/api/v1/rewards/999999", headers=reader),
        client.get(f"/api/v1/rewards/{2**31}", headers=reader),  # past PostgreSQL's integers
        client.post(f"/api/v1/rewards/{2**63}/approve", headers=bearer(runtime, "big")),
    ):
        assert (answer.status_code, answer.mimetype) == (404, "application/problem+json")
    compliance = bearer(runtime, "audit", role="compliance")
    assert client.get(f"/api/v1/rewards/{reward}", headers=compliance).status_code == 403
    assert client.get(f"/api/v1/rewards/{reward}", headers=reader).json["status"] == "held"


def test_a_campaign_without_incentives_has_no_reward_surface(app: Flask, runtime: Runtime, shop: Campaign) -> None:
    (reward,) = conversions(runtime, shop, 1)
    # The policy changed since (a reward made before it stays in the table, and is not offered).
    with runtime.db.transaction() as session:
        campaign = session.get(Campaign, shop.id)
        assert campaign is not None
        campaign.policy_name, campaign.policy_settings = "eu-strict", {}
    strict = make_campaign(runtime.db, "strict", policy_name="eu-strict", policy_settings={})
    with runtime.db.transaction() as session:
        session.add(RewardProgram(campaign_id=strict.id, enabled=True, description="A voucher"))
    client: FlaskClient = app.test_client()
    headers = bearer(runtime, "shop")
    for answer in (
        client.get("/api/v1/campaigns/strict/rewards", headers=headers),
        client.get("/api/v1/campaigns/spring/rewards", headers=headers),
        client.get(f"/api/v1/rewards/{reward}", headers=headers),
        client.post(f"/api/v1/rewards/{reward}/approve", headers=headers),
    ):
        assert (answer.status_code, answer.mimetype) == (409, "application/problem+json")
        assert answer.json["type"] == "urn:fluister:problem:incentives-not-allowed"
        assert "eu-strict" in answer.json["detail"]
    assert client.get(f"/api/v1/rewards/{reward}", headers=bearer(runtime, "admin", role="admin")).status_code == 409
    with runtime.db.reading() as session:
        stored = session.get(Reward, reward)
        assert stored is not None and stored.status == "held"  # the refused approval changed nothing


def test_a_review_sent_again_with_its_idempotency_key_is_answered_as_the_first(
    app: Flask, runtime: Runtime, shop: Campaign
) -> None:
    (reward,) = conversions(runtime, shop, 1)
    client = app.test_client()
    headers = {**bearer(runtime, "reviewer"), "Idempotency-Key": "review-1"}
    first = client.post(f"/api/v1/rewards/{reward}/approve", headers=headers)
    again = client.post(f"/api/v1/rewards/{reward}/approve", headers=headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    # Without the key it is a second review, refused.
    plain = {"Authorization": headers["Authorization"]}
    assert client.post(f"/api/v1/rewards/{reward}/approve", headers=plain).status_code == 409
