"""The verdict on a live experiment: the console's Variants page and the API show each variant's
figures with intervals and the verdict on the chosen metric ("not enough data yet" until every
variant has its minimum of mature chains); the marketer chooses the metric and the autopilot,
which shifts new visitors towards the likely best variant once a day; and a variant may
withhold the coupon from its friends."""

from __future__ import annotations

from datetime import timedelta
from itertools import count

import pytest
from flask import Flask
from sqlalchemy import insert, select

from engine.clock import FixedClock
from engine.ids import new_public_id
from engine.models import Campaign, CampaignEvent, CampaignVariant, Coupon, Forward
from engine.runtime import Runtime
from engine.services.analytics.variants import VISITORS, add_variant_visits
from engine.services.coupons import CouponMode, set_mode
from engine.services.experiments import AUTOPILOT_REASON, experiment_verdict
from engine.services.history import CLI
from engine.services.snapshots import snapshot_version
from engine.services.variants import Variant, VariantInput, add_variant, set_inheritance
from engine.transports.memory import MemoryTransport
from tests.helpers import US_CUSTOM_SMS, csrf_token, make_campaign, staff_client, submission, visible_text
from tests.integration.test_variants import Scripted, _follow_newest, _forward, _shown, _variants

WITH_INCENTIVES = {**US_CUSTOM_SMS, "incentives": True}


def two_variants(runtime: Runtime, slug: str = "spring", *, b_gives_coupon: bool = True) -> dict[str, int]:
    add_variant(runtime.db, slug, VariantInput(name="Plain offer", weight=1, wrapper="plain"), CLI)
    add_variant(
        runtime.db, slug, VariantInput(name="Story", weight=1, wrapper="story", gives_coupon=b_gives_coupon), CLI
    )
    with runtime.db.reading() as session:
        return {v.key: v.id for v in session.scalars(select(CampaignVariant).order_by(CampaignVariant.key))}


def grow(runtime: Runtime, campaign_id: int, variant_id: int, chains: int, recruiting: float, clock: FixedClock) -> int:
    """`chains` seed senders of the variant, five days ago, each inviting two friends; the first
    `recruiting` share of them see one friend forward an hour later. The visitors: one per seed
    and one per friend who forwarded. Returns the visitors."""
    ids = count(_next_id(runtime))
    sent = clock.now() - timedelta(days=5)
    rows = []
    recruits = round(chains * recruiting)
    for number in range(chains):
        first, second = next(ids), next(ids)
        for forward_id in (first, second):
            rows.append(_row(forward_id, campaign_id, variant_id, None, f"seed-{variant_id}-{number}", sent))
        if number < recruits:
            rows.append(_row(next(ids), campaign_id, variant_id, first, None, sent + timedelta(hours=1)))
    with runtime.db.transaction() as session:
        session.execute(insert(Forward), rows)
    return chains + recruits


def _next_id(runtime: Runtime) -> int:
    with runtime.db.reading() as session:
        return (session.scalar(select(Forward.id).order_by(Forward.id.desc()).limit(1)) or 0) + 1


def _row(forward_id: int, campaign_id: int, variant_id: int, parent: int | None, sender: str | None, at):  # type: ignore[no-untyped-def]
    return {
        "id": forward_id,
        "public_id": new_public_id(),
        "campaign_id": campaign_id,
        "parent_id": parent,
        "generation": 1 if parent is None else 2,
        "channel": "email",
        "sender_name": "Someone",
        "sender_contact_hash": sender,
        "recipient_contact_hash": f"friend-{forward_id}",
        "policy_name": "custom",
        "policy_version": 1,
        "variant_id": variant_id,
        "created_at": at,
    }


def visitors(runtime: Runtime, campaign_id: int, counts: dict[str, int]) -> None:
    with runtime.db.transaction() as session:
        add_variant_visits(session, campaign_id, {(key, VISITORS): n for key, n in counts.items()})


@pytest.fixture
def experiment(runtime: Runtime, campaign: Campaign, clock: FixedClock) -> Campaign:
    """Variant a recruits in 70% of its chains, b in 20%: 400 mature chains each."""
    keys = two_variants(runtime)
    visitors(
        runtime,
        campaign.id,
        {
            "a": grow(runtime, campaign.id, keys["a"], 400, 0.7, clock) + 100,
            "b": grow(runtime, campaign.id, keys["b"], 400, 0.2, clock) + 100,
        },
    )
    return campaign


