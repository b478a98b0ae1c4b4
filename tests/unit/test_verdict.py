"""The verdict of an A/B test on how far variants spread: over many seeded experiments it picks
the truly better variant, declares no winner on noise however often it is read, its intervals
cover the truth about as often as they say, chains keep correlated forwards together, and it
says what is missing until it can judge."""

from __future__ import annotations

import bisect
import math
import random
from datetime import timedelta

import pytest

from engine.verdict import (
    ChainTally,
    DecisionRule,
    Evidence,
    InvalidEvidence,
    Metric,
    Outcome,
    VariantEvidence,
    beta_draws,
    decide,
    judge,
    thompson_weights,
)

WINDOW = timedelta(hours=72)
FRIENDS = 3  # invites per mature sender in these synthetic chains
# Rules with fewer posterior draws than the default: hundreds of experiments per test.
RULE = DecisionRule(draws=400)
QUICK_RULE = DecisionRule(draws=200)

_tallies: dict[tuple[int, int], ChainTally] = {}


def _tally(mature_senders: int, recruits: int) -> ChainTally:
    """A mature chain: `mature_senders` forwarded 3 invites each, `recruits` of their friends
    forwarded in turn (too recently to be mature themselves). One object per distinct chain."""
    key = (mature_senders, recruits)
    if key not in _tallies:
        senders = mature_senders + recruits
        _tallies[key] = ChainTally(
            visitors=senders + 1,
            senders=senders,
            invites=FRIENDS * senders,
            clicks=recruits + 1,
            conversions=0,
            mature_senders=mature_senders,
            mature_recruits=recruits,
        )
    return _tallies[key]


def _chains(rng: random.Random, count: int, k: float, *, clustered: bool = False) -> list[ChainTally]:
    """`count` mature chains whose true K is `k`: 1 or 2 mature senders, each of whose 3 friends
    forwards with probability k / 3. Clustered: a quarter of the chains catch on (every friend
    four times as likely to forward) and the rest not at all, as when one chain's friends are
    alike; the mean is the same."""
    chance = k / FRIENDS
    tables = {(senders, p): _binomial_table(FRIENDS * senders, p) for senders in (1, 2) for p in (chance, 4 * chance)}
    chains = []
    for _ in range(count):
        senders = 1 if rng.random() < 0.5 else 2
        p = chance
        if clustered:
            if rng.random() >= 0.25:
                chains.append(_tally(senders, 0))
                continue
            p = 4 * chance
        chains.append(_tally(senders, bisect.bisect(tables[senders, p], rng.random())))
    return chains


def _binomial_table(trials: int, p: float) -> list[float]:
    """The cumulative probabilities of 0, 1, … successes: one uniform draw picks a count."""
    cumulative, total = [], 0.0
    for successes in range(trials):
        total += math.comb(trials, successes) * p**successes * (1 - p) ** (trials - successes)
        cumulative.append(total)
    return cumulative


def _evidence(**variants: list[ChainTally]) -> Evidence:
    return Evidence(tuple(VariantEvidence(name, tuple(chains)) for name, chains in variants.items()), WINDOW)


# -- deciding ------------------------------------------------------------------------------------


def test_the_truly_better_variant_is_picked_in_most_experiments() -> None:
    # K 0.36 against 0.50, 600 mature chains each: a large difference the rule must see.
    picked = 0
    for seed in range(50):
        rng = random.Random(seed)
        evidence = _evidence(a=_chains(rng, 600, 0.36), b=_chains(rng, 600, 0.50))
        decision = decide(evidence, QUICK_RULE, rng)
        picked += decision.outcome is Outcome.WINNER and decision.winner == "b"
    assert picked / 50 >= 0.8


def test_an_aa_test_read_every_day_seldom_declares_a_winner() -> None:
    """Two identical variants, read on each of 5 days as their chains come in (400 more a day).
    A winner needs a sequential likelihood ratio of 1 / 0.05 against "no difference", which,
    under no difference, is EVER reached with a probability of at most 5% however often it is
    read (Ville's inequality). With 100 experiments, a true rate of 5% exceeds 10 false winners
    in about 1% of samples: the bound is 10."""
    false_winners = 0
    for seed in range(100):
        rng = random.Random(1000 + seed)
        a, b = _chains(rng, 2000, 0.36), _chains(rng, 2000, 0.36)
        for day in range(1, 6):
            decision = decide(_evidence(a=a[: 400 * day], b=b[: 400 * day]), QUICK_RULE, rng)
            if decision.outcome is not Outcome.UNDECIDED:
                break
        false_winners += decision.outcome is Outcome.WINNER
    assert false_winners <= 10


