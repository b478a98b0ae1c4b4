"""The chains the verdict judges, cut from a campaign's forwards: who belongs to which chain
when friends inherit their sender's variant or draw their own, what a share link counts, and
which senders and recruits are mature."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.services.experiments import (
    VERDICT_KEPT,
    SentForward,
    VerdictCache,
    autopilot_weights,
    chain_evidence,
    window_of,
)
from engine.verdict import ChainTally, Evidence

START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
NOW = START + timedelta(days=10)
WINDOW = timedelta(days=3)
A, B = 1, 2
KEYS = {A: "a", B: "b"}


def at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def chains(evidence: Evidence, key: str) -> list[ChainTally]:
    found = next(v for v in evidence.variants if v.name == key)
    return sorted(found.chains, key=lambda c: (-c.senders, -c.visitors))


def seeded_tree(friend_variant: int) -> list[SentForward]:
    """Ann (variant a) invites two friends; the first clicks after an hour and forwards an hour
    later under `friend_variant`; the second never clicks but redeems the code. Bo (b) invites one."""
    return [
        SentForward(1, None, A, "c:ann", True, at(0), clicked_at=at(1)),
        SentForward(2, None, A, "c:ann", True, at(0), converted=True),
        SentForward(3, 1, friend_variant, "p:1", True, at(2)),
        SentForward(4, None, B, "c:bo", True, at(5)),
    ]


def test_friends_who_inherit_the_variant_grow_one_chain_with_its_recruit_and_cycle_time() -> None:
    evidence = chain_evidence(seeded_tree(A), KEYS, {"a": 5, "b": 3}, "inherit", NOW, WINDOW)
    ann, *alone = chains(evidence, "a")
    assert ann == ChainTally(
        visitors=3,  # Ann and the two friends who followed her links
        senders=2,
        invites=3,
        clicks=2,  # the friend who clicked, and the one who redeemed
        conversions=1,
        mature_senders=2,
        mature_recruits=1,
        cycle_hours=(1.0,),
    )
    # Visitors who never forwarded are chains of one: five visitors of a, three in Ann's chain.
    assert alone == [ChainTally(1, 0, 0, 0, 0)] * 2
    bo, *rest = chains(evidence, "b")
    assert (bo.senders, bo.invites, bo.clicks, bo.mature_senders, bo.mature_recruits) == (1, 1, 0, 1, 0)
    assert len(rest) == 2
    assert evidence.window == WINDOW


def test_friends_who_draw_their_own_variant_make_each_sender_a_chain_credited_with_their_recruits() -> None:
    evidence = chain_evidence(seeded_tree(B), KEYS, {"a": 4, "b": 3}, "fresh", NOW, WINDOW)
    ann, *alone_a = chains(evidence, "a")
    # Ann's variant recruited the friend, whatever the friend was then shown.
    assert (ann.visitors, ann.senders, ann.invites, ann.clicks, ann.mature_recruits) == (1, 1, 2, 2, 1)
    assert len(alone_a) == 3
    in_b = chains(evidence, "b")
    assert sorted((c.senders, c.invites) for c in in_b if c.senders) == [(1, 1), (1, 1)]  # Bo, and the friend


def test_a_friend_redrawn_under_another_variant_starts_their_own_chain_when_variants_are_inherited() -> None:
    # (the inherited variant was stopped, so the friend got a draw of b)
    evidence = chain_evidence(seeded_tree(B), KEYS, {}, "inherit", NOW, WINDOW)
    ann = chains(evidence, "a")[0]
    assert ann.senders == 1
    assert ann.mature_recruits == 1  # still her recruit
    assert sorted(c.senders for c in chains(evidence, "b")) == [1, 1]


def test_a_share_link_counts_one_accepted_invite_per_person_who_forwarded_through_it() -> None:
    forwards = [
        SentForward(1, None, A, "c:ann", False, at(0), clicked_at=at(0.5)),  # posted, clicked by many
        SentForward(2, 1, A, "c:cas", True, at(3)),
        SentForward(3, 1, A, "c:dee", True, at(4)),
        SentForward(4, None, B, "c:bo", True, at(0)),
    ]
    ann = chains(chain_evidence(forwards, KEYS, {}, "inherit", NOW, WINDOW), "a")[0]
    assert (ann.senders, ann.invites, ann.clicks, ann.mature_recruits) == (3, 4, 2, 2)
    assert ann.cycle_hours == ()  # who clicked a posted link is not known


def test_only_senders_and_invites_at_least_the_window_old_count_towards_k() -> None:
    late = NOW - timedelta(days=1)
    forwards = [
        SentForward(1, None, A, "c:ann", True, at(0), clicked_at=at(1)),
        # The friend forwarded four days after the invite: beyond the three-day window.
        SentForward(2, 1, A, "p:1", True, at(96)),
        SentForward(3, None, A, "c:cas", True, late, clicked_at=late + timedelta(hours=1)),
        SentForward(4, 3, A, "p:3", True, late + timedelta(hours=2)),
        SentForward(5, None, B, "c:bo", True, at(0)),
    ]
    in_a = chains(chain_evidence(forwards, KEYS, {}, "inherit", NOW, WINDOW), "a")
    ann, cas = sorted(in_a, key=lambda c: -c.mature_senders)
    assert (ann.mature_senders, ann.mature_recruits) == (2, 0)
    assert (cas.senders, cas.mature_senders, cas.mature_recruits) == (2, 0, 0)
    assert not cas.mature


def test_forwards_made_before_the_experiment_belong_to_no_chain() -> None:
    forwards = [
        SentForward(1, None, None, "c:old", True, at(0), clicked_at=at(1)),
        SentForward(2, 1, A, "p:1", True, at(2)),  # came through a forward without a variant: a seed
        SentForward(3, None, B, "c:bo", True, at(0)),
    ]
    evidence = chain_evidence(forwards, KEYS, {}, "inherit", NOW, WINDOW)
    assert [(c.senders, c.mature_recruits) for c in chains(evidence, "a")] == [(1, 0)]
    assert sum(len(v.chains) for v in evidence.variants) == 2


def test_the_window_is_a_few_median_cycles_in_whole_days_as_on_the_dashboard() -> None:
    assert window_of([]) == timedelta(days=7)  # no cycle yet: the default
    quick = [SentForward(1, None, A, "c:ann", True, at(0)), SentForward(2, 1, A, "p:1", True, at(10))]
    assert window_of(quick) == timedelta(days=2)  # three times 10 h, rounded up to whole days


@pytest.mark.parametrize(
    ("traffic", "weights"),
    [({"a": 0.5, "b": 0.5}, {"a": 500, "b": 500}), ({"a": 0.9995, "b": 0.0005}, {"a": 1000, "b": 1})],
)
def test_shares_of_traffic_become_whole_number_weights_of_at_least_one(
    traffic: dict[str, float], weights: dict[str, int]
) -> None:
    assert autopilot_weights(traffic) == weights


def test_a_kept_verdict_is_given_again_only_on_the_same_data_and_for_ten_minutes() -> None:
    cache = VerdictCache(size=2)
    verdict = object()
    cache.put(1, ("data",), NOW, verdict)  # type: ignore[arg-type]
    assert cache.get(1, ("data",), NOW + timedelta(minutes=9)) is verdict
    assert cache.get(1, ("more data",), NOW) is None  # a forward or a visitor came since
    assert cache.get(1, ("data",), NOW + VERDICT_KEPT) is None  # clicks and redemptions show
    assert cache.get(1, ("data",), NOW - timedelta(seconds=1)) is None  # a clock set back
    cache.put(2, ("data",), NOW, verdict)  # type: ignore[arg-type]
    cache.put(3, ("data",), NOW, verdict)  # type: ignore[arg-type]
    assert cache.get(1, ("data",), NOW) is None  # the oldest campaign's made room
    assert cache.get(3, ("data",), NOW) is verdict
