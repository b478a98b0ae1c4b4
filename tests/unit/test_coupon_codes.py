"""Coupon codes as a checkout sees them: what a valid code is, what generated codes look like,
and which consent policies allow coupons at all."""

from __future__ import annotations

import pytest

from engine.models import Campaign
from engine.services.coupons import (
    CODE_ALPHABET,
    GENERATED_CODE_LENGTH,
    MAX_PREFIX_LENGTH,
    CouponCode,
    InvalidCode,
    check_prefix,
    code_problem,
    coupons_refusal,
    new_code,
)
from tests.helpers import US_CUSTOM_SMS


@pytest.mark.parametrize("code", ["A", "SPRING-7K3M", "x" * 64, "a.b_c/d+e=f!~", "0123456789"])
def test_printable_ascii_codes_of_1_to_64_characters_are_valid(code: str) -> None:
    assert code_problem(code) is None
    assert CouponCode(code).value == code


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("", "empty"),
        ("x" * 65, "longer than 64"),
        ("TEN OFF", "space"),
        ("TEN\tOFF", "not a printable ASCII"),
        ("CAFÉ", "not a printable ASCII"),
        ("A\x00B", "not a printable ASCII"),
        ("ZOË🎉", "not a printable ASCII"),
    ],
)
def test_other_codes_are_refused_with_the_reason(code: str, reason: str) -> None:
    problem = code_problem(code)
    assert problem is not None and reason in problem
    with pytest.raises(InvalidCode, match=reason):
        CouponCode(code)


def test_generated_codes_use_only_unambiguous_characters_and_are_unique() -> None:
    codes = {new_code().value for _ in range(5000)}
    assert len(codes) == 5000
    assert all(len(code) == GENERATED_CODE_LENGTH for code in codes)
    assert set("".join(codes)) <= set(CODE_ALPHABET)
    assert not set("0O1I") & set(CODE_ALPHABET)


def test_generated_codes_carry_the_prefix_and_stay_within_64_characters() -> None:
    assert new_code("SPRING-").value.startswith("SPRING-")
    longest = new_code("P" * MAX_PREFIX_LENGTH).value
    assert len(longest) == 64 and CouponCode(longest)


@pytest.mark.parametrize(("prefix", "reason"), [("P" * (MAX_PREFIX_LENGTH + 1), "longer"), ("A B", "space")])
def test_a_bad_prefix_is_refused(prefix: str, reason: str) -> None:
    with pytest.raises(InvalidCode, match=f"the prefix .*{reason}"):
        check_prefix(prefix)


def campaign(policy_name: str, **settings: object) -> Campaign:
    return Campaign(slug="spring", policy_name=policy_name, policy_settings={**US_CUSTOM_SMS, **settings})


@pytest.mark.parametrize(
    ("policy", "allowed"),
    [
        (campaign("us"), True),
        (campaign("share-only"), True),
        (campaign("custom", incentives=True), True),
        (campaign("eu-strict"), False),
        (campaign("custom", incentives=False), False),
    ],
)
def test_coupons_are_an_incentive_that_only_some_policies_allow(policy: Campaign, allowed: bool) -> None:
    refusal = coupons_refusal(policy)
    assert (refusal is None) is allowed
    if not allowed:
        assert refusal is not None and "does not allow incentives" in refusal and "spring" in refusal


def test_the_refusal_names_the_built_in_policy() -> None:
    refusal = coupons_refusal(campaign("eu-strict"))
    assert refusal is not None and "eu-strict" in refusal


def test_a_campaign_with_a_broken_custom_policy_gets_no_coupons() -> None:
    broken = Campaign(slug="spring", policy_name="custom", policy_settings={"version": 1})
    assert "no valid consent policy" in (coupons_refusal(broken) or "")