def test_below_the_minimum_sample_it_says_how_many_more_mature_chains_each_variant_needs() -> None:
    rng = random.Random(7)
    evidence = _evidence(a=_chains(rng, 120, 0.2), b=_chains(rng, 250, 0.9))  # b is far better, but few
    verdict = judge(evidence, DecisionRule(min_mature_chains=300), rng)
    assert verdict.outcome is Outcome.NOT_ENOUGH_DATA and verdict.winner is None
    assert verdict.more_mature_chains == {"a": 180, "b": 50}
    assert verdict.needs_more == 180
    assert thompson_weights(verdict) == {"a": 0.5, "b": 0.5}  # too early to steer traffic


def test_a_variant_without_any_mature_sender_has_no_k_and_no_comparison() -> None:
    fresh = ChainTally(visitors=2, senders=1, invites=3, clicks=1, conversions=0)  # nobody mature yet
    verdict = judge(_evidence(a=[fresh] * 10, b=_chains(random.Random(1), 10, 0.4)), RULE, random.Random(1))
    assert verdict.outcome is Outcome.NOT_ENOUGH_DATA and verdict.comparison is None
    assert verdict.summaries[0].k is None and verdict.summaries[0].share_rate is not None
    assert verdict.more_mature_chains["a"] == 300


def test_once_the_spread_is_small_on_both_sides_the_variants_are_equivalent() -> None:
    rng = random.Random(3)
    chains = _chains(rng, 20_000, 0.36)
    verdict = judge(_evidence(a=chains, b=chains), DecisionRule(caring=0.02, draws=400), rng)
    assert verdict.outcome is Outcome.EQUIVALENT and verdict.winner is None


def test_the_same_seed_gives_the_same_verdict() -> None:
    chains = _chains(random.Random(5), 400, 0.3), _chains(random.Random(6), 400, 0.4)
    first = judge(_evidence(a=chains[0], b=chains[1]), RULE, random.Random(42))
    again = judge(_evidence(a=chains[0], b=chains[1]), RULE, random.Random(42))
    assert first == again
    alone = decide(_evidence(a=chains[0], b=chains[1]), RULE, random.Random(42))  # without the other intervals
    assert (alone.outcome, alone.winner, alone.comparison) == (first.outcome, first.winner, first.comparison)


def test_the_comparison_and_thompson_weights_follow_the_posterior() -> None:
    rng = random.Random(11)
    verdict = judge(_evidence(a=_chains(rng, 800, 0.3), b=_chains(rng, 800, 0.45), c=_chains(rng, 800, 0.3)), RULE, rng)
    assert verdict.comparison is not None
    best = verdict.comparison.probability_best
    assert best["b"] > 0.95 and sum(best.values()) == pytest.approx(1)
    assert verdict.comparison.expected_loss["b"] < verdict.comparison.expected_loss["a"]
    weights = thompson_weights(verdict, floor=0.1)
    assert sum(weights.values()) == pytest.approx(1)
    assert weights["b"] > 0.7 and min(weights.values()) >= 0.1


# -- intervals -------------------------------------------------------------------------------------


def test_k_intervals_cover_the_true_k_about_95_percent_of_the_time_even_on_correlated_chains() -> None:
    covered = total = 0
    for seed in range(80):
        rng = random.Random(2000 + seed)
        verdict = judge(
            _evidence(a=_chains(rng, 400, 0.36), b=_chains(rng, 400, 0.36, clustered=True)), QUICK_RULE, rng
        )
        for summary in verdict.summaries:
            assert summary.k is not None
            covered += summary.k.covers(0.36)
            total += 1
    assert 0.89 <= covered / total <= 0.99


def test_rate_intervals_cover_the_true_rate_about_95_percent_of_the_time() -> None:
    sender = ChainTally(visitors=1, senders=1, invites=2, clicks=0, conversions=0)
    onlooker = ChainTally(visitors=1, senders=0, invites=0, clicks=0, conversions=0)
    covered = 0
    for seed in range(200):
        rng = random.Random(3000 + seed)
        chains = [sender if rng.random() < 0.2 else onlooker for _ in range(500)]
        verdict = judge(_evidence(a=chains, b=chains[:1]), DecisionRule(metric=Metric.SHARE_RATE, draws=200), rng)
        share_rate = verdict.summaries[0].share_rate
        assert share_rate is not None
        covered += share_rate.covers(0.2)
    assert 0.90 <= covered / 200 <= 0.99


