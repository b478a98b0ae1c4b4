"""A campaign's experiment as the verdict reads it: its forwards cut into chains, judged.

engine.verdict judges chains (`ChainTally`); this module makes them from what the database
holds, so that the console and the API show the verdict on the live experiment, and so that
the autopilot can steer new visitors by it.

**What a chain is here.** The unit of randomisation:
- when friends inherit their sender's variant (`inherit`), a chain is the tree of senders one
  seed visitor started, as long as its senders share the variant (a friend redrawn because
  their sender's variant was stopped starts a chain of their own);
- when every friend gets a draw of their own (`fresh`), each sender is a chain: the friends
  they reached, and which of those forwarded on (whatever variant those friends then saw), are
  what their variant made happen.

Visitors who never forwarded leave no row but a count (the variant's visitors, counted as
the landing page draws them): each is a chain of one visitor who did not send. A share link
(posted, not sent to one friend) counts one invite, accepted, per person who arrived through
it and forwarded; the others who opened it are not known apart, so they are not counted.

Everything here but `load_forwards` and the service is pure: tests give forwards and
visitor counts, and read the chains.
"""

from __future__ import annotations

import logging
import random
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.db import Database
from engine.models import Campaign, CampaignEvent, CampaignStatus, Click, Forward, Redemption
from engine.services.analytics.maturity import maturity_days
from engine.services.analytics.sql import sender_key_expression
from engine.services.analytics.variants import VISITORS, VariantVisitCounter, stored_and_waiting_visits
from engine.services.history import SYSTEM, Actor, EventAction, record_event
from engine.services.lookups import find_campaign
from engine.services.variants import MAX_WEIGHT, Inheritance
from engine.sharing import POSTER_QR_CHANNEL
from engine.verdict import (
    ChainTally,
    DecisionRule,
    Evidence,
    Metric,
    Outcome,
    VariantEvidence,
    Verdict,
    judge,
    thompson_weights,
)

log = logging.getLogger(__name__)

# The autopilot moves traffic at most once a day: a day's data is the least worth steering by,
# and the history keeps one entry a day rather than one per refresh.
AUTOPILOT_EVERY = timedelta(hours=23)
# No variant gets less than this share of new visitors from the autopilot: a variant starved of
# traffic could never recover from an unlucky start.
AUTOPILOT_FLOOR = 0.05
AUTOPILOT_REASON = "autopilot: traffic follows each variant's chance of being best (Thompson sampling)"


@dataclass(frozen=True, slots=True)
class SentForward:
    """One forward as the chains read it. `sender`: who sent it (the analytics' sender key);
    `invite`: sent to one friend by the server (not a posted share link)."""

    id: int
    parent_id: int | None
    variant_id: int | None
    sender: str
    invite: bool
    at: datetime
    clicked_at: datetime | None = None
    converted: bool = False


@dataclass(eq=False)  # one object per sender: chains are keyed by their root's identity
class _Sender:
    key: str
    variant_id: int
    first_at: datetime
    arrival_id: int | None  # the forward they came through (their first forward's parent)
    forwards: list[SentForward] = field(default_factory=list)
    recruiter: str | None = None
    children: list[_Sender] = field(default_factory=list)


def window_of(forwards: Sequence[SentForward]) -> timedelta:
    """The maturity window: a few median cycle times (forward to the friend's own forward), in
    whole days, as the dashboard's K (engine.services.analytics.maturity)."""
    by_id = {f.id: f for f in forwards}
    first: dict[str, SentForward] = {}
    for forward in forwards:
        first.setdefault(forward.sender, forward)
    cycles = [
        (f.at - by_id[f.parent_id].at).total_seconds()
        for f in first.values()
        if f.parent_id is not None and f.parent_id in by_id
    ]
    return timedelta(days=maturity_days(statistics.median(cycles) if cycles else None))


def chain_evidence(
    forwards: Sequence[SentForward],
    variant_keys: Mapping[int, str],
    visitors: Mapping[str, int],
    inheritance: str,
    now: datetime,
    window: timedelta,
) -> Evidence:
    """Every variant's chains, read at `now`. `forwards` in the order they were made (the
    campaign's, with or without a variant: those without one, made before the experiment,
    belong to no chain); `variant_keys` the campaign's variants (id -> key, two or more);
    `visitors` the visitors each variant was shown to (by key)."""
    senders = _senders(forwards, variant_keys)
    mature_at = now - window
    tallies: dict[str, list[ChainTally]] = {key: [] for key in variant_keys.values()}
    for root, members in _chains(senders, inheritance).items():
        tallies[variant_keys[root.variant_id]].append(_tally(members, mature_at, window, inheritance))
    alone = ChainTally(visitors=1, senders=0, invites=0, clicks=0, conversions=0)
    for key, chains in tallies.items():
        # A visitor who did not forward is a chain of one (counted, not stored one by one).
        chains.extend([alone] * max(0, visitors.get(key, 0) - sum(c.visitors for c in chains)))
    return Evidence(tuple(VariantEvidence(key, tuple(chains)) for key, chains in tallies.items()), window)


