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

`flask --app wsgi simulate --variant a:share=0.20 --variant b:share=0.22` runs the same model as
an A/B test, in memory: each variant's chains (`simulate_experiment`), their verdict
(engine/verdict.py) and a power analysis (`power_analysis`). docs/experiments.md.
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
from engine.verdict import ChainTally, DecisionRule, Evidence, Outcome, VariantEvidence, Verdict, decide, judge

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


# -- experiments: variants judged by how far they spread ----------------------------------------------
#
# `flask simulate --variant a:share=0.20 --variant b:share=0.22` runs the same model in memory,
# without the database: an experiment is sized in thousands of chains, repeated many times for
# the power analysis, which the real services (a transaction per forward) could not do in minutes.

DEFAULT_WINDOW = timedelta(hours=72)
POWER_LIFT = 0.10  # the difference in K the power analysis asks to tell
POWER_TARGET = 0.8  # of the runs, in which the rule must pick the truly better variant
VARIANT_SETTINGS = {"share": "share", "click": "click", "convert": "conversion"}


@dataclass(frozen=True)
class VariantPlan:
    """A variant's true behaviour: every visitor (seed or friend who clicked) forwards with
    probability `share`, to 1..MAX_FRIENDS friends; a friend clicks with probability `click`
    and, having clicked, redeems with probability `conversion`."""

    name: str
    share: float
    click: float = CLICK_RATE
    conversion: float = CONVERSION_RATE

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"a variant name is letters, digits, - and _: {self.name!r}")
        for setting in ("share", "click", "conversion"):
            if not 0 < getattr(self, setting) <= 1:
                raise ValueError(f"variant {self.name}: {setting} must be above 0 and at most 1")
        if self.k >= 1:
            raise ValueError(
                f"variant {self.name}: share x click x {mean_friends(MAX_FRIENDS):g} friends is K {self.k:.2f}; "
                "an experiment needs K below 1 (above it the chains never end)"
            )

    @property
    def k(self) -> float:
        """The true K without a window: new senders made per sender."""
        return mean_friends(MAX_FRIENDS) * self.click * self.share

    def lifted(self, name: str, lift: float) -> VariantPlan:
        """The same variant with a K `lift` higher (its share rate raised)."""
        return VariantPlan(name, self.share * (1 + lift), self.click, self.conversion)


def parse_variant(text: str) -> VariantPlan:
    """`NAME:share=0.2[,click=0.6][,convert=0.2]` → a VariantPlan."""
    name, colon, settings = text.partition(":")
    if not colon or not settings:
        raise ValueError(f"a variant is NAME:share=RATE[,click=RATE][,convert=RATE], not {text!r}")
    values: dict[str, float] = {}
    for setting in settings.split(","):
        key, equals, value = setting.strip().partition("=")
        if not equals or key not in VARIANT_SETTINGS:
            raise ValueError(f"variant {name}: unknown setting {setting!r} (share, click or convert)")
        try:
            values[VARIANT_SETTINGS[key]] = float(value)
        except ValueError:
            raise ValueError(f"variant {name}: {key} must be a number, not {value!r}") from None
    if "share" not in values:
        raise ValueError(f"variant {name}: share=RATE is required")
    return VariantPlan(name.strip(), **values)


@dataclass(frozen=True)
class ExperimentPlan:
    """`chains` seed visitors per variant, arriving over the first 40% of `days` (as in the
    campaign simulation); the data is read at the end, with `window` as the maturity window."""

    variants: tuple[VariantPlan, ...]
    chains: int
    days: float = 14.0
    window: timedelta = DEFAULT_WINDOW
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.variants) < 2:
            raise ValueError("an experiment needs at least two --variant")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must differ: {', '.join(names)}")
        if self.chains < 1:
            raise ValueError("--people must be at least 1")
        if self.days <= 0:
            raise ValueError("--days must be above 0")
        if not timedelta(0) < self.window < timedelta(days=self.days):
            raise ValueError("--window must be above 0 and shorter than --days")


def simulate_chain(variant: VariantPlan, arrival: float, end: float, window: float, rng: random.Random) -> ChainTally:
    """One chain of the campaign model, in hours from the experiment's start, read at `end`."""
    counts, cycles = _grow_chain(variant, arrival, end, window, rng)
    return ChainTally(*counts, cycle_hours=tuple(cycles))


def _grow_chain(
    variant: VariantPlan, arrival: float, end: float, window: float, rng: random.Random
) -> tuple[tuple[int, int, int, int, int, int, int], list[float]]:
    """A chain's counts (in ChainTally's order) and cycle times. The seed forwards at once (as
    a direct visitor does); a friend clicks after an exponential delay and forwards after
    another. Nothing after `end` happened yet."""
    share_delay, click_delay = MEAN_SHARE_DELAY / timedelta(hours=1), MEAN_CLICK_DELAY / timedelta(hours=1)
    visitors = senders = invites = clicks = conversions = mature_senders = recruits = 0
    cycles: list[float] = []
    # (when the visitor arrived, when the forward they came through was sent: None for the seed)
    waiting: list[tuple[float, float | None]] = [(arrival, None)]
    while waiting:
        arrived, invited_at = waiting.pop()
        visitors += 1
        shares = rng.random() < variant.share
        shared_at = arrived if invited_at is None else arrived + rng.expovariate(1 / share_delay)
        if invited_at is not None:
            conversions += rng.random() < variant.conversion
            if invited_at <= end - window and shares and shared_at - invited_at <= window:
                recruits += 1  # a friend of a mature sender, forwarding within the window
                cycles.append(shared_at - arrived)
        if not shares or shared_at > end:
            continue
        senders += 1
        mature_senders += shared_at <= end - window
        friends = rng.randint(1, MAX_FRIENDS)
        invites += friends
        for _ in range(friends):
            if rng.random() < variant.click:
                clicked_at = shared_at + rng.expovariate(1 / click_delay)
                if clicked_at <= end:
                    clicks += 1
                    waiting.append((clicked_at, shared_at))
    return (visitors, senders, invites, clicks, conversions, mature_senders, recruits), cycles