def _width_against_a_per_forward_binomial(chains: list[ChainTally], rng: random.Random) -> float:
    """The K interval's width over the width a binomial per forward would give (every invite
    of a mature sender an independent chance to recruit)."""
    verdict = judge(_evidence(a=chains, b=chains), RULE, rng)
    k = verdict.summaries[0].k
    assert k is not None
    senders = sum(c.mature_senders for c in chains)
    recruits = sum(c.mature_recruits for c in chains)
    naive = sorted(FRIENDS * q for q in beta_draws(recruits, FRIENDS * senders, rng, 400))
    return (k.high - k.low) / (naive[389] - naive[10])


def test_correlated_chains_get_wider_k_intervals_than_a_per_forward_binomial() -> None:
    rng = random.Random(9)
    assert _width_against_a_per_forward_binomial(_chains(rng, 1500, 0.36, clustered=True), rng) > 1.4
    assert 0.8 < _width_against_a_per_forward_binomial(_chains(rng, 1500, 0.36), rng) < 1.25


# -- what it refuses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"visitors": 0, "senders": 0, "invites": 0, "clicks": 0, "conversions": 0}, "at least one visitor"),
        ({"visitors": 1, "senders": 2, "invites": 2, "clicks": 0, "conversions": 0}, "2 senders out of 1 visitors"),
        ({"visitors": 2, "senders": 0, "invites": 3, "clicks": 0, "conversions": 0}, "3 invites cannot come from 0"),
        ({"visitors": 2, "senders": 1, "invites": 2, "clicks": 3, "conversions": 0}, "3 clicked invites out of 2"),
        ({"visitors": 2, "senders": 1, "invites": 2, "clicks": 1, "conversions": 2}, "2 conversions out of 1"),
        ({"visitors": 2, "senders": 1, "invites": 2, "clicks": 1, "conversions": 0, "mature_senders": 2}, "2 mature"),
        (
            {"visitors": 3, "senders": 2, "invites": 4, "clicks": 2, "conversions": 0, "mature_recruits": 1},
            "1 recruits cannot come from 0 mature senders",
        ),
        ({"visitors": -1, "senders": 0, "invites": 0, "clicks": 0, "conversions": 0}, "visitors must be a whole"),
        ({"visitors": True, "senders": 0, "invites": 0, "clicks": 0, "conversions": 0}, "visitors must be a whole"),
        (
            {
                "visitors": 3,
                "senders": 2,
                "invites": 4,
                "clicks": 2,
                "conversions": 0,
                "mature_senders": 1,
                "mature_recruits": 1,
                "cycle_hours": (float("nan"),),
            },
            "finite number of hours",
        ),
    ],
)
def test_a_chain_that_cannot_be_is_refused_with_its_reason(fields: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidEvidence, match=message):
        ChainTally(**fields)


def test_an_experiment_needs_two_named_variants_and_a_window() -> None:
    chains = (_tally(1, 0),)
    with pytest.raises(InvalidEvidence, match="at least two variants"):
        Evidence((VariantEvidence("a", chains),), WINDOW)
    with pytest.raises(InvalidEvidence, match="must differ"):
        Evidence((VariantEvidence("a", chains), VariantEvidence("a", chains)), WINDOW)
    with pytest.raises(InvalidEvidence, match="window"):
        Evidence((VariantEvidence("a", chains), VariantEvidence("b", chains)), timedelta(0))
    with pytest.raises(InvalidEvidence, match="needs a name"):
        VariantEvidence(" ", chains)
    with pytest.raises(InvalidEvidence, match="tuple of ChainTally"):
        VariantEvidence("a", [_tally(1, 0)])  # type: ignore[arg-type]
    with pytest.raises(InvalidEvidence, match="threshold of caring"):
        DecisionRule(caring=0)
    with pytest.raises(InvalidEvidence, match="minimum sample"):
        DecisionRule(min_mature_chains=0)
    verdict = judge(_evidence(a=list(chains), b=list(chains), c=list(chains)), RULE, random.Random(1))
    with pytest.raises(InvalidEvidence, match=r"floor must be between 0 and 0\.333"):
        thompson_weights(verdict, floor=0.5)