def _senders(forwards: Sequence[SentForward], variant_keys: Mapping[int, str]) -> dict[str, _Sender]:
    """The senders of the experiment (of forwards with a variant), each with their forwards, who
    recruited them and whom they recruited."""
    senders: dict[str, _Sender] = {}
    sender_of: dict[int, str] = {}
    for forward in forwards:
        sender_of[forward.id] = forward.sender
        if forward.variant_id is None or forward.variant_id not in variant_keys:
            continue
        found = senders.get(forward.sender)
        if found is None:
            found = senders[forward.sender] = _Sender(forward.sender, forward.variant_id, forward.at, forward.parent_id)
        found.forwards.append(forward)
    for sender in senders.values():
        recruiter = senders.get(sender_of.get(sender.arrival_id, "")) if sender.arrival_id is not None else None
        if recruiter is not None and recruiter is not sender:
            sender.recruiter = recruiter.key
            recruiter.children.append(sender)
    return senders


def _chains(senders: Mapping[str, _Sender], inheritance: str) -> dict[_Sender, list[_Sender]]:
    """Each chain's root and its senders (the root first)."""
    roots: dict[str, _Sender] = {}

    def root_of(sender: _Sender) -> _Sender:
        path = []
        current = sender
        while current.key not in roots:
            recruiter = senders.get(current.recruiter) if current.recruiter else None
            if inheritance != Inheritance.INHERIT or recruiter is None or recruiter.variant_id != current.variant_id:
                roots[current.key] = current
                break
            path.append(current)
            current = recruiter
        found = roots[current.key]
        for visited in path:
            roots[visited.key] = found
        return found

    chains: dict[_Sender, list[_Sender]] = {}
    for sender in senders.values():
        chains.setdefault(root_of(sender), []).append(sender)
    return chains


def _tally(members: Sequence[_Sender], mature_at: datetime, window: timedelta, inheritance: str) -> ChainTally:
    invites = clicks = conversions = mature_senders = recruits = 0
    cycles: list[float] = []
    for sender in members:
        mature_senders += sender.first_at <= mature_at
        # People who forwarded through each of this sender's forwards.
        arrived_through = Counter(child.arrival_id for child in sender.children)
        for forward in sender.forwards:
            if forward.invite:
                invites += 1
                # A friend who forwarded through it, or redeemed its code, followed the link.
                clicked = forward.clicked_at is not None or forward.converted or forward.id in arrived_through
                clicks += clicked
                conversions += forward.converted
            else:
                # A posted share link: one accepted invite per person who forwarded through it.
                invites += arrived_through[forward.id]
                clicks += arrived_through[forward.id]
        by_id = {f.id: f for f in sender.forwards}
        for child in sender.children:
            invite = by_id.get(child.arrival_id) if child.arrival_id is not None else None
            if invite is None or invite.at > mature_at or child.first_at - invite.at > window:
                continue
            recruits += 1
            if invite.invite and invite.clicked_at is not None:
                cycles.append(max(0.0, (child.first_at - invite.clicked_at).total_seconds() / 3600))
    # A chain that inherits holds its own recruits; a sender alone (fresh draws) only themself.
    visitors = 1 + clicks if inheritance == Inheritance.INHERIT else 1
    return ChainTally(
        visitors=visitors,
        senders=len(members),
        invites=invites,
        clicks=clicks,
        conversions=conversions,
        mature_senders=mature_senders,
        mature_recruits=recruits,
        cycle_hours=tuple(cycles),
    )


# -- read from the database ----------------------------------------------------------------------


def load_forwards(session: Session, campaign_id: int) -> list[SentForward]:
    """The campaign's forwards in the order they were made, with their first click (people's,
    not link previews') and whether their code was redeemed: three queries."""
    first_clicks = dict(
        session.execute(
            select(Click.forward_id, func.min(Click.created_at))
            .join(Forward, Forward.id == Click.forward_id)
            .where(Forward.campaign_id == campaign_id, Click.prefetch.is_(False))
            .group_by(Click.forward_id)
        ).all()
    )
    converted = set(
        session.scalars(
            select(Redemption.forward_id).where(
                Redemption.campaign_id == campaign_id, Redemption.forward_id.is_not(None)
            )
        ).all()
    )
    rows = session.execute(
        select(
            Forward.id,
            Forward.parent_id,
            Forward.variant_id,
            sender_key_expression(),
            Forward.channel,
            Forward.created_at,
        )
        .where(Forward.campaign_id == campaign_id)
        .order_by(Forward.created_at, Forward.id)
    ).all()
    return [
        SentForward(
            id=row[0],
            parent_id=row[1],
            variant_id=row[2],
            sender=row[3],
            invite=not (row[4].startswith("share-") or row[4] == POSTER_QR_CHANNEL),
            at=row[5],
            clicked_at=first_clicks.get(row[0]),
            converted=row[0] in converted,
        )
        for row in rows
    ]


