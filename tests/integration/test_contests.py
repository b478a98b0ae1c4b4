"""Contests on SQLite and PostgreSQL: set up only where the policy and the regions allow one;
who takes part (confirmed referrers, once each, fraud filters); ties; the period on the app's
clock; the final leaderboard frozen once; winners told at most once, never when they opted
out; the console page, the landing page's notice and the public rules page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from sqlalchemy import func, select

from engine.clock import FixedClock
from engine.contacts import Contact
from engine.models import (
    Campaign,
    Consent,
    ConsentPurpose,
    Contest,
    ContestWinner,
    Forward,
    Message,
    Referrer,
    SuppressionScope,
    SuppressionSource,
)
from engine.models.rewards import Reward, RewardProgram
from engine.runtime import Runtime
from engine.services.contests import (
    ContestDraft,
    ContestInvalid,
    ContestLocked,
    ContestRefused,
    cancel_contest,
    save_contest,
    standings,
)
from engine.services.history import Actor, ActorKind
from engine.services.suppression import suppress_contact
from engine.transports.memory import MemoryTransport
from tests.helpers import US_CUSTOM_SMS, csrf_token, make_campaign, staff_client

WITH_INCENTIVES = {**US_CUSTOM_SMS, "incentives": True}
MARKETER = Actor("m@staff.example", ActorKind.CLI)
RULES = (
    "Open to residents of the Netherlands aged 18 or over who confirmed their contact on their own page. "
    "The three referrers with the most friends reached win; ties go to whoever got there first."
)
_numbers = count(1)


@pytest.fixture
def shop(runtime: Runtime) -> Campaign:
    return make_campaign(runtime.db, "spring", policy_settings=WITH_INCENTIVES)


def draft(clock: FixedClock, **changes: object) -> ContestDraft:
    start = clock.now().astimezone(UTC).replace(tzinfo=None) + timedelta(days=1)
    values: dict[str, object] = {
        "title": "Spring contest",
        "rules": RULES,
        "metric": "friends-reached",
        "starts_local": start,
        "ends_local": start + timedelta(days=7),
        "time_zone": "UTC",
        "prizes": ("A bicycle", "A dinner for two"),
    }
    values.update(changes)
    return ContestDraft(**values)  # type: ignore[arg-type]


def referrer(runtime: Runtime, campaign: Campaign, name: str, contact: str, *, confirmed: datetime | None) -> str:
    """A referrer who sent a first forward, confirmed (or not) with `contact`; their sender key."""
    key = f"c:h-{contact}"
    with runtime.db.transaction() as session:
        # Their first forward, long before any contest.
        anchor = _forward(
            session, campaign, name, f"h-{contact}", f"h-anchor-{next(_numbers)}", datetime(2026, 1, 1, tzinfo=UTC)
        )
        consent = Consent(
            contact_hash=f"h-{contact}",
            channel="email",
            campaign_id=campaign.id,
            source="referrer-page",
            purpose=ConsentPurpose.REWARDS,
        )
        session.add(consent)
        session.flush()
        session.add(
            Referrer(
                public_id=f"ref{next(_numbers)}",
                campaign_id=campaign.id,
                referrer_key=key,
                forward_id=anchor.id,
                contact_channel="email" if confirmed else None,
                contact=f"{contact}@example.com" if confirmed else None,
                contact_hash=f"h-{contact}" if confirmed else None,
                confirmed_at=confirmed,
                consent_id=consent.id if confirmed else None,
            )
        )
    return key


def _forward(
    session, campaign: Campaign, name: str, sender_hash: str, friend: str, at: datetime, status: str = "sent"
) -> Forward:  # type: ignore[no-untyped-def]
    forward = Forward(
        public_id=f"pub{next(_numbers)}",
        campaign_id=campaign.id,
        generation=1,
        channel="email",
        sender_name=name,
        sender_contact_hash=sender_hash,
        recipient_contact_hash=friend,
        policy_name="custom",
        policy_version=1,
        created_at=at,
    )
    session.add(forward)
    session.flush()
    session.add(
        Message(
            public_id=f"msg{next(_numbers)}",
            forward_id=forward.id,
            channel="email",
            status=status,
            policy_name="custom",
            policy_version=1,
        )
    )
    return forward


def invites(
    runtime: Runtime,
    campaign: Campaign,
    name: str,
    contact: str,
    friends: list[str],
    at: datetime,
    status: str = "sent",
) -> None:
    with runtime.db.transaction() as session:
        for n, friend in enumerate(friends):
            _forward(session, campaign, name, f"h-{contact}", friend, at + timedelta(minutes=n), status)


def running(runtime: Runtime, clock: FixedClock, **changes: object) -> Contest:
    contest = save_contest(runtime.db, "spring", draft(clock, **changes), MARKETER, clock.now())
    clock.advance(timedelta(days=1, minutes=1))
    return contest


def board(runtime: Runtime, contest: Contest, clock: FixedClock) -> list[tuple[int, str, int, str | None]]:
    with runtime.db.reading() as session:
        stored = session.get(Contest, contest.id)
        assert stored is not None
        # As it stands at its end (the clock stands still at its start).
        return [(p.rank, p.sender_name, p.score, p.prize) for p in standings(session, stored, stored.ends_at)]


# -- setting up ------------------------------------------------------------------------------------


def test_no_contest_where_the_policy_allows_no_incentive_or_the_region_asks_for_a_filing(
    runtime: Runtime, clock: FixedClock
) -> None:
    make_campaign(runtime.db, "strict", policy_name="eu-strict", policy_settings={})
    with pytest.raises(ContestRefused, match="incentive"):
        save_contest(runtime.db, "strict", draft(clock), MARKETER, clock.now())
    make_campaign(runtime.db, "roma", policy_settings=WITH_INCENTIVES, phone_region="IT")
    with pytest.raises(ContestRefused, match="IT"):
        save_contest(runtime.db, "roma", draft(clock), MARKETER, clock.now())
    with runtime.db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Contest)) == 0


def test_friends_converted_needs_the_reward_programme(runtime: Runtime, shop: Campaign, clock: FixedClock) -> None:
    with pytest.raises(ContestRefused, match="reward programme"):
        save_contest(runtime.db, "spring", draft(clock, metric="friends-converted"), MARKETER, clock.now())


def test_a_contest_as_typed_is_checked_field_by_field(clock: FixedClock) -> None:
    with pytest.raises(ContestInvalid) as invalid:
        draft(clock, title=" ", rules="Be nice.", metric="likes", time_zone="Mars/Olympus", prizes=())
    assert set(invalid.value.problems) == {"title", "rules", "metric", "time_zone", "prizes"}
    start = datetime(2026, 7, 1, 12, 0)
    with pytest.raises(ContestInvalid) as invalid:
        draft(clock, starts_local=start, ends_local=start + timedelta(minutes=30))
    assert set(invalid.value.problems) == {"ends"}


def test_the_period_is_typed_in_the_contests_zone_and_stored_in_utc(
    runtime: Runtime, shop: Campaign, clock: FixedClock
) -> None:
    local = datetime(2026, 7, 1, 9, 0)
    contest = save_contest(
        runtime.db,
        "spring",
        draft(clock, starts_local=local, ends_local=local + timedelta(days=2), time_zone="Europe/Amsterdam"),
        MARKETER,
        clock.now(),
    )
    assert contest.starts_at == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)  # CEST is UTC+2


def test_a_start_in_the_past_or_an_overlap_is_refused_and_a_started_contest_is_locked(
    runtime: Runtime, shop: Campaign, clock: FixedClock
) -> None:
    past = clock.now().astimezone(UTC).replace(tzinfo=None) - timedelta(hours=1)
    with pytest.raises(ContestInvalid, match="passed"):
        save_contest(
            runtime.db,
            "spring",
            draft(clock, starts_local=past, ends_local=past + timedelta(days=1)),
            MARKETER,
            clock.now(),
        )
    contest = save_contest(runtime.db, "spring", draft(clock), MARKETER, clock.now())
    with pytest.raises(ContestInvalid, match="Another contest"):
        save_contest(runtime.db, "spring", draft(clock, title="Second"), MARKETER, clock.now())
    # Changed freely until it starts; after, only cancelled.
    save_contest(runtime.db, "spring", draft(clock, title="Spring contest, renamed"), MARKETER, clock.now(), contest.id)
    clock.advance(timedelta(days=2))
    with pytest.raises(ContestLocked):
        save_contest(runtime.db, "spring", draft(clock, title="Changed mid-way"), MARKETER, clock.now(), contest.id)
    with pytest.raises(ContestInvalid):
        cancel_contest(runtime.db, "spring", contest.id, " ", MARKETER, clock.now())
    cancelled = cancel_contest(runtime.db, "spring", contest.id, "The prize sponsor withdrew.", MARKETER, clock.now())
    assert cancelled.cancelled_at is not None


# -- who takes part, and how they rank -----------------------------------------------------------------


def test_only_confirmed_referrers_count_once_each_and_only_within_the_period(
    runtime: Runtime, shop: Campaign, clock: FixedClock
) -> None:
    contest = running(runtime, clock)
    start = contest.starts_at
    referrer(runtime, shop, "Ann", "ann", confirmed=start)
    referrer(runtime, shop, "Bob", "bob", confirmed=None)  # never confirmed: not in the contest
    invites(
        runtime, shop, "Ann", "ann", ["f1", "f2", "f2", "h-ann"], start + timedelta(hours=1)
    )  # a friend twice; herself
    invites(runtime, shop, "Ann", "ann", ["f3"], start - timedelta(hours=1))  # before the start
    invites(runtime, shop, "Ann", "ann", ["f4"], start + timedelta(hours=2), status="bounced")  # never went out
    invites(runtime, shop, "Bob", "bob", ["g1", "g2", "g3"], start + timedelta(hours=1))
    assert board(runtime, contest, clock) == [(1, "Ann", 2, "A bicycle")]


def test_a_tie_goes_to_whoever_got_there_first(runtime: Runtime, shop: Campaign, clock: FixedClock) -> None:
    contest = running(runtime, clock)
    start = contest.starts_at
    referrer(runtime, shop, "Ann", "ann", confirmed=start)
    referrer(runtime, shop, "Cas", "cas", confirmed=start)
    referrer(runtime, shop, "Dee", "dee", confirmed=start)
    invites(runtime, shop, "Ann", "ann", ["a1", "a2"], start + timedelta(hours=3))
    invites(runtime, shop, "Cas", "cas", ["c1", "c2"], start + timedelta(hours=2))  # the same score, earlier
    invites(runtime, shop, "Dee", "dee", ["d1", "d2", "d3"], start + timedelta(hours=5))
    assert board(runtime, contest, clock) == [
        (1, "Dee", 3, "A bicycle"),
        (2, "Cas", 2, "A dinner for two"),
        (3, "Ann", 2, None),
    ]


def test_friends_converted_counts_rewards_as_the_fraud_filters_let_them(
    runtime: Runtime, shop: Campaign, clock: FixedClock
) -> None:
    with runtime.db.transaction() as session:
        session.add(RewardProgram(campaign_id=shop.id, enabled=True, description="A voucher"))
    contest = running(runtime, clock, metric="friends-converted")
    start = contest.starts_at
    ann = referrer(runtime, shop, "Ann", "ann", confirmed=start)
    invites(runtime, shop, "Ann", "ann", ["f1", "f2", "f3", "f4"], start + timedelta(hours=1))
    from engine.models import Coupon, Redemption

    with runtime.db.transaction() as session:
        forwards = session.scalars(
            select(Forward).where(Forward.recipient_contact_hash.in_(["f1", "f2", "f3", "f4"]))
        ).all()
        for n, (forward, (status, flagged)) in enumerate(
            zip(forwards, [("held", False), ("held", True), ("rejected", False), ("approved", True)], strict=True)
        ):
            coupon = Coupon(campaign_id=shop.id, code=f"C{n}", forward_id=forward.id)
            session.add(coupon)
            session.flush()
            redemption = Redemption(coupon_id=coupon.id, campaign_id=shop.id, created_at=start + timedelta(hours=2))
            session.add(redemption)
            session.flush()
            session.add(
                Reward(
                    campaign_id=shop.id,
                    redemption_id=redemption.id,
                    forward_id=forward.id,
                    referrer_key=ann,
                    referrer_name="Ann",
                    status=status,
                    flagged=flagged,
                    flags=["same-ip"] if flagged else [],
                    description="A voucher",
                    created_at=start + timedelta(hours=2),
                )
            )
    # Held and clean, and flagged but approved by a reviewer: 2. Flagged and held, rejected: not.
    assert board(runtime, contest, clock) == [(1, "Ann", 2, "A bicycle")]


def test_one_person_under_two_sender_keys_is_one_entry(runtime: Runtime, shop: Campaign, clock: FixedClock) -> None:
    contest = running(runtime, clock)
    start = contest.starts_at
    referrer(runtime, shop, "Ann", "ann", confirmed=start)
    with runtime.db.transaction() as session:
        # Ann again, forwarding without her contact (so as `p:` of the forward she came through),
        # confirmed on that page with the same address.
        parent = _forward(session, shop, "Zed", "h-zed", "h-ann", start)
        consent = Consent(
            contact_hash="h-ann", channel="email", campaign_id=shop.id, source="referrer-page", purpose="rewards"
        )
        session.add(consent)
        session.flush()
        anchor = Forward(
            public_id="anchor-p",
            campaign_id=shop.id,
            parent_id=parent.id,
            generation=2,
            channel="email",
            sender_name="Ann",
            recipient_contact_hash="f9",
            policy_name="custom",
            policy_version=1,
            created_at=start + timedelta(hours=1),
        )
        session.add(anchor)
        session.flush()
        session.add(
            Message(
                public_id="m-anchor",
                forward_id=anchor.id,
                channel="email",
                status="sent",
                policy_name="custom",
                policy_version=1,
            )
        )
        session.add(
            Referrer(
                public_id="ref-p",
                campaign_id=shop.id,
                referrer_key=f"p:{parent.id}",
                forward_id=anchor.id,
                contact_channel="email",
                contact="ann@example.com",
                contact_hash="h-ann",
                confirmed_at=start + timedelta(hours=1),
                consent_id=consent.id,
            )
        )
    invites(runtime, shop, "Ann", "ann", ["f1", "f9"], start + timedelta(hours=2))
    # f1 and f9 under her contact, f9 again under the other key: two friends, one entry.
    assert board(runtime, contest, clock) == [(1, "Ann", 2, "A bicycle")]


# -- the end ---------------------------------------------------------------------------------------------


def test_the_final_leaderboard_is_frozen_once_and_winners_are_told_at_most_once(
    runtime: Runtime, shop: Campaign, clock: FixedClock, transport: MemoryTransport
) -> None:
    contest = running(runtime, clock)
    start = contest.starts_at
    referrer(runtime, shop, "Ann", "ann", confirmed=start)
    referrer(runtime, shop, "Cas", "cas", confirmed=start)
    referrer(runtime, shop, "Dee", "dee", confirmed=start)
    invites(runtime, shop, "Ann", "ann", ["a1", "a2", "a3"], start + timedelta(hours=1))
    invites(runtime, shop, "Cas", "cas", ["c1", "c2"], start + timedelta(hours=1))
    invites(runtime, shop, "Dee", "dee", ["d1"], start + timedelta(hours=1))
    with runtime.db.transaction() as session:  # Cas opted out of the campaign's e-mail since
        suppress_contact(
            session,
            runtime.hasher.hash(Contact("email", "cas@example.com")),
            "email",
            SuppressionScope.CAMPAIGN,
            SuppressionSource.LINK,
            campaign_id=shop.id,
            now=clock.now(),
        )

    assert runtime.contests.finalise_due().finalised == []  # still running
    clock.advance(timedelta(days=7))
    invites(runtime, shop, "Dee", "dee", ["d2", "d3", "d4"], clock.now())  # after the end: not counted
    first = runtime.contests.finalise_due()
    assert first.finalised == [contest.id]
    assert runtime.contests.finalise_due().finalised == []  # frozen once
    runtime.queue.drain()  # type: ignore[attr-defined]

    with runtime.db.reading() as session:
        winners = session.scalars(select(ContestWinner).order_by(ContestWinner.rank)).all()
        assert [(w.rank, w.sender_name, w.score, w.prize, w.notice_state) for w in winners] == [
            (1, "Ann", 3, "A bicycle", "sent"),
            (2, "Cas", 2, "A dinner for two", "suppressed"),
            (3, "Dee", 1, None, None),
        ]
    told = [m for m in transport.emails if "You won" in m.text]
    assert len(told) == 1 and told[0].to == "ann@example.com" and "A bicycle" in told[0].text
    assert "stop these messages" in told[0].text  # their page and its one-click stop, as every notice
    # A notice sent is never sent again, whatever asks.
    assert runtime.contests.send(winners[0].id) == "not queued"
    runtime.contests.finalise_due()
    runtime.queue.drain()  # type: ignore[attr-defined]
    assert len([m for m in transport.emails if "You won" in m.text]) == 1


# -- the pages -------------------------------------------------------------------------------------------


def test_the_landing_page_announces_a_running_contest_and_links_its_rules(
    app,
    runtime: Runtime,
    shop: Campaign,
    clock: FixedClock,  # type: ignore[no-untyped-def]
) -> None:
    contest = save_contest(runtime.db, "spring", draft(clock), MARKETER, clock.now())
    client = app.test_client()
    assert "Spring contest" not in client.get("/c/spring").text  # not started
    clock.advance(timedelta(days=1, minutes=1))
    page = client.get("/c/spring").text
    assert "Spring contest" in page and "A bicycle" in page and "/c/spring/contest" in page
    rules = client.get("/c/spring/contest")
    assert rules.status_code == 200 and "residents of the Netherlands" in rules.text and "(UTC)" in rules.text
    cancel_contest(runtime.db, "spring", contest.id, "Sponsor withdrew.", MARKETER, clock.now())
    assert "Spring contest" not in client.get("/c/spring").text
    assert client.get("/c/spring/contest").status_code == 404
    assert client.get("/c/nowhere/contest").status_code == 404


def test_the_console_sets_a_contest_up_with_errors_beside_fields(
    app, runtime: Runtime, shop: Campaign, clock: FixedClock
) -> None:  # type: ignore[no-untyped-def]
    client = staff_client(app, "marketer")
    page = client.get("/console/campaigns/spring/contests")
    assert page.status_code == 200 and "New contest" in page.text
    token = csrf_token(page.text)
    bad = client.post(
        "/console/campaigns/spring/contests",
        data={"csrf_token": token, "title": "", "metric": "friends-reached", "time_zone": "Nowhere", "rules": "short"},
    )
    assert bad.status_code == 422
    assert 'id="title-error"' in bad.text and 'id="time_zone-error"' in bad.text and 'id="rules-error"' in bad.text
    start = (clock.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    end = (clock.now() + timedelta(days=9)).strftime("%Y-%m-%dT%H:%M")
    good = client.post(
        "/console/campaigns/spring/contests",
        data={
            "csrf_token": token,
            "title": "Summer contest",
            "metric": "friends-reached",
            "starts": start,
            "ends": end,
            "time_zone": "Europe/Amsterdam",
            "prizes": "A bicycle\nA dinner",
            "rules": RULES,
        },
    )
    assert good.status_code == 303
    listing = client.get("/console/campaigns/spring/contests").text
    assert "Summer contest" in listing and "Upcoming" in listing and "(Europe/Amsterdam)" in listing
    # A viewer may look, not set up.
    viewer = staff_client(app, "compliance")
    seen = viewer.get("/console/campaigns/spring/contests")
    assert seen.status_code == 200 and "New contest" not in seen.text
    # A valid token of their own session: the role decides.
    own_token = csrf_token(viewer.get("/login").text)
    assert viewer.post("/console/campaigns/spring/contests", data={"csrf_token": own_token}).status_code == 403


def test_the_console_says_why_a_campaign_can_run_no_contest(app, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    make_campaign(runtime.db, "strict", policy_name="eu-strict", policy_settings={})
    page = staff_client(app, "marketer").get("/console/campaigns/strict/contests").text
    assert 'id="contest-refusal"' in page and "eu-strict" in page and "New contest" not in page
