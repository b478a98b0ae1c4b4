"""A synthetic viral campaign, driven through the real service layer, to watch a dashboard fill.

`flask --app wsgi simulate --campaign SLUG --people N --k K [--days D] [--seed S]`. Simulated
people land on the offer, forward it to friends (ForwardingService.submit, with the referrer
token of the forward they came through), click their links (follow_link) and redeem coupons
(engine.services.coupons), spread over D simulated days that end now. The services stamp rows
with the real clock; the simulator moves each row it made to its simulated time afterwards, so
that nothing in production code knows about simulations.

Nobody real is involved, and nothing is sent: addresses are at example.com, client addresses
in 198.18.0.0/15 (RFC 2544, for benchmarks), the forwarding service is given a queue that
dispatches nothing, and each message is recorded `delivered` as soon as it is written.

The model, for a requested K: a sender forwards to m friends, m uniform in 1..M (M = the
campaign's friends per submission, at most 5); a friend clicks with probability c; a friend
who clicked forwards in turn with probability s, chosen so that E[m] * c * s = K.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from engine.caps import Limiter
from engine.contacts import ContactHasher, parse_contact
from engine.db import Database, utcnow
from engine.models import Campaign, CampaignStatus, Click, Forward, Message, MessageStatus, Redemption
from engine.rendering import default_templates
from engine.services import coupons
from engine.services.analytics import campaign_metrics, count_visit, refresh_rollups
from engine.services.forwarding import ForwardingService, ForwardSubmission
from engine.services.templates import add_template_versions
from engine.tokens import Purpose, Tokens

SIMULATED_NETWORK = ipaddress.ip_network("198.18.0.0/15")
# The per-address, per-sender and per-campaign caps, out of reach: thousands of simulated
# people act within minutes of real time. The caps are still checked on every submission.
RAISED_CAPS: dict[str, int | None] = {
    "friends_per_sender_per_day": 10**9,
    "submissions_per_ip_per_hour": 10**9,
    "submissions_per_network_per_hour": 10**9,
    "messages_per_recipient_per_30_days": 10**9,
    "campaign_messages_per_day": 10**9,
    "challenge_after_submissions_per_ip_per_hour": 10**9,
}
MAX_FRIENDS = 5
CLICK_RATE = 0.6
DIRECT_SHARE_RATE = 0.5  # of direct visitors, who forward
CONVERSION_RATE = 0.2  # of friends who clicked, who redeem their code
DIRECT_ARRIVALS_SHARE = 0.4  # direct visitors arrive during the first 40% of the days
MEAN_CLICK_DELAY = timedelta(hours=4)
MEAN_SHARE_DELAY = timedelta(hours=12)
MEAN_CONVERSION_DELAY = timedelta(hours=24)


@dataclass(frozen=True)
class SimulationPlan:
    slug: str
    people: int
    k: float
    days: float = 14.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.people < 1:
            raise ValueError("--people must be at least 1")
        if not 0 < self.k <= mean_friends(MAX_FRIENDS):
            raise ValueError(f"--k must be above 0 and at most {mean_friends(MAX_FRIENDS)} (every friend forwarding)")
        if self.days <= 0:
            raise ValueError("--days must be above 0")


@dataclass(frozen=True)
class SimulationReport:
    people: int
    submissions: int
    forwards: int
    clicks: int
    conversions: int
    measured_k: float | None


def mean_friends(max_friends: int) -> float:
    return (1 + max_friends) / 2


def rates_for(k: float, max_friends: int) -> tuple[float, float]:
    """(click rate, share rate of those who clicked) that make E[friends] * click * share = k."""
    friends = mean_friends(max_friends)
    if k > friends:
        raise ValueError(f"K {k} needs more than {max_friends} friends a sender")
    click = max(CLICK_RATE, k / friends)
    return click, k / (friends * click)


def direct_visitors_for(plan: SimulationPlan, max_friends: int) -> int:
    """How many direct visitors make the expected number of people about `plan.people`: for
    K < 1 each direct sender's chain reaches E[m] / (1 - K) friends; for K >= 1 the chains
    would never stop, and the people budget ends them."""
    if plan.k >= 1:
        return max(1, plan.people // 50)
    per_visitor = 1 + DIRECT_SHARE_RATE * mean_friends(max_friends) / (1 - plan.k)
    return max(1, round(plan.people / per_visitor))


class _NoDispatch:
    """A job queue that dispatches nothing: simulated messages are never sent."""

    def request_dispatch(self, *, extra: bool = False) -> bool:
        return True

    def dispatch_done(self) -> None:
        return None


def prepare_campaign(db: Database, slug: str) -> None:
    """The campaign to simulate in: made if missing (email, generated coupons), caps raised."""
    with db.transaction() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
        if campaign is None:
            campaign = Campaign(
                slug=slug,
                name=f"Simulation {slug}",
                status=CampaignStatus.ACTIVE,
                offer_title="A simulated offer",
                offer_description="Made by `flask simulate`: nobody real receives it.",
                brand_name="Simulated Brand",
                sender_email="offers@example.com",
                postal_address="1 Example Street, Example City",
                channels=["email"],
                policy_name="us",
                coupon_mode="generated",
                max_friends_per_submission=MAX_FRIENDS,
            )
            session.add(campaign)
            add_template_versions(session, campaign, default_templates())
        campaign.caps = {**(campaign.caps or {}), **RAISED_CAPS}


@dataclass(order=True)
class _Event:
    at: datetime
    order: int
    kind: str
    person: int
    forward: str | None = None  # the public id of the forward the person received


class Simulator:
    def __init__(
        self,
        db: Database,
        tokens: Tokens,
        hasher: ContactHasher,
        limiter: Limiter,
        plan: SimulationPlan,
        *,
        progress: Callable[[int], None] = lambda n: None,
    ) -> None:
        self._db = db
        self._tokens = tokens
        self._plan = plan
        self._progress = progress
        self._forwarding = ForwardingService(db, tokens, hasher, _NoDispatch(), limiter)
        self._random = random.Random(plan.seed)
        self._events: list[_Event] = []
        self._order = itertools.count()
        self._people = 0
        self._submissions = self._forwards = self._clicks = self._conversions = 0

    def run(self, now: datetime | None = None) -> SimulationReport:
        plan = self._plan
        end = now or utcnow()
        start = end - timedelta(days=plan.days)
        with self._db.reading() as session:
            campaign = session.scalar(select(Campaign).where(Campaign.slug == plan.slug))
            if campaign is None:
                raise LookupError(f"no campaign {plan.slug!r}")
            # Offset the people's numbers by the campaign's forwards, so that a second run adds
            # new people instead of inviting the first run's friends again (who would be skipped).
            self._offset = len(session.scalars(select(Forward.id).where(Forward.campaign_id == campaign.id)).all())
            max_friends = min(MAX_FRIENDS, campaign.max_friends_per_submission)
        self._max_friends = max_friends
        self._click_rate, self._share_rate = rates_for(plan.k, max_friends)
        for _ in range(min(plan.people, direct_visitors_for(plan, max_friends))):
            offset = self._random.random() * plan.days * DIRECT_ARRIVALS_SHARE
            self._schedule(start + timedelta(days=offset), "visit", self._new_person())
        day_ends = start + timedelta(days=1)
        while self._events:
            event = heapq.heappop(self._events)
            if event.at > end:
                break
            if event.at >= day_ends:
                refresh_rollups(self._db, plan.slug, event.at)  # the dashboard fills day by day
                day_ends += timedelta(days=1)
            getattr(self, f"_{event.kind}")(event)
        refresh_rollups(self._db, plan.slug, end)
        measured = campaign_metrics(self._db, plan.slug, end).overall.k
        return SimulationReport(
            self._people, self._submissions, self._forwards, self._clicks, self._conversions, measured
        )

    # -- what people do --------------------------------------------------------------------

    def _visit(self, event: _Event) -> None:
        """A direct visitor lands on the offer; some forward it."""
        count_visit(self._db, self._plan.slug, None, event.at)
        if self._random.random() < DIRECT_SHARE_RATE:
            self._share(event)

    def _click(self, event: _Event) -> None:
        assert event.forward is not None
        token = self._tokens.sign(Purpose.FORWARD, event.forward)
        self._forwarding.follow_link(token, self._address(event.person), "Fluister simulation")
        self._restamp(Click, Click.forward_id == self._forward_id(event.forward), event.at)
        count_visit(self._db, self._plan.slug, event.forward, event.at)
        self._clicks += 1
        if self._random.random() < self._share_rate:
            self._schedule(event.at + self._delay(MEAN_SHARE_DELAY), "share", event.person, event.forward)
        if self._random.random() < CONVERSION_RATE:
            self._schedule(event.at + self._delay(MEAN_CONVERSION_DELAY), "convert", event.person, event.forward)

    def _share(self, event: _Event) -> None:
        wanted = self._random.randint(1, self._max_friends)
        friends = [self._new_person() for _ in range(min(wanted, self._plan.people - self._people))]
        if not friends:
            return  # the people budget is spent
        submission = ForwardSubmission(
            sender_name=f"Person {event.person}",
            friends=[parse_contact(self._email(f), "NL") for f in friends],
            sender_contact=parse_contact(self._email(event.person), "NL"),
            referrer_token=self._tokens.sign(Purpose.FORWARD, event.forward) if event.forward else None,
            client_ip=self._address(event.person),
            challenge_solved=True,
        )
        receipt = self._forwarding.submit(self._plan.slug, submission)
        self._submissions += 1
        self._forwards += len(receipt.forward_ids)
        public_ids = self._record_sent(receipt.forward_ids, event.at)
        for friend, public_id in zip(friends, public_ids, strict=True):
            if self._random.random() < self._click_rate:
                self._schedule(event.at + self._delay(MEAN_CLICK_DELAY), "click", friend, public_id)

    def _convert(self, event: _Event) -> None:
        assert event.forward is not None
        code = coupons.code_for_visitor(self._db, event.forward)
        if code is None:
            return  # the campaign gives no coupons
        record = coupons.redeem(
            self._db, self._plan.slug, code, external_ref=f"sim-{event.person}", reported_by="simulation"
        )
        self._restamp(Redemption, Redemption.id == record.id, event.at)
        self._conversions += 1

    # -- bookkeeping -----------------------------------------------------------------------

    def _record_sent(self, forward_ids: tuple[int, ...], at: datetime) -> list[str]:
        """Move the new forwards to their simulated time and record their messages delivered
        (nothing is sent); their public ids, in the order of the friends."""
        with self._db.transaction() as session:
            session.execute(update(Forward).where(Forward.id.in_(forward_ids)).values(created_at=at))
            session.execute(
                update(Message)
                .where(Message.forward_id.in_(forward_ids), Message.status == MessageStatus.QUEUED)
                .values(status=MessageStatus.DELIVERED, created_at=at, updated_at=at, sent_at=at)
            )
            rows = dict(session.execute(select(Forward.id, Forward.public_id).where(Forward.id.in_(forward_ids))).all())
        return [rows[i] for i in forward_ids]

    def _restamp(self, model: type, where: object, at: datetime) -> None:
        with self._db.transaction() as session:
            session.execute(update(model).where(where).values(created_at=at))  # type: ignore[arg-type]

    def _forward_id(self, public_id: str) -> int:
        with self._db.reading() as session:
            forward_id = session.scalar(select(Forward.id).where(Forward.public_id == public_id))
        assert forward_id is not None
        return forward_id

    def _schedule(self, at: datetime, kind: str, person: int, forward: str | None = None) -> None:
        heapq.heappush(self._events, _Event(at, next(self._order), kind, person, forward))

    def _new_person(self) -> int:
        self._people += 1
        self._progress(1)
        return self._offset + self._people

    def _delay(self, mean: timedelta) -> timedelta:
        return timedelta(seconds=self._random.expovariate(1 / mean.total_seconds()))

    def _email(self, person: int) -> str:
        return f"person{person}@example.com"

    def _address(self, person: int) -> str:
        return str(SIMULATED_NETWORK[person % SIMULATED_NETWORK.num_addresses])