@dataclass(frozen=True)
class ExperimentVerdict:
    """The verdict on a campaign's live experiment. `names`: variant key -> name (the verdict
    names variants by key); `traffic`: the share of new visitors each variant taking visitors
    would get from the autopilot next (Thompson sampling), by key."""

    verdict: Verdict
    names: dict[str, str]
    inheritance: str
    autopilot: bool
    traffic: dict[str, float]

    @property
    def metric(self) -> Metric:
        return self.verdict.rule.metric

    @property
    def window_days(self) -> int:
        return self.verdict.window.days


def metric_of(campaign: Campaign) -> Metric:
    try:
        return Metric(campaign.variant_metric)
    except ValueError:
        return Metric.K


# A verdict read from the data stays this long in a process's cache, unless forwards or visitors
# came since: clicks and redemptions alone show within this time. (Reading every forward of a
# campaign of 100,000 forwards and cutting its chains takes a second or two.)
VERDICT_KEPT = timedelta(minutes=10)


class VerdictCache:
    """The last verdict of each campaign, with what it was read from (one per process)."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._kept: dict[int, tuple[tuple[object, ...], datetime, Verdict]] = {}

    def get(self, campaign_id: int, key: tuple[object, ...], now: datetime) -> Verdict | None:
        found = self._kept.get(campaign_id)
        if found is None or found[0] != key or not found[1] <= now < found[1] + VERDICT_KEPT:
            return None
        return found[2]

    def put(self, campaign_id: int, key: tuple[object, ...], now: datetime, verdict: Verdict) -> None:
        if len(self._kept) >= self._size and campaign_id not in self._kept:
            self._kept.pop(next(iter(self._kept)))
        self._kept[campaign_id] = (key, now, verdict)


def experiment_verdict(
    db: Database,
    slug: str,
    now: datetime,
    *,
    visits: VariantVisitCounter | None,
    rule: DecisionRule | None = None,
    cache: VerdictCache | None = None,
) -> ExperimentVerdict | None:
    """The verdict on the campaign's experiment as it stands (None: fewer than two variants).
    Reproducible: the random source is seeded by what the data holds, so the same data gives
    the same verdict however often the page is read. With `cache`, a verdict read less than
    VERDICT_KEPT ago on as many forwards and visitors is given again. Raises CampaignNotFound."""
    with db.reading() as session:
        campaign = find_campaign(session, slug)
        if len(campaign.variants) < 2:
            return None
        variant_keys = {v.id: v.key for v in campaign.variants}
        names = {v.key: v.name for v in campaign.variants}
        taking = [v.key for v in campaign.variants if not v.stopped and v.weight > 0]
        inheritance, autopilot, campaign_id = campaign.variant_inheritance, campaign.variant_autopilot, campaign.id
        decision_rule = rule or DecisionRule(metric=metric_of(campaign))
    counted = stored_and_waiting_visits(db, campaign_id, visits)
    visitors = {key: count for (key, kind), count in counted.items() if kind == VISITORS}
    with db.reading() as session:
        made = session.execute(
            select(func.count(Forward.id), func.max(Forward.id)).where(Forward.campaign_id == campaign_id)
        ).one()
        key = (tuple(made), tuple(sorted(visitors.items())), tuple(sorted(variant_keys)), inheritance, decision_rule)
        verdict = cache.get(campaign_id, key, now) if cache is not None else None
        if verdict is None:
            forwards = load_forwards(session, campaign_id)
    if verdict is None:
        window = window_of(forwards)
        evidence = chain_evidence(forwards, variant_keys, visitors, inheritance, now, window)
        seed = f"{campaign_id}:{len(forwards)}:{sum(visitors.values())}:{decision_rule.metric}"
        verdict = judge(evidence, decision_rule, random.Random(seed))
        if cache is not None:
            cache.put(campaign_id, key, now, verdict)
    return ExperimentVerdict(verdict, names, inheritance, autopilot, _traffic(verdict, taking))


def _traffic(verdict: Verdict, taking: Sequence[str]) -> dict[str, float]:
    """Thompson sampling's shares, among the variants that take visitors (a stopped one takes none)."""
    if not taking:
        return {}
    weights = thompson_weights(verdict, floor=min(AUTOPILOT_FLOOR, 1 / len(verdict.summaries)))
    total = sum(weights[key] for key in taking)
    return {key: weights[key] / total for key in taking}


