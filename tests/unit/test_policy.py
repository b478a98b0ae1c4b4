import pytest

from engine.channels import ChannelRule
from engine.policy import PolicyError, Retention, policy_for

CUSTOM = {
    "version": 3,
    "server_email": True,
    "server_sms": "allowed",
    "incentives": False,
    "retention": "days_after_send",
    "retention_days": 14,
    "justification": "Signed off by compliance on 2026-11-01, ticket 42.",
}


@pytest.mark.parametrize(
    ("name", "email", "sms_without_consent", "sms_with_consent", "keeps_contact"),
    [
        ("us", True, False, True, True),
        ("eu-strict", True, False, False, True),
        ("share-only", False, False, False, False),
    ],
)
def test_built_in_policies_follow_the_design_table(
    name: str, email: bool, sms_without_consent: bool, sms_with_consent: bool, keeps_contact: bool
) -> None:
    policy = policy_for(name)
    assert policy.server_sends("email") is email
    assert policy.server_sends("sms") is sms_without_consent
    assert policy.server_sends("sms", has_consent=True) is sms_with_consent
    assert policy.keeps_contact is keeps_contact


def test_eu_strict_purges_plaintext_after_send_and_allows_no_incentives() -> None:
    policy = policy_for("eu-strict")
    assert policy.purges_contact_on_send
    assert policy.incentives is False


def test_custom_policy_is_built_from_explicit_settings() -> None:
    policy = policy_for("custom", CUSTOM)
    assert policy.version == 3
    assert policy.rule("sms") is ChannelRule.ALLOWED
    assert policy.retention is Retention.DAYS_AFTER_SEND
    assert policy.server_sends("sms")


def test_custom_policy_needs_a_justification() -> None:
    with pytest.raises(PolicyError, match="justification"):
        policy_for("custom", {**CUSTOM, "justification": "because"})


@pytest.mark.parametrize("missing", ["version", "server_email", "server_sms", "incentives", "retention"])
def test_custom_policy_needs_every_rule_set_explicitly(missing: str) -> None:
    settings = {k: v for k, v in CUSTOM.items() if k != missing}
    with pytest.raises(PolicyError, match=missing):
        policy_for("custom", settings)


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(PolicyError, match="unknown"):
        policy_for("anything-goes")
