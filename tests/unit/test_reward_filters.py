"""The fraud filters of referrer rewards, one by one, on what Fluister keeps about a conversion."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.contacts import Contact
from engine.models.rewards import RewardFlag
from engine.services.rewards import (
    ConversionFacts,
    Device,
    LeaderboardEntry,
    ProgramSettings,
    ReviewDecision,
    fraud_flags,
    has_disposable_address,
    has_repeated_device,
    is_self_referral,
    shares_referrer_ip,
)

PHONE = Device("Mozilla/5.0 (iPhone)", "ip-friend")
LAPTOP = Device("Mozilla/5.0 (X11; Linux)", "ip-referrer")

CLEAN = ConversionFacts(
    referrer_contacts=frozenset({"h-referrer"}),
    friend_contacts=frozenset({"h-friend"}),
    referrer_ip_hash="ip-referrer",
    friend_devices=frozenset({PHONE}),
    other_friends_devices=frozenset({Device("Mozilla/5.0 (Android)", "ip-other")}),
    friend_address=Contact("email", "friend@example.com"),
)


def test_a_clean_conversion_has_no_flags() -> None:
    assert fraud_flags(CLEAN) == []


def test_self_referral_when_a_contact_of_the_referrer_is_the_friends() -> None:
    # The referrer sent the offer to their own address (their contact = the invitation's recipient).
    assert is_self_referral(replace(CLEAN, friend_contacts=frozenset({"h-friend", "h-referrer"})))
    # Nothing known of the referrer's contacts (an anonymous direct visitor): no finding.
    assert not is_self_referral(replace(CLEAN, referrer_contacts=frozenset()))
    assert not is_self_referral(CLEAN)


def test_same_ip_when_the_friend_clicked_from_where_the_referrer_forwarded() -> None:
    assert shares_referrer_ip(replace(CLEAN, friend_devices=frozenset({PHONE, LAPTOP})))
    assert not shares_referrer_ip(CLEAN)
    assert not shares_referrer_ip(replace(CLEAN, referrer_ip_hash=None, friend_devices=frozenset({LAPTOP})))


def test_repeated_device_when_one_browser_is_behind_several_converting_friends() -> None:
    assert has_repeated_device(replace(CLEAN, other_friends_devices=frozenset({PHONE})))
    # The same address with another browser is another device (a household, an office).
    other_browser = Device("Mozilla/5.0 (Windows)", PHONE.ip_hash)
    assert not has_repeated_device(replace(CLEAN, other_friends_devices=frozenset({other_browser})))
    assert not has_repeated_device(CLEAN)


def test_disposable_address_only_while_the_address_is_kept() -> None:
    assert has_disposable_address(replace(CLEAN, friend_address=Contact("email", "x@mailinator.com")))
    assert not has_disposable_address(CLEAN)
    assert not has_disposable_address(replace(CLEAN, friend_address=None))  # purged: hashes only
    assert not has_disposable_address(replace(CLEAN, friend_address=Contact("sms", "+31612345678")))


def test_every_finding_is_listed_in_a_fixed_order() -> None:
    everything = replace(
        CLEAN,
        friend_contacts=frozenset({"h-referrer"}),
        friend_devices=frozenset({LAPTOP}),
        other_friends_devices=frozenset({LAPTOP}),
        friend_address=Contact("email", "x@mailinator.com"),
    )
    assert fraud_flags(everything) == [
        RewardFlag.SELF_REFERRAL,
        RewardFlag.SAME_IP,
        RewardFlag.REPEATED_DEVICE,
        RewardFlag.DISPOSABLE_ADDRESS,
    ]


def test_value_objects_refuse_what_cannot_be() -> None:
    with pytest.raises(ValueError):
        Device("", "ip")
    with pytest.raises(ValueError):
        replace(CLEAN, friend_contacts=frozenset())
    with pytest.raises(ValueError, match="why"):
        ReviewDecision(approve=False, reviewer="m@staff.example", reason="  ")
    with pytest.raises(ValueError):
        ReviewDecision(approve=True, reviewer="")
    with pytest.raises(ValueError):
        ProgramSettings(enabled=True, description="")
    with pytest.raises(ValueError):
        LeaderboardEntry(rank=1, sender_name="Ann", converted_friends=1, approved=2)
    assert ReviewDecision(approve=True, reviewer="m@staff.example").reason is None