def autopilot_weights(traffic: Mapping[str, float]) -> dict[str, int]:
    """Shares of traffic as the whole-number weights a variant stores (1 to MAX_WEIGHT)."""
    return {key: max(1, min(MAX_WEIGHT, round(share * MAX_WEIGHT))) for key, share in traffic.items()}


class ExperimentAutopilot:
    """Shifts new visitors towards the variants likelier to be best, once a day, in campaigns
    that asked for it. Nothing moves until every variant has the minimum sample (the verdict
    says `not enough data` until then): early posteriors are too noisy to steer by."""

    def __init__(
        self, db: Database, clock: Clock, visits: VariantVisitCounter | None, cache: VerdictCache | None = None
    ) -> None:
        self._db = db
        self._clock = clock
        self._visits = visits
        self._cache = cache

    def steer_all(self) -> list[str]:
        """Steer every active campaign with the autopilot on (a paused one has no visitors to
        steer, and its data stands still); the slugs whose weights moved."""
        with self._db.reading() as session:
            slugs = session.scalars(
                select(Campaign.slug).where(
                    Campaign.variant_autopilot.is_(True),
                    Campaign.status == CampaignStatus.ACTIVE,
                    Campaign.archived_at.is_(None),
                )
            ).all()
        moved = []
        for slug in slugs:
            try:
                if self.steer(slug):
                    moved.append(slug)
            except Exception:
                # One campaign's failure must not stop the others': logged, tried again next pass.
                log.exception("autopilot of campaign %s failed", slug)
        return moved

    def steer(self, slug: str) -> bool:
        """Set the weights of the campaign's variants from the verdict; whether they changed."""
        now = self._clock.now()
        found = experiment_verdict(self._db, slug, now, visits=self._visits, cache=self._cache)
        if found is None or not found.autopilot or found.verdict.outcome is Outcome.NOT_ENOUGH_DATA:
            return False
        weights = autopilot_weights(found.traffic)
        with self._db.transaction() as session:
            campaign = find_campaign(session, slug, for_update=True)
            if not campaign.variant_autopilot or _steered_since(session, campaign.id, now - AUTOPILOT_EVERY):
                return False
            changes: dict[str, list[object]] = {}
            for variant in campaign.variants:
                wanted = weights.get(variant.key)
                if wanted is not None and not variant.stopped and variant.weight != wanted:
                    changes[f"variant {variant.key}: weight"] = [variant.weight, wanted]
                    variant.weight = wanted
            if not changes:
                return False
            record_event(session, campaign.id, SYSTEM, EventAction.VARIANTS, changes, AUTOPILOT_REASON, at=now)
        log.info("campaign %s: the autopilot set the variants' weights to %s", slug, weights)
        return True


class ExperimentRefused(Exception):
    """The settings break a rule; `errors` maps form fields to messages (nothing was stored)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(m for messages in errors.values() for m in messages))
        self.errors = errors


def set_experiment(db: Database, slug: str, metric: str, autopilot: bool, actor: Actor) -> None:
    """What the verdict compares the variants on, and whether the autopilot steers new visitors
    by it; each change in the history. Raises ExperimentRefused, CampaignNotFound."""
    try:
        chosen = Metric(metric)
    except ValueError:
        raise ExperimentRefused({"metric": [_("Choose what the variants are compared on.")]}) from None
    with db.transaction() as session:
        campaign = find_campaign(session, slug, for_update=True)
        changes: dict[str, list[object]] = {}
        if campaign.variant_metric != chosen.value:
            changes["variant_metric"] = [campaign.variant_metric, chosen.value]
            campaign.variant_metric = chosen.value
        if campaign.variant_autopilot != autopilot:
            changes["variant_autopilot"] = [campaign.variant_autopilot, autopilot]
            campaign.variant_autopilot = autopilot
        if changes:
            record_event(session, campaign.id, actor, EventAction.VARIANTS, changes)


def _steered_since(session: Session, campaign_id: int, since: datetime) -> bool:
    return (
        session.scalar(
            select(CampaignEvent.id)
            .where(
                CampaignEvent.campaign_id == campaign_id,
                CampaignEvent.reason == AUTOPILOT_REASON,
                CampaignEvent.at > since,
            )
            .limit(1)
        )
        is not None
    )
