"""Campaign analytics on SQLite and PostgreSQL: a small tree computed by hand, the recursive
queries, the API (JSON and CSV), the dashboard, landing visits and the simulator."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask

from engine.db import Database, utcnow
from engine.models import Campaign, Click, Coupon, Forward, ForwardReach, Message, Redemption
from engine.runtime import Runtime
from engine.services import analytics
from engine.services.simulation import SimulationPlan, Simulator, prepare_campaign
from engine.tokens import Purpose
from tests.helpers import staff_client

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Spec:
    name: str
    parent: str | None
    generation: int
    channel: str
    sender: str
    contact: str | None
    after: timedelta
    status: str


# The tree, by hand (see docs/analytics.md for the definitions):
#   A1 (Ann, email) ── B1 (Bo, email) ── C1 (Bea, email) ── D1 (Dee, email)
#                   ├─ B2 (Bo, email)
#                   └─ B3 (Bo, sms)
#   A2 (Ann, sms)    Z1 (Zed, email, no contact: known by address and name)
TREE = [
    Spec("A1", None, 1, "email", "Ann", "ann", timedelta(0), "delivered"),
    Spec("A2", None, 1, "sms", "Ann", "ann", timedelta(0), "sent"),
    Spec("Z1", None, 1, "email", "Zed", None, timedelta(0), "bounced"),
    Spec("B1", "A1", 2, "email", "Bo", None, timedelta(hours=3), "delivered"),
    Spec("B2", "A1", 2, "email", "Bo", None, timedelta(hours=3), "delivered"),
    Spec("B3", "A1", 2, "sms", "Bo", None, timedelta(hours=3), "failed"),
    Spec("C1", "B1", 3, "email", "Bea", "bea", timedelta(days=1), "sent"),
    Spec("D1", "C1", 4, "email", "Dee", None, timedelta(days=2), "queued"),
]
CLICKS = {
    "A1": [timedelta(hours=1), timedelta(hours=2)],
    "A2": [timedelta(minutes=30)],
    "B1": [timedelta(hours=5)],
    "B2": [timedelta(hours=6)],
    "C1": [timedelta(days=1, hours=4)],
}
REDEEMED = ["B2", "D1"]
VISITS = {None: 4, "A1": 2, "A2": 1, "B1": 1, "B2": 1, "C1": 1}


def build_tree(db: Database, campaign: Campaign) -> dict[str, Forward]:
    forwards: dict[str, Forward] = {}
    with db.transaction() as session:
        for spec in TREE:
            parent = forwards.get(spec.parent) if spec.parent else None
            forward = Forward(
                public_id=f"pub{spec.name}",
                campaign_id=campaign.id,
                parent_id=parent.id if parent else None,
                generation=spec.generation,
                channel=spec.channel,
                sender_name=spec.sender,
                sender_contact_hash=spec.contact,
                recipient_contact_hash=f"friend-{spec.name}",
                policy_name="custom",
                policy_version=1,
                client_ip_hash=f"ip-{spec.sender}",
                created_at=T0 + spec.after,
            )
            session.add(forward)
            session.flush()
            forwards[spec.name] = forward
            session.add(
                Message(
                    public_id=f"msg{spec.name}",
                    forward_id=forward.id,
                    channel=spec.channel,
                    status=spec.status,
                    policy_name="custom",
                    policy_version=1,
                )
            )
        for name, delays in CLICKS.items():
            for delay in delays:
                session.add(Click(forward_id=forwards[name].id, created_at=T0 + delay))
        for name in REDEEMED:
            coupon = Coupon(campaign_id=campaign.id, code=f"CODE{name}", forward_id=forwards[name].id)
            session.add(coupon)
            session.flush()
            session.add(Redemption(coupon_id=coupon.id, campaign_id=campaign.id, forward_id=forwards[name].id))
    for via, times in VISITS.items():
        for _ in range(times):
            analytics.count_visit(db, campaign.slug, f"pub{via}" if via else None, T0)
    return forwards


@pytest.fixture
def tree(runtime: Runtime, campaign: Campaign) -> dict[str, Forward]:
    return build_tree(runtime.db, campaign)


def figures(slice_: analytics.SliceMetrics) -> tuple[int | float | None, ...]:
    s = slice_
    return (s.visitors, s.senders, s.invites, s.became_senders, s.delivered, s.clicked, s.clicks, s.conversions)


def test_metrics_of_a_tree_computed_by_hand(runtime: Runtime, campaign: Campaign, tree: dict[str, Forward]) -> None:
    m = analytics.campaign_metrics(runtime.db, campaign.slug, NOW)

    #                       visitors senders invites became delivered clicked clicks conversions
    assert figures(m.overall) == (10, 5, 8, 3, 5, 5, 6, 2)
    assert m.overall.k == pytest.approx(8 / 5 * 3 / 8)  # 0.6
    assert m.overall.share_rate == pytest.approx(0.5)
    assert m.overall.click_through == pytest.approx(1.0)
    # Cycles: A1 clicked at +1 h, B1 at +3 h (2 h); B1 +5 h → C1 +24 h (19 h); C1 +28 h → D1 +48 h (20 h).
    assert m.overall.cycle_time_seconds == pytest.approx(19 * 3600)

    by_generation = {g.generation: g for g in m.generations}
    assert figures(by_generation[1]) == (4, 2, 3, 1, 2, 2, 3, 0)
    assert figures(by_generation[2]) == (3, 1, 3, 1, 2, 2, 2, 1)
    assert figures(by_generation[3]) == (2, 1, 1, 1, 1, 1, 1, 0)
    assert figures(by_generation[4]) == (1, 1, 1, 0, 0, 0, 0, 1)
    assert [by_generation[g].k for g in (1, 2, 3, 4)] == [pytest.approx(0.5), 1.0, 1.0, 0.0]
    assert by_generation[1].cycle_time_seconds == pytest.approx(2 * 3600)
    assert by_generation[4].cycle_time_seconds is None

    by_channel = {c.channel: c for c in m.channels}
    assert list(by_channel) == ["email", "sms", "direct"]
    # Senders and visitors by the channel they came through; the rest by the invitation's channel.
    assert figures(by_channel["email"]) == (5, 3, 6, 3, 4, 4, 5, 2)
    assert figures(by_channel["sms"]) == (1, 0, 2, 0, 1, 1, 1, 0)
    assert figures(by_channel["direct"]) == (4, 2, 0, 0, 0, 0, 0, 0)
    assert by_channel["email"].k is None

    assert [(a.sender_name, a.forwards, a.reach, a.conversions) for a in m.ambassadors_by_reach] == [
        ("Ann", 2, 7, 2),
        ("Bo", 3, 5, 2),
        ("Bea", 1, 2, 1),
        ("Zed", 1, 1, 0),
        ("Dee", 1, 1, 1),
    ]
    assert [a.sender_name for a in m.ambassadors_by_conversions] == ["Ann", "Bo", "Bea", "Dee", "Zed"]

    chains = {c.root: c for c in m.chains}
    assert (chains["pubA1"].size, chains["pubA1"].depth, chains["pubA1"].breadth) == (6, 4, 3)
    assert chains["pubA1"].conversions == 2
    assert (chains["pubZ1"].size, chains["pubZ1"].depth, chains["pubZ1"].breadth) == (1, 1, 1)
    # The dashboard lists the chains largest first (ties in the order they started).
    assert [(c.root, c.sender_name) for c in m.chains] == [("pubA1", "Ann"), ("pubA2", "Ann"), ("pubZ1", "Zed")]

    assert [(p.day.isoformat(), p.generation, p.cumulative) for p in m.reach_over_time] == [
        ("2026-01-05", 1, 3),
        ("2026-01-05", 2, 3),
        ("2026-01-06", 3, 1),
        ("2026-01-07", 4, 1),
    ]
    assert [s.count for s in m.funnel] == [10, 0, 5, 8, 5, 5, 3, 2]  # visitors, plays (no video), senders, ...


def test_recursive_queries_and_the_rollup_agree(runtime: Runtime, campaign: Campaign, tree: dict[str, Forward]) -> None:
    analytics.refresh_rollups(runtime.db, campaign.slug, NOW)
    expected = {"A1": 5, "A2": 0, "Z1": 0, "B1": 2, "B2": 0, "B3": 0, "C1": 1, "D1": 0}
    with runtime.db.reading() as session:
        for name, forward in tree.items():
            assert analytics.downstream_reach(session, forward.id) == expected[name], name
            stats = session.get(ForwardReach, forward.id)
            assert stats is not None and stats.descendants == expected[name], name
    found = analytics.forward_tree(runtime.db, campaign.slug, "pubB1")
    assert [a.public_id for a in found.ancestors] == ["pubA1"]
    assert [(d.public_id, d.parent) for d in found.descendants] == [("pubC1", "pubB1"), ("pubD1", "pubC1")]
    assert (found.depth, found.breadth, found.truncated) == (2, 1, False)
    deepest = analytics.forward_tree(runtime.db, campaign.slug, "pubD1")
    assert [a.public_id for a in deepest.ancestors] == ["pubA1", "pubB1", "pubC1"]
    limited = analytics.forward_tree(runtime.db, campaign.slug, "pubA1", limit=2)
    assert limited.truncated and len(limited.descendants) == 2


def test_metrics_api_json_and_csv(app: Flask, campaign: Campaign, tree: dict[str, Forward]) -> None:
    client = staff_client(app, "marketer")
    response = client.get(f"/api/v1/campaigns/{campaign.slug}/metrics")
    assert response.status_code == 200
    body = response.get_json()
    assert body["overall"]["invites"] == 8 and body["overall"]["k"] == 0.6
    assert [g["generation"] for g in body["generations"]] == [1, 2, 3, 4]
    assert body["ambassadors"]["by_reach"][0] == {
        "sender_name": "Ann",
        "generation": 1,
        "forwards": 2,
        "reach": 7,
        "conversions": 2,
        "forward": "pubA1",  # her forward with the most below it: where her tree starts
    }

    as_csv = client.get(f"/api/v1/campaigns/{campaign.slug}/metrics?format=csv")
    assert as_csv.status_code == 200 and as_csv.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert rows[0]["slice"] == "campaign" and rows[0]["invites"] == "8" and rows[0]["k"] == "0.6"
    assert [r["slice"] for r in rows[1:5]] == [f"generation {g}" for g in (1, 2, 3, 4)]
    chains = client.get(f"/api/v1/campaigns/{campaign.slug}/metrics.csv?figure=chains")
    first = next(csv.DictReader(io.StringIO(chains.text)))
    assert (first["root"], first["size"], first["depth"], first["breadth"]) == ("pubA1", "6", "4", "3")
    assert client.get(f"/api/v1/campaigns/{campaign.slug}/metrics.csv?figure=nope").status_code == 400

    tree_response = client.get(f"/api/v1/campaigns/{campaign.slug}/forwards/pubB1/tree")
    assert tree_response.status_code == 200
    assert [d["public_id"] for d in tree_response.get_json()["descendants"]] == ["pubC1", "pubD1"]


def test_metrics_api_refuses_strangers_and_unknown_campaigns(app: Flask, campaign: Campaign) -> None:
    anonymous = app.test_client().get(f"/api/v1/campaigns/{campaign.slug}/metrics")
    assert anonymous.status_code == 401 and anonymous.mimetype == "application/problem+json"
    client = staff_client(app, "marketer")
    missing = client.get("/api/v1/campaigns/nope/metrics")
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    assert client.get(f"/api/v1/campaigns/{campaign.slug}/forwards/nothing/tree").status_code == 404
    compliance = staff_client(app, "compliance")
    assert compliance.get(f"/api/v1/campaigns/{campaign.slug}/metrics").status_code == 403


def test_api_key_reads_metrics(app: Flask, runtime: Runtime, campaign: Campaign) -> None:
    key = runtime.staff.create_api_key("reporting", "marketer").secret
    response = app.test_client().get(
        f"/api/v1/campaigns/{campaign.slug}/metrics.csv?figure=funnel", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200
    assert response.text.splitlines()[0] == "stage,count"


def test_dashboard_for_marketers_not_for_compliance(app: Flask, campaign: Campaign, tree: dict[str, Forward]) -> None:
    client = staff_client(app, "marketer")
    home = client.get("/console")
    assert f"/console/campaigns/{campaign.slug}/dashboard" in home.text
    page = client.get(f"/console/campaigns/{campaign.slug}/dashboard")
    assert page.status_code == 200
    # Reach over time (all generations, then each of the 4 on its own scale), K, funnel, channel mix.
    assert page.text.count("<svg") == 5 + 3
    assert "<script" not in page.text
    assert "generation 4" in page.text and "Ann" in page.text
    assert f"/api/v1/campaigns/{campaign.slug}/metrics.csv?figure=ambassadors" in page.text
    assert (
        staff_client(app, "compliance", "c@staff.example")
        .get(f"/console/campaigns/{campaign.slug}/dashboard")
        .status_code
        == 403
    )
    assert client.get("/console/campaigns/nope/dashboard").status_code == 404


def test_landing_views_are_counted_by_generation_and_arrival_channel(
    app: Flask, runtime: Runtime, campaign: Campaign, tree: dict[str, Forward]
) -> None:
    visitor = app.test_client()
    assert visitor.get(f"/c/{campaign.slug}").status_code == 200
    token = runtime.tokens.sign(Purpose.FORWARD, "pubB3")
    assert visitor.get(f"/f/{token}").status_code == 303
    assert visitor.get(f"/c/{campaign.slug}").status_code == 200
    # Counted in Redis by the landing page; a read of a small campaign's figures folds them in.
    counter = analytics.VisitCounter(runtime.queue.connection)
    m = analytics.campaign_metrics(runtime.db, campaign.slug, runtime.clock.now(), visits=counter)
    by_generation = {g.generation: g.visitors for g in m.generations}
    assert by_generation[1] == 4 + 1  # the hand-counted ones, and one direct view
    assert by_generation[3] == 2 + 1  # through B3, a forward of generation 2
    assert {c.channel: c.visitors for c in m.channels}["sms"] == 1 + 1


def test_simulated_campaign_lands_near_the_asked_k(runtime: Runtime) -> None:
    # With these rates a sender's invitees who forward in turn number X ~ Binomial(m, K/3),
    # m uniform in 1..5: Var(X) ≈ 0.73 at K = 0.8. The measured K is their mean over some 250
    # senders, whose standard error is about sqrt(0.73 / 250) ≈ 0.054: ±0.2 is over 3.5 of them.
    prepare_campaign(runtime.db, "simulated")
    plan = SimulationPlan(slug="simulated", people=1200, k=0.8, days=14, seed=7)
    report = Simulator(runtime.db, runtime.tokens, runtime.hasher, runtime.limiter, plan).run()
    assert report.forwards > 500 and report.clicks > 0 and report.conversions > 0
    assert report.measured_k == pytest.approx(0.8, abs=0.2)
    m = analytics.campaign_metrics(runtime.db, "simulated", utcnow())  # the simulator's days end now
    assert m.overall.invites == report.forwards
    assert m.overall.delivered == report.forwards  # nothing was sent; every message recorded delivered
    assert len({p.day for p in m.reach_over_time}) > 3  # spread over the simulated days


HOSTILE_NAME = "Ann;=cmd|' /C calc'!A0"


def test_csv_cells_never_run_as_formulas_whatever_the_separator(
    app: Flask, runtime: Runtime, campaign: Campaign, tree: dict[str, Forward]
) -> None:
    with runtime.db.transaction() as session:
        for name in ("A1", "A2"):
            session.get(Forward, tree[name].id).sender_name = HOSTILE_NAME
    client = staff_client(app, "marketer")
    response = client.get(f"/api/v1/campaigns/{campaign.slug}/metrics.csv?figure=ambassadors")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert "Ann;'=cmd|' /C calc'!A0" in [row["sender_name"] for row in rows]
    # Read as a semicolon locale would: no cell starts a formula.
    for line in response.text.splitlines():
        for cell in line.split(";"):
            assert not cell.strip(' "').startswith(("=", "+", "-", "@")), line
