"""GET /api/v1/campaigns and /campaigns/<slug>, and the cursor paging every list of the API shares:
pages that stay right while campaigns are added, and cursors that cannot be forged or moved."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engine.runtime import Runtime
from tests.helpers import make_campaign


def key(runtime: Runtime, role: str = "admin", team: str = "default", name: str | None = None) -> dict[str, str]:
    secret = runtime.staff.create_api_key(name or f"{role}-{team}", role, team=team).secret
    return {"Authorization": f"Bearer {secret}"}


def slugs(answer: Any) -> list[str]:
    return [campaign["slug"] for campaign in answer.json["data"]]


def test_a_campaign_says_what_an_integrator_needs(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "spring", coupon_mode="pool", locales=["nl", "en"], phone_region="NL")
    answer = app.test_client().get("/api/v1/campaigns/spring", headers=key(runtime))
    assert answer.status_code == 200
    campaign = answer.json
    assert {k: campaign[k] for k in ("slug", "name", "status", "policy", "team", "coupon_mode")} == {
        "slug": "spring",
        "name": "Campaign spring",
        "status": "active",
        "policy": "custom",
        "team": "default",
        "coupon_mode": "pool",
    }
    assert (campaign["locales"], campaign["phone_region"]) == (["nl", "en"], "NL")
    assert campaign["created_at"].startswith("20") and campaign["updated_at"].startswith("20")
    assert campaign["links"]["metrics"] == "/api/v1/campaigns/spring/metrics"
    assert app.test_client().get(campaign["links"]["metrics"], headers=key(runtime, name="again")).status_code == 200


def test_an_eu_strict_campaign_says_it_offers_no_incentives(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "strict", policy_name="eu-strict", policy_settings={})
    campaign = app.test_client().get("/api/v1/campaigns/strict", headers=key(runtime)).json
    assert campaign["policy"] == "eu-strict"
    assert (campaign["incentives_allowed"], campaign["rewards_enabled"]) == (False, False)


def test_unknown_and_other_teams_campaigns_are_404(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "theirs", team="other")
    client = app.test_client()
    marketer = key(runtime, "marketer")
    for path in ("/api/v1/campaigns/nope", "/api/v1/campaigns/theirs"):
        answer = client.get(path, headers=marketer)
        assert (answer.status_code, answer.mimetype) == (404, "application/problem+json")
    assert client.get("/api/v1/campaigns").status_code == 401


def test_pages_follow_each_other_and_stay_right_while_campaigns_are_added(app: Flask, runtime: Runtime) -> None:
    for slug in ("a1", "a2", "a3"):
        make_campaign(runtime.db, slug)
    client = app.test_client()
    headers = key(runtime)
    first = client.get("/api/v1/campaigns?limit=2", headers=headers)
    assert first.status_code == 200
    assert slugs(first) == ["a1", "a2"]
    assert first.json["next"].startswith("http://localhost/api/v1/campaigns?limit=2&cursor=")
    assert first.headers["Link"] == f'<{first.json["next"]}>; rel="next"'
    # Added between two pages: it comes at the end, and nothing is seen twice or skipped.
    make_campaign(runtime.db, "a0")
    second = client.get(first.json["next"], headers=headers)
    assert slugs(second) == ["a3", "a0"]
    assert second.json["next_cursor"] is None and second.json["next"] is None
    assert "Link" not in second.headers


def test_a_marketer_pages_through_their_own_teams_campaigns_only(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "ours")
    make_campaign(runtime.db, "theirs", team="other")
    answer = app.test_client().get("/api/v1/campaigns?status=active", headers=key(runtime, "marketer"))
    assert slugs(answer) == ["ours"]


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=201", "limit=ten", "limit=-1", "status=running", "cursor=abc", "cursor=", "stauts=active"],
)
def test_bad_paging_is_a_400_problem(app: Flask, runtime: Runtime, query: str) -> None:
    answer = app.test_client().get(f"/api/v1/campaigns?{query}", headers=key(runtime))
    assert (answer.status_code, answer.mimetype) == (400, "application/problem+json")


def _next_cursor(client: FlaskClient, path: str, headers: dict[str, str]) -> str:
    cursor = client.get(path, headers=headers).json["next_cursor"]
    assert cursor
    return str(cursor)


def test_a_changed_cursor_or_one_of_another_list_is_refused(app: Flask, runtime: Runtime) -> None:
    for slug in ("a1", "a2", "a3"):
        make_campaign(runtime.db, slug)
    client = app.test_client()
    headers = key(runtime)
    cursor = _next_cursor(client, "/api/v1/campaigns?limit=1", headers)
    flipped = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")
    for query in (f"cursor={flipped}", f"cursor={cursor[:-2]}", f"status=active&cursor={cursor}"):
        answer = client.get(f"/api/v1/campaigns?{query}", headers=headers)
        assert (answer.status_code, answer.mimetype) == (400, "application/problem+json"), query
        assert "cursor" in answer.json["detail"]
    assert slugs(client.get(f"/api/v1/campaigns?limit=1&cursor={cursor}", headers=headers)) == ["a2"]
