"""`flask simulate --variant …`: the variant syntax, what an experiment plan refuses, and the
campaign model run in memory, whose K on mature cohorts is the true K within the window."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest

from engine.services.simulation import (
    MEAN_CLICK_DELAY,
    MEAN_SHARE_DELAY,
    ExperimentPlan,
    VariantPlan,
    parse_variant,
    power_analysis,
    run_experiment,
    simulate_experiment,
)
from engine.verdict import DecisionRule


def test_a_variant_names_its_true_rates() -> None:
    assert parse_variant("a:share=0.2") == VariantPlan("a", share=0.2, click=0.6, conversion=0.2)
    assert parse_variant("new-card:share=0.25, click=0.5,convert=0.1") == VariantPlan("new-card", 0.25, 0.5, 0.1)
    assert parse_variant("a:share=0.2").k == pytest.approx(3 * 0.6 * 0.2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a", "NAME:share=RATE"),
        ("a:", "NAME:share=RATE"),
        ("a:share=lots", "share must be a number"),
        ("a:speed=2", "unknown setting 'speed=2'"),
        ("a:click=0.5", "share=RATE is required"),
        ("a:share=0", "share must be above 0 and at most 1"),
        ("a:share=0.6", "K 1.08"),
        ("a b:share=0.2", "letters, digits"),
    ],
)
def test_a_variant_that_cannot_be_run_is_refused_with_its_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_variant(text)


def test_an_experiment_plan_needs_two_distinct_variants_and_a_window_inside_its_days() -> None:
    a, b = parse_variant("a:share=0.2"), parse_variant("b:share=0.3")
    with pytest.raises(ValueError, match="at least two"):
        ExperimentPlan((a,), chains=10)
    with pytest.raises(ValueError, match="must differ"):
        ExperimentPlan((a, a), chains=10)
    with pytest.raises(ValueError, match="--window"):
        ExperimentPlan((a, b), chains=10, days=2, window=timedelta(days=3))


def test_k_on_mature_cohorts_is_the_true_k_within_the_window() -> None:
    window = timedelta(hours=24)
    plan = ExperimentPlan((parse_variant("a:share=0.2"), parse_variant("b:share=0.3")), chains=6000, window=window)
    verdict = run_experiment(plan, DecisionRule(draws=400))
    # A friend of a mature sender counts when their click (mean 4 h) and forward (mean 12 h)
    # both fall within the window: P(Exp(4 h) + Exp(12 h) <= 24 h).
    w, c, s = window / timedelta(hours=1), MEAN_CLICK_DELAY / timedelta(hours=1), MEAN_SHARE_DELAY / timedelta(hours=1)
    within = 1 - (s * math.exp(-w / s) - c * math.exp(-w / c)) / (s - c)
    for variant, summary in zip(plan.variants, verdict.summaries, strict=True):
        assert summary.k is not None and summary.k.covers(variant.k * within), (variant, summary.k, variant.k * within)
        assert summary.mature_chains > 0 and summary.visitors > summary.chains == 6000


def test_the_same_seed_gives_the_same_experiment() -> None:
    plan = ExperimentPlan((parse_variant("a:share=0.2"), parse_variant("b:share=0.3")), chains=300, seed=4)
    assert simulate_experiment(plan, random.Random(4)) == simulate_experiment(plan, random.Random(4))
    assert simulate_experiment(plan, random.Random(4)) != simulate_experiment(plan, random.Random(5))


def test_the_power_analysis_finds_a_size_that_tells_the_lift_and_repeats_itself() -> None:
    baseline = parse_variant("a:share=0.5")  # K 0.9: chains rich in senders, a small experiment
    estimate = power_analysis(
        baseline, DecisionRule(draws=200), days=14, window=timedelta(hours=72), seed=1, runs=4, start=250, most=4000
    )
    assert estimate.chains is not None and estimate.visitors is not None
    assert dict(estimate.tried)[estimate.chains] >= 0.8
    assert all(share < 0.8 for size, share in estimate.tried if size < estimate.chains)
    assert estimate.visitors > estimate.chains  # the seeds and the friends who came
    again = power_analysis(
        baseline, DecisionRule(draws=200), days=14, window=timedelta(hours=72), seed=1, runs=4, start=250, most=4000
    )
    assert again == estimate
