"""CampaignDraft: what a campaign's settings may be, checked when the draft is made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.models import CampaignStatus, Role
from engine.services.campaigns import COUPON_MODES, TRANSITIONS, CampaignDraft, DraftInvalid, next_statuses
from engine.services.coupons import CouponMode
from engine.services.history import Actor, ActorKind

CUSTOM_RULES = {
    "version": 1,
    "server_email": True,
    "server_sms": "allowed",
    "incentives": False,
    "retention": "days_after_send",
    "retention_days": 30,
    "justification": "Signed off by compliance on 2026-11-01, ticket 42.",
}
START = datetime(2027, 1, 1, tzinfo=UTC)


def draft(**changes: Any) -> CampaignDraft:
    values: dict[str, Any] = {
        "slug": "spring",
        "name": "Spring",
        "offer_title": "Ten percent off",
        "brand_name": "Acme",
        "sender_email": "offers@acme.example",
        "postal_address": "1 Main St, Springfield",
        "channels": ("email",),
        "policy_name": "us",
    }
    values.update(changes)
    return CampaignDraft(**values)


def problems(**changes: Any) -> dict[str, str]:
    with pytest.raises(DraftInvalid) as refused:
        draft(**changes)
    return refused.value.problems


def test_a_complete_draft_is_made_and_normalised() -> None:
    made = draft(sender_email="Offers@ACME.example", policy_settings={"ignored": True})
    assert made.sender_email == "Offers@acme.example"  # the domain lower-cased by email-validator
    assert made.policy_settings == {}  # settings belong to the custom policy only


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"slug": "Spring Sale"}, "slug", "lower-case"),
        ({"slug": "-spring"}, "slug", "hyphen"),
        ({"slug": "x" * 65}, "slug", "64"),
        ({"slug": "new"}, "slug", "reserved"),
        ({"name": "  "}, "name", "required"),
        ({"offer_title": ""}, "offer_title", "required"),
        ({"offer_title": "x" * 201}, "offer_title", "200"),
        ({"brand_name": ""}, "brand_name", "required"),
        ({"sender_email": "not an address"}, "sender_email", "@"),
        ({"channels": ()}, "channels", "at least one"),
        ({"channels": ("email", "fax")}, "channels", "fax"),
        ({"channels": ("email", "email")}, "channels", "twice"),
        ({"policy_name": "lax"}, "policy_name", "us, eu-strict, share-only, custom"),
        ({"caps": {"friends_per_day": 3}}, "caps", "unknown cap"),
        ({"caps": {"friends_per_sender_per_day": 0}}, "caps", "at least 1"),
        ({"max_friends_per_submission": 0}, "max_friends_per_submission", "1 to 50"),
        ({"max_friends_per_submission": 51}, "max_friends_per_submission", "1 to 50"),
        ({"sms_segment_limit": 11}, "sms_segment_limit", "1 to 10"),
        ({"coupon_mode": "lots"}, "coupon_mode", "none, pool, generated"),
        ({"starts_at": START, "ends_at": START}, "ends_at", "after the start"),
        ({"starts_at": START, "ends_at": START - timedelta(days=1)}, "ends_at", "after the start"),
        ({"ends_at": datetime(2027, 1, 1)}, "ends_at", "time zone"),
    ],
)
def test_each_setting_is_checked(changes: dict[str, Any], field: str, says: str) -> None:
    found = problems(**changes)
    assert field in found, found
    assert says in found[field]


def test_every_problem_is_reported_at_once() -> None:
    found = problems(slug="", name="", channels=(), sms_segment_limit=0)
    assert set(found) == {"slug", "name", "channels", "sms_segment_limit"}


def test_sender_and_address_may_wait_for_activation() -> None:
    assert draft(sender_email="", postal_address="").sender_email == ""


def test_a_custom_policy_needs_its_rules_and_a_written_justification() -> None:
    assert draft(policy_name="custom", policy_settings=CUSTOM_RULES).policy.name == "custom"
    short = problems(policy_name="custom", policy_settings={**CUSTOM_RULES, "justification": "because"})
    assert "justification of 20 characters" in short["policy_settings"]
    incomplete = {k: v for k, v in CUSTOM_RULES.items() if k != "retention"}
    assert "'retention'" in problems(policy_name="custom", policy_settings=incomplete)["policy_settings"]
    bad_hours = problems(policy_name="custom", policy_settings={**CUSTOM_RULES, "sms_hours": [21, 8]})
    assert "sms_hours" in bad_hours["policy_settings"]


def test_coupons_only_where_the_policy_allows_incentives() -> None:
    assert draft(policy_name="us", coupon_mode="pool").coupon_mode == "pool"
    assert "allows none" in problems(policy_name="eu-strict", coupon_mode="generated")["coupon_mode"]
    assert (
        "allows none" in problems(policy_name="custom", policy_settings=CUSTOM_RULES, coupon_mode="pool")["coupon_mode"]
    )


def test_coupon_modes_match_the_coupons_service() -> None:
    assert COUPON_MODES == tuple(mode.value for mode in CouponMode)


def test_the_state_machine() -> None:
    assert next_statuses("draft") == (CampaignStatus.ACTIVE, CampaignStatus.ENDED)
    assert next_statuses("active") == (CampaignStatus.PAUSED, CampaignStatus.ENDED)
    assert next_statuses("paused") == (CampaignStatus.ACTIVE, CampaignStatus.ENDED)
    assert next_statuses("ended") == ()
    assert all(CampaignStatus.DRAFT not in targets for targets in TRANSITIONS.values())  # never back to draft


def test_actors() -> None:
    assert Actor("ann@staff.example", ActorKind.USER, Role.ADMIN).may_set_custom_policy
    assert not Actor("mo@staff.example", ActorKind.USER, Role.MARKETER).may_set_custom_policy
    assert Actor("cli", ActorKind.CLI).may_set_custom_policy
    with pytest.raises(ValueError, match="role"):
        Actor("mo@staff.example", ActorKind.USER)
    with pytest.raises(ValueError, match="name"):
        Actor(" ", ActorKind.SYSTEM)