def simulate_experiment(plan: ExperimentPlan, rng: random.Random) -> Evidence:
    """Every variant's chains, as read at the end of the experiment."""
    end = plan.days * 24
    window = plan.window / timedelta(hours=1)
    arrivals = end * DIRECT_ARRIVALS_SHARE
    return Evidence(
        tuple(
            VariantEvidence(
                variant.name,
                tuple(simulate_chain(variant, rng.random() * arrivals, end, window, rng) for _ in range(plan.chains)),
            )
            for variant in plan.variants
        ),
        plan.window,
    )


@dataclass(frozen=True)
class PowerEstimate:
    """How large an experiment tells `lift` more K from the baseline in `power` of the runs:
    `chains` seed visitors per variant (about `visitors` visitors per variant), or None when
    even `tried[-1]` chains did not."""

    lift: float
    power: float
    runs: int
    chains: int | None
    visitors: int | None
    tried: tuple[tuple[int, float], ...]  # (chains per variant, share of runs that picked the better)


def power_analysis(
    baseline: VariantPlan,
    rule: DecisionRule,
    *,
    days: float,
    window: timedelta,
    seed: int,
    runs: int = 40,
    start: int = 500,
    most: int = 64_000,
    lift: float = POWER_LIFT,
    power: float = POWER_TARGET,
) -> PowerEstimate:
    """The chains per variant at which the decision rule, read once at the end, picks the variant
    with `lift` more K in at least `power` of `runs` seeded experiments: doubling from `start`
    until it does (or `most` is passed), then halving the last interval twice. Each run has its
    own seed, derived from `seed`, and grows its chains as the size doubles: the experiment at
    2n chains is the one at n, continued, and the one at 1.5n its first 1.5n chains."""
    if runs < 1 or start < 1:
        raise ValueError("the power analysis needs at least one run of at least one chain")
    better = baseline.lifted(f"{baseline.name}-lifted", lift)
    end, hours = days * 24, window / timedelta(hours=1)
    growth = [random.Random(f"{seed}:{run}") for run in range(runs)]
    grown: list[tuple[list[ChainTally], list[ChainTally]]] = [([], []) for _ in range(runs)]
    # The decision on K never reads cycle times: without them, chains repeat, and one object per
    # distinct chain keeps thousands of experiments in memory.
    interned: dict[tuple[int, ...], ChainTally] = {}

    def grow(size: int) -> None:
        for rng, lists in zip(growth, grown, strict=True):
            for variant, chain_list in zip((baseline, better), lists, strict=True):
                while len(chain_list) < size:
                    counts, _ = _grow_chain(variant, rng.random() * end * DIRECT_ARRIVALS_SHARE, end, hours, rng)
                    chain_list.append(interned.get(counts) or interned.setdefault(counts, ChainTally(*counts)))

    def picked_share(size: int) -> tuple[float, int]:
        """The share of runs whose first `size` chains per variant pick the better variant, and
        the mean visitors per variant among those chains."""
        picked = visitors = 0
        for run, (first, second) in enumerate(grown):
            evidence = Evidence(
                (
                    VariantEvidence(baseline.name, tuple(first[:size])),
                    VariantEvidence(better.name, tuple(second[:size])),
                ),
                window,
            )
            decision = decide(evidence, rule, random.Random(f"{seed}:{run}:{size}"))
            picked += decision.outcome is Outcome.WINNER and decision.winner == better.name
            visitors += sum(chain.visitors for chain in first[:size])
        return picked / runs, round(visitors / runs)

    tried: dict[int, float] = {}
    chains = start
    while chains <= most:
        grow(chains)
        tried[chains], visitors = picked_share(chains)
        if tried[chains] >= power:
            low, high = chains // 2, chains
            for _ in range(2 if chains > start else 0):
                middle = (low + high) // 2
                tried[middle], middle_visitors = picked_share(middle)
                if tried[middle] >= power:
                    high, visitors = middle, middle_visitors
                else:
                    low = middle
            return PowerEstimate(lift, power, runs, high, visitors, tuple(sorted(tried.items())))
        chains *= 2
    return PowerEstimate(lift, power, runs, None, None, tuple(sorted(tried.items())))


def run_experiment(plan: ExperimentPlan, rule: DecisionRule) -> Verdict:
    """The verdict on one simulated experiment (seeded by the plan)."""
    rng = random.Random(plan.seed)
    return judge(simulate_experiment(plan, rng), rule, rng)
