"""The reward programme's rules, as a table: what a conversion earns under each rule, and the
rules a marketer cannot save."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.models.rewards import PayoutMethod
from engine.services.reward_rules import (
    Milestone,
    Money,
    Order,
    ProgrammeKind,
    Referrals,
    RewardRules,
    decide,
)

EUR = lambda amount: Money.parse(amount, "EUR")  # noqa: E731
SINGLE = RewardRules()
MIN_25 = RewardRules(min_order=EUR("25.00"))
NEW_ONLY = RewardRules(new_customers_only=True)
CAP_2 = RewardRules(cap_per_referrer=2)
TIERS = RewardRules(
    kind=ProgrammeKind.TIERED,
    milestones=(Milestone(3, "a coffee"), Milestone(10, "a bag of beans")),
)
TIERS_CAPPED = RewardRules(kind=ProgrammeKind.TIERED, milestones=TIERS.milestones, cap_per_referrer=1)
HOLD_30 = RewardRules(hold_days=30, payout=PayoutMethod.COUPON)

ORDER_30 = Order(EUR("30.00"), new_customer=True)
ORDER_25 = Order(EUR("25.00"), new_customer=True)
ORDER_24 = Order(EUR("24.99"), new_customer=True)
ORDER_USD = Order(Money.parse("99", "USD"), new_customer=True)
RETURNING = Order(EUR("30.00"), new_customer=False)
UNSAID = Order(EUR("30.00"))
BARE = Order()
NONE_BEFORE = Referrals()

# (case, rules, order, before, incentives allowed, qualifies, earns, milestone friends, why contains)
CASES = [
    ("single: a converted friend earns", SINGLE, BARE, NONE_BEFORE, True, True, True, None, "converted friend"),
    ("minimum order met exactly", MIN_25, ORDER_25, NONE_BEFORE, True, True, True, None, "converted"),
    ("minimum order exceeded", MIN_25, ORDER_30, NONE_BEFORE, True, True, True, None, "converted"),
    ("a cent under the minimum", MIN_25, ORDER_24, NONE_BEFORE, True, False, False, None, "under the minimum"),
    ("minimum order, no total reported", MIN_25, BARE, NONE_BEFORE, True, False, False, None, "no order total"),
    ("minimum order in another currency", MIN_25, ORDER_USD, NONE_BEFORE, True, False, False, None, "in EUR"),
    ("new customers only: new", NEW_ONLY, ORDER_30, NONE_BEFORE, True, True, True, None, "converted"),
    ("new customers only: returning", NEW_ONLY, RETURNING, NONE_BEFORE, True, False, False, None, "not new"),
    ("new customers only: shop did not say", NEW_ONLY, UNSAID, NONE_BEFORE, True, False, False, None, "did not say"),
    ("cap: under it", CAP_2, BARE, Referrals(1, 1), True, True, True, None, "converted"),
    ("cap: reached", CAP_2, BARE, Referrals(2, 2), True, True, False, None, "cap of 2"),
    ("milestones: first friend", TIERS, BARE, Referrals(0, 0), True, True, False, None, "next milestone is 3"),
    ("milestones: third friend", TIERS, BARE, Referrals(2, 0), True, True, True, 3, "3 friends"),
    ("milestones: fourth friend", TIERS, BARE, Referrals(3, 1), True, True, False, None, "next milestone is 10"),
    ("milestones: tenth friend", TIERS, BARE, Referrals(9, 1), True, True, True, 10, "10 friends"),
    ("milestones: past the last", TIERS, BARE, Referrals(10, 2), True, True, False, None, "every milestone"),
    ("milestones under a cap", TIERS_CAPPED, BARE, Referrals(9, 1), True, True, False, None, "cap of 1"),
    ("hold: earns now, paid later", HOLD_30, BARE, NONE_BEFORE, True, True, True, None, "converted"),
    ("policy without incentives", SINGLE, ORDER_30, NONE_BEFORE, False, False, False, None, "no incentives"),
    ("no incentives beats every rule", TIERS, BARE, Referrals(2, 0), False, False, False, None, "no incentives"),
]


@pytest.mark.parametrize(
    ("rules", "order", "before", "incentives", "qualifies", "earns", "milestone", "why"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_what_a_conversion_earns(
    rules: RewardRules,
    order: Order,
    before: Referrals,
    incentives: bool,
    qualifies: bool,
    earns: bool,
    milestone: int | None,
    why: str,
) -> None:
    verdict = decide(rules, order, before, incentives_allowed=incentives)
    assert (verdict.qualifies, verdict.earns) == (qualifies, earns), verdict.why
    assert (verdict.milestone.friends if verdict.milestone else None) == milestone
    assert why in verdict.why


REFUSED = [
    ("tiered without milestones", lambda: RewardRules(kind=ProgrammeKind.TIERED), "at least one milestone"),
    (
        "milestones that go down",
        lambda: RewardRules(kind=ProgrammeKind.TIERED, milestones=(Milestone(10, "a"), Milestone(3, "b"))),
        "go up",
    ),
    (
        "the same milestone twice",
        lambda: RewardRules(kind=ProgrammeKind.TIERED, milestones=(Milestone(3, "a"), Milestone(3, "b"))),
        "go up",
    ),
    ("milestones on a single programme", lambda: RewardRules(milestones=(Milestone(3, "a"),)), "only a tiered"),
    ("a milestone of no friends", lambda: Milestone(0, "a coffee"), "from 1"),
    ("a milestone without a reward", lambda: Milestone(3, "  "), "what a referrer gets"),
    ("a cap of zero", lambda: RewardRules(cap_per_referrer=0), "cap per referrer"),
    ("a negative hold", lambda: RewardRules(hold_days=-1), "hold period"),
    ("a hold of years", lambda: RewardRules(hold_days=400), "hold period"),
    ("a prefix a spreadsheet runs", lambda: RewardRules(code_prefix="-CMD"), "formula"),
    ("a prefix with spaces", lambda: RewardRules(code_prefix="A B"), "code prefix"),
    ("an amount with a comma", lambda: Money.parse("25,00", "EUR"), "decimal string"),
    ("a negative amount", lambda: Money.parse("-1", "EUR"), "decimal string"),
    ("too many decimals for euros", lambda: Money.parse("1.005", "EUR"), "at most 2 decimals"),
    ("yen with decimals", lambda: Money.parse("100.5", "JPY"), "at most 0 decimals"),
    ("a currency that is not a code", lambda: Money.parse("1", "EURO"), "ISO 4217"),
]


@pytest.mark.parametrize(("make", "message"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_rules_that_cannot_be_saved(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        make()


def test_rules_survive_being_stored() -> None:
    rules = RewardRules(
        kind=ProgrammeKind.TIERED,
        milestones=(Milestone(3, "a coffee"), Milestone(10, "a bag of beans")),
        min_order=EUR("25.50"),
        new_customers_only=True,
        cap_per_referrer=5,
        hold_days=14,
        payout=PayoutMethod.COUPON,
        auto_approve=True,
        code_prefix="THANKS-",
    )
    assert RewardRules.from_json(rules.to_json()) == rules
    assert RewardRules.from_json({}) == RewardRules()


def test_money_in_minor_units() -> None:
    assert Money.parse("42.5", "EUR").minor == 4250
    assert Money.parse("1000", "JPY").minor == 1000
    assert Money.parse("1.234", "KWD").minor == 1234
    assert Money.from_minor(4250, "EUR").amount == Decimal("42.50")
    assert str(Money.from_minor(4250, "EUR")) == "42.50 EUR"
