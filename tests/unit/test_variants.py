"""The A/B draw: proportions within statistical bounds, stickiness, inheritance, stopped variants."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from engine.services.variants import CampaignVariants, Inheritance, Variant, VariantAssigner, draw
from engine.tokens import tokens_for

A = Variant(id=1, key="a", name="Plain", weight=70)
B = Variant(id=2, key="b", name="Story", weight=30, wrapper="story")


def _assigner(seed: int = 7) -> VariantAssigner:
    return VariantAssigner(tokens_for(["test-secret"], 30, 30), random.Random(seed))


def test_ten_thousand_draws_of_70_30_stay_within_four_binomial_sigmas() -> None:
    rng = random.Random(20261207)
    drawn = Counter(draw((A, B), rng).key for _ in range(10_000))
    n, p = 10_000, 0.7
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(drawn["a"] - n * p) <= 4 * sigma, drawn
    assert drawn["a"] + drawn["b"] == n


def test_the_same_seed_draws_the_same_visitors() -> None:
    first = [draw((A, B), random.Random(3)).key for _ in range(50)]
    again = [draw((A, B), random.Random(3)).key for _ in range(50)]
    assert first == again


def test_a_visitor_keeps_their_variant_and_a_new_one_is_drawn_once() -> None:
    assigner, variants = _assigner(), CampaignVariants((A, B))
    first = assigner.assign(10, variants, kept=None, inherited_id=None)
    assert first is not None and first.new
    for _ in range(20):
        again = assigner.assign(10, variants, kept=first.token, inherited_id=None)
        assert again is not None and again.variant == first.variant and not again.new


def test_a_cookie_of_another_campaign_or_forged_is_a_new_visitor() -> None:
    assigner, variants = _assigner(), CampaignVariants((A, B))
    elsewhere = assigner.sign(11, B)
    assert assigner.attributed(10, variants, elsewhere) is None
    assert assigner.attributed(10, variants, "forged") is None
    assert assigner.attributed(11, variants, elsewhere) == B


def test_a_stopped_variant_takes_no_new_visitors_and_its_visitors_are_drawn_again() -> None:
    assigner = _assigner()
    stopped_a = CampaignVariants((Variant(1, "a", "Plain", 70, stopped=True), B))
    kept_a = assigner.sign(10, A)
    for _ in range(200):
        chosen = assigner.assign(10, stopped_a, kept=kept_a, inherited_id=1)
        assert chosen is not None and chosen.variant.key == "b" and chosen.new


def test_a_referred_friend_inherits_or_draws_by_the_campaigns_mode() -> None:
    assigner = _assigner()
    inherit = CampaignVariants((A, B), Inheritance.INHERIT)
    fresh = CampaignVariants((A, B), Inheritance.FRESH)
    assert all(assigner.assign(10, inherit, kept=None, inherited_id=B.id).variant == B for _ in range(100))  # type: ignore[union-attr]
    drawn = Counter(assigner.assign(10, fresh, kept=None, inherited_id=B.id).variant.key for _ in range(1000))  # type: ignore[union-attr]
    assert drawn["a"] > drawn["b"] > 0


def test_a_campaign_without_variants_assigns_nothing() -> None:
    assert _assigner().assign(10, CampaignVariants(), kept=None, inherited_id=None) is None


@pytest.mark.parametrize("weights", [(), (0,)])
def test_a_draw_needs_a_positive_weight(weights: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        draw(tuple(Variant(i, str(i), "x", w) for i, w in enumerate(weights)), random.Random(1))