def test_a_campaign_with_one_variant_or_none_has_no_verdict_and_the_page_says_how_to_start(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    assert experiment_verdict(runtime.db, "spring", runtime.clock.now(), visits=runtime.variant_visits) is None
    page = staff_client(app, "marketer").get("/console/campaigns/spring/variants")
    assert "An experiment needs at least two variants" in visible_text(page.text)


def test_a_young_experiment_says_not_enough_data_and_how_many_chains_it_waits_for(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    keys = two_variants(runtime)
    for key, friend in (("a", "bob@example.com"), ("b", "carol@example.com")):
        token = runtime.variants.sign(campaign.id, Variant(keys[key], key, key, 1))
        runtime.forwarding.submit("spring", submission(friend, variant_token=token))
    visitors(runtime, campaign.id, {"a": 3, "b": 2})

    marketer = staff_client(app, "marketer")
    text = visible_text(marketer.get("/console/campaigns/spring/variants").text)
    assert "Not enough data yet: the verdict waits for 300 mature chains per variant." in text
    assert "never gives a variant less than 5% of new visitors" in text
    assert "would be shared out" not in text  # the autopilot has nothing to steer by yet
    # Each variant's row: its visitors and its chains (the sender's, and those who did not send).
    assert "Plain offer a 3 3 (0)" in text and "Story b 2 2 (0)" in text

    body = marketer.get("/api/v1/campaigns/spring/variants").get_json()
    verdict = body["experiment"]
    assert (verdict["outcome"], verdict["winner"], verdict["metric"]) == ("not_enough_data", None, "k")
    assert [(v["key"], v["visitors"], v["chains"], v["mature_chains"]) for v in verdict["variants"]] == [
        ("a", 3, 3, 0),
        ("b", 2, 2, 0),
    ]
    assert verdict["variants"][0]["share_rate"]["estimate"] == pytest.approx(1 / 3)
    assert verdict["variants"][0]["more_mature_chains"] == 300


def test_the_variant_that_recruits_more_wins_on_k_in_the_console_and_the_api(
    app: Flask, runtime: Runtime, experiment: Campaign
) -> None:
    marketer = staff_client(app, "marketer")
    text = visible_text(marketer.get("/console/campaigns/spring/variants").text)
    assert "Plain offer wins on K" in text
    verdict = marketer.get("/api/v1/campaigns/spring/variants").get_json()["experiment"]
    assert (verdict["outcome"], verdict["winner"], verdict["window_days"]) == ("winner", "a", 1)
    a, b = verdict["variants"]
    assert a["k"]["low"] > b["k"]["high"]
    assert a["k"]["estimate"] == pytest.approx(280 / 680)  # recruits per mature sender
    assert a["probability_best"] > 0.99 and a["expected_loss"] < b["expected_loss"]
    # Read again, the same data gives the same verdict, to the last digit.
    assert marketer.get("/api/v1/campaigns/spring/variants").get_json()["experiment"] == verdict


def test_the_autopilot_moves_traffic_to_the_likely_best_once_a_day_and_the_history_says_so(
    app: Flask, runtime: Runtime, experiment: Campaign, clock: FixedClock
) -> None:
    # Off: nothing moves.
    assert runtime.experiment_autopilot.steer_all() == []
    marketer = staff_client(app, "marketer")
    page = marketer.get("/console/campaigns/spring/variants")
    saved = marketer.post(
        "/console/campaigns/spring/variants/experiment",
        data={"csrf_token": csrf_token(page.text), "metric": "k", "autopilot": "y"},
    )
    assert saved.status_code == 303

    with runtime.db.reading() as session:
        version = snapshot_version(session)
    assert runtime.experiment_autopilot.steer_all() == ["spring"]
    with runtime.db.reading() as session:
        # Every process's copy of the campaign is told: the next visitor is drawn by the new weights.
        assert snapshot_version(session) != version
        weights = dict(session.execute(select(CampaignVariant.key, CampaignVariant.weight)).all())
        reasons = session.scalars(select(CampaignEvent.reason).where(CampaignEvent.actor == "system")).all()
    assert weights == {"a": 950, "b": 50}  # b keeps the floor of 5%
    assert reasons == [AUTOPILOT_REASON]
    text = visible_text(marketer.get("/console/campaigns/spring/variants").text)
    assert "Plain offer 95%, Story 5%" in text

    # Moved back by hand, the autopilot waits for the next day before it moves them again.
    with runtime.db.transaction() as session:
        for variant in session.scalars(select(CampaignVariant)):
            variant.weight = 1
    clock.set(clock.now() + timedelta(hours=12))
    assert runtime.experiment_autopilot.steer("spring") is False
    clock.set(clock.now() + timedelta(hours=12))
    assert runtime.experiment_autopilot.steer("spring") is True


def test_the_autopilot_leaves_a_campaign_that_is_not_running_alone(
    app: Flask, runtime: Runtime, experiment: Campaign
) -> None:
    with runtime.db.transaction() as session:
        found = session.get(Campaign, experiment.id)
        assert found is not None
        found.variant_autopilot, found.status = True, "paused"
    assert runtime.experiment_autopilot.steer_all() == []


def test_the_autopilot_leaves_a_young_experiment_alone(
    app: Flask, runtime: Runtime, campaign: Campaign, clock: FixedClock
) -> None:
    keys = two_variants(runtime)
    grow(runtime, campaign.id, keys["a"], 20, 0.5, clock)
    with runtime.db.transaction() as session:
        session.get(Campaign, campaign.id).variant_autopilot = True  # type: ignore[union-attr]
    assert runtime.experiment_autopilot.steer_all() == []
    with runtime.db.reading() as session:
        assert set(session.scalars(select(CampaignVariant.weight))) == {1}


def test_the_metric_is_chosen_and_a_forged_one_is_refused_beside_the_field(
    app: Flask, runtime: Runtime, experiment: Campaign
) -> None:
    marketer = staff_client(app, "marketer")
    page = marketer.get("/console/campaigns/spring/variants")
    forged = marketer.post(
        "/console/campaigns/spring/variants/experiment", data={"csrf_token": csrf_token(page.text), "metric": "revenue"}
    )
    assert forged.status_code == 422
    assert 'id="metric-error"' in forged.text and 'aria-invalid="true"' in forged.text

    marketer.post(
        "/console/campaigns/spring/variants/experiment",
        data={"csrf_token": csrf_token(page.text), "metric": "share_rate"},
    )
    verdict = marketer.get("/api/v1/campaigns/spring/variants").get_json()["experiment"]
    assert verdict["metric"] == "share_rate"
    # The share rate: 680 of 780 visitors of a forwarded, 480 of 580 of b.
    assert verdict["variants"][0]["share_rate"]["estimate"] == pytest.approx(680 / 780)
    text = visible_text(marketer.get("/console/campaigns/spring/variants").text)
    assert "on Share rate: visitors who forward" in text
    with runtime.db.reading() as session:
        changes = session.scalars(select(CampaignEvent.changes).where(CampaignEvent.action == "variants")).all()
    assert {"variant_metric": ["k", "share_rate"]} in changes


def test_a_variant_that_withholds_the_coupon_sends_its_friends_no_code(
    runtime: Runtime, transport: MemoryTransport
) -> None:
    campaign = make_campaign(runtime.db, "spring", policy_settings=WITH_INCENTIVES, coupon_mode="pool")
    set_mode(runtime.db, "spring", CouponMode.GENERATED)
    keys = two_variants(runtime, b_gives_coupon=False)
    for key, friend in (("a", "bob@example.com"), ("b", "carol@example.com")):
        token = runtime.variants.sign(campaign.id, Variant(keys[key], key, key, 1))
        receipt = runtime.forwarding.submit("spring", submission(friend, variant_token=token))
        runtime.delivery.deliver(receipt.message_ids)
    (to_bob,) = [e for e in transport.emails if e.to == "bob@example.com"]
    (to_carol,) = [e for e in transport.emails if e.to == "carol@example.com"]
    assert "Your code:" in to_bob.text
    assert "Your code:" not in to_carol.text
    with runtime.db.reading() as session:
        assert session.scalar(select(Coupon.id).where(Coupon.forward_id.is_not(None))) is not None
        given = session.scalars(select(Forward.variant_id).join(Coupon, Coupon.forward_id == Forward.id)).all()
    assert given == [keys["a"]]


@pytest.mark.parametrize(("mode", "chains_of_b"), [("inherit", [(4, 3, 3)]), ("fresh", [(1, 1, 1), (1, 1, 1)])])
def test_three_generations_through_the_pages_make_the_chains_the_mode_says(
    app: Flask, runtime: Runtime, campaign: Campaign, mode: str, chains_of_b: list[tuple[int, int, int]]
) -> None:
    """A visitor forwards, their friend follows the link and forwards, and so on, three times,
    through the real pages (the last friend follows the link too): inherited, one chain of
    three senders and four visitors; drawn fresh (b, a, b), each sender of b a chain alone,
    credited with the friend who followed their link."""
    _variants(runtime)
    set_inheritance(runtime.db, "spring", mode, CLI)
    runtime.variants.rng = Scripted([1, 0, 1])
    client = app.test_client()
    for friend in ("bob@example.com", "carol@example.com", "dan@example.com"):
        _forward(client, _shown(client), friend)
        client = _follow_newest(runtime, app)
    found = experiment_verdict(runtime.db, "spring", runtime.clock.now(), visits=runtime.variant_visits)
    assert found is not None
    summary = {s.name: s for s in found.verdict.summaries}
    # (visitors, senders, clicks) of each chain of b, read back through the share rate's and
    # click-through's counts: the chains themselves are the module's; here, what a reader sees.
    assert summary["b"].chains == len(chains_of_b)
    assert summary["b"].visitors == sum(v for v, _, _ in chains_of_b)
    senders = sum(s for _, s, _ in chains_of_b)
    assert summary["b"].share_rate is not None
    assert summary["b"].share_rate.estimate == pytest.approx(senders / summary["b"].visitors)
    assert summary["b"].click_through is not None
    assert summary["b"].click_through.estimate == pytest.approx(sum(c for _, _, c in chains_of_b) / senders)
