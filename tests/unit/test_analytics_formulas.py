"""The analytics formulas: K, the reach projection, and what the value objects refuse."""

from __future__ import annotations

import pytest

from engine.caps import CapSettings
from engine.services.analytics import SliceMetrics, message_ceiling, project_reach, viral_coefficient
from engine.services.simulation import SimulationPlan, mean_friends, rates_for


def test_k_is_invites_per_sender_times_the_share_of_invitees_who_became_senders() -> None:
    # 2 senders invited 8 friends; 3 of those 8 forwarded in turn: K = 4 * 3/8 = 1.5.
    assert viral_coefficient(invites=8, senders=2, became_senders=3, invitees=8) == pytest.approx(1.5)


def test_k_is_unknown_without_senders_or_invitees() -> None:
    assert viral_coefficient(invites=0, senders=0, became_senders=0, invitees=0) is None
    assert viral_coefficient(invites=3, senders=1, became_senders=0, invitees=0) is None


def test_projection_below_one_is_the_geometric_series_over_the_cycles_left() -> None:
    # 100 invitations in the current wave, K 0.5, 2-day cycles, 7 days left: 3 cycles,
    # 100 * (0.5 + 0.25 + 0.125) = 87.5, rounded to 88.
    projection = project_reach(current=1000, wave=100, k=0.5, cycle_days=2, horizon_days=7, ceiling=None)
    assert projection.cycles == 3
    assert projection.additional == 88
    assert projection.total == 1088
    assert not projection.capped


def test_projection_at_k_one_adds_one_wave_per_cycle() -> None:
    projection = project_reach(current=10, wave=40, k=1.0, cycle_days=1, horizon_days=5, ceiling=None)
    assert projection.additional == 200


def test_projection_above_one_is_capped_by_the_campaign_budget() -> None:
    # 1000 * (2 + 4 + ... + 2^10) = 2,046,000, but the caps let 30 days of 10,000 messages out.
    ceiling = message_ceiling(CapSettings(), horizon_days=30, invites_so_far=5000)
    assert ceiling == 300_000
    projection = project_reach(current=5000, wave=1000, k=2.0, cycle_days=3, horizon_days=30, ceiling=ceiling)
    assert projection.cycles == 10
    assert projection.capped
    assert projection.additional == 300_000


def test_projection_with_no_time_left_adds_nothing() -> None:
    projection = project_reach(current=7, wave=3, k=0.9, cycle_days=1, horizon_days=0, ceiling=None)
    assert projection.additional == 0 and projection.cycles == 0


def test_message_ceiling_takes_the_tighter_cap() -> None:
    caps = CapSettings(campaign_messages_per_day=1000, campaign_messages_total=2500)
    assert message_ceiling(caps, horizon_days=10, invites_so_far=2000) == 500
    assert message_ceiling(CapSettings(campaign_messages_per_day=None), 10, 0) is None


def test_slice_metrics_refuse_impossible_counts() -> None:
    with pytest.raises(ValueError, match="among the invites"):
        SliceMetrics(1, None, 0, 1, 2, 3, 0, 0, 0, 0, None)
    with pytest.raises(ValueError, match="negative"):
        SliceMetrics(1, None, -1, 1, 2, 0, 0, 0, 0, 0, None)
    with pytest.raises(ValueError, match="generations start at 1"):
        SliceMetrics(0, None, 0, 0, 0, 0, 0, 0, 0, 0, None)


def test_rates_per_slice() -> None:
    metrics = SliceMetrics(2, None, visitors=10, senders=4, invites=12, became_senders=3, delivered=10, clicked=5,
                           clicks=7, conversions=1, cycle_time_seconds=None)  # fmt: skip
    assert metrics.share_rate == pytest.approx(0.4)
    assert metrics.click_through == pytest.approx(0.5)
    assert metrics.k == pytest.approx(12 / 4 * 3 / 12)
    by_channel = SliceMetrics(None, "email", 10, 4, 12, 3, 10, 5, 7, 1, None)
    assert by_channel.k is None  # senders by arrival, invites by channel: no K per channel


def test_simulation_rates_make_the_asked_k() -> None:
    for k in (0.3, 0.8, 1.5, 2.5):
        click, share = rates_for(k, 5)
        assert 0 < click <= 1 and 0 < share <= 1
        assert mean_friends(5) * click * share == pytest.approx(k)
    with pytest.raises(ValueError):
        SimulationPlan(slug="x", people=10, k=3.5)
