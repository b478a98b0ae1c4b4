"""The dashboard's read queries: a campaign's figures (slices, reach over time, the top
ambassadors and chains, the projection), read from the roll-ups, which are refreshed first
when they are missing, or stale and quick to redo. A chain's tree has a page of its own
(`branches`), read only when it is opened."""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.caps import CapSettings
from engine.db import Database
from engine.models import (
    AmbassadorStats,
    Campaign,
    DailyForwards,
    Forward,
    ForwardReach,
    ForwardStats,
    MetricCell,
    RollupState,
    VideoPlay,
    Visit,
)
from engine.services.analytics.figures import (
    ALL_CHANNELS,
    ALL_GENERATIONS,
    COUNT_COLUMNS,
    DIRECT,
    Ambassador,
    CampaignMetrics,
    Chain,
    DayPoint,
    SliceMetrics,
)
from engine.services.analytics.formulas import Projection, message_ceiling, project_reach
from engine.services.analytics.maturity import MatureK, mature_before, mature_k, maturity_days
from engine.services.analytics.revenue import campaign_revenue
from engine.services.analytics.rollups import refresh_rollups
from engine.services.analytics.sql import find_campaign_id
from engine.services.analytics.visits import VisitCounter, fold_visits

# Roll-ups older than this are recomputed when a dashboard is read, if the campaign is small
# enough for that to be quick; larger campaigns are refreshed by `flask analytics refresh`.
STALE_AFTER = timedelta(seconds=15)
REFRESH_ON_READ_UP_TO = 50_000  # forwards

# The projection's horizon for a campaign without an end date.
DEFAULT_HORIZON_DAYS = 30.0

TOP_AMBASSADORS = 20
TOP_CHAINS = 10


def campaign_metrics(
    db: Database,
    slug: str,
    now: datetime,
    *,
    visits: VisitCounter | None = None,
    plays: VisitCounter | None = None,
    since: date | None = None,
    until: date | None = None,
) -> CampaignMetrics:
    """The dashboard's figures as of `now` (the app's clock's). Roll-ups that are missing, or
    stale and quick to redo, are refreshed first, and a small campaign's landing views waiting
    in Redis (`visits`, and its video's `plays`) are folded in at every read; a large campaign's
    are read as its last refresh left them. `since` and `until` (days, both included) narrow
    reach over time and the mature cohorts' K to the forwards of those days."""
    campaign_id = ensure_fresh(db, slug, now, visits=visits, plays=plays)
    with db.reading() as session:
        campaign = session.get(Campaign, campaign_id)
        state = session.get(RollupState, campaign_id)
        assert campaign is not None and state is not None
        overall, generations, channels = _slices(session, campaign_id)
        return CampaignMetrics(
            slug=campaign.slug,
            name=campaign.name,
            as_of=now,
            refreshed_at=state.refreshed_at,
            overall=overall,
            generations=generations,
            channels=channels,
            reach_over_time=_reach_over_time(session, campaign_id, since, until),
            ambassadors_by_reach=_ambassadors(session, campaign_id, AmbassadorStats.reach),
            ambassadors_by_conversions=_ambassadors(session, campaign_id, AmbassadorStats.conversions),
            chains=_chains(session, campaign_id),
            projection=_projection(session, campaign, overall, now),
            revenue=campaign_revenue(session, campaign_id),
            mature=_mature(session, state, now, overall.cycle_time_seconds, since, until),
        )


# K on mature forwards is a sum over `daily_cohorts`, a few rows. Over a date range that starts
# on a given day it scans the campaign's `forward_stats` rows of those days (a second or more
# at a million forwards), yet changes only when the roll-ups do, or when another day's forwards
# come of age: a large campaign's (one not refreshed on read) is then kept per worker by
# (database, campaign, refresh, first day not yet mature, range), the latest few.
_MATURE_KEPT = 64
_mature_kept: OrderedDict[tuple[object, ...], MatureK] = OrderedDict()
_mature_lock = threading.Lock()


def _mature(
    session: Session,
    state: RollupState,
    now: datetime,
    cycle_seconds: float | None,
    since: date | None,
    until: date | None,
) -> MatureK:
    campaign_id = state.campaign_id
    if since is None or state.forwards <= REFRESH_ON_READ_UP_TO:
        return mature_k(session, campaign_id, now, cycle_seconds, since=since, until=until)
    database = str(session.get_bind().engine.url)
    before = mature_before(now, maturity_days(cycle_seconds))
    key = (database, campaign_id, state.refreshed_at, state.forwards, before, since, until)
    with _mature_lock:
        if key in _mature_kept:
            _mature_kept.move_to_end(key)
            return _mature_kept[key]
    found = mature_k(session, campaign_id, now, cycle_seconds, since=since, until=until)
    with _mature_lock:
        _mature_kept[key] = found
        while len(_mature_kept) > _MATURE_KEPT:
            _mature_kept.popitem(last=False)
    return found


def ensure_fresh(
    db: Database, slug: str, now: datetime, *, visits: VisitCounter | None = None, plays: VisitCounter | None = None
) -> int:
    """Refresh the campaign's roll-ups when they are missing, or stale and quick to redo (and
    fold a small campaign's waiting views in). Returns the campaign's id."""
    with db.reading() as session:
        campaign_id = find_campaign_id(session, slug)
        state = session.get(RollupState, campaign_id)
    small = state is None or state.forwards <= REFRESH_ON_READ_UP_TO
    if state is None or (small and now - state.refreshed_at > STALE_AFTER):
        refresh_rollups(db, slug, now, visits=visits, plays=plays)
    elif small:
        if visits is not None:
            fold_visits(db, visits, slug, now.date())
        if plays is not None:
            fold_visits(db, plays, slug, now.date(), VideoPlay)
    return campaign_id


def _visits(
    session: Session, campaign_id: int, table: type[Visit | VideoPlay] = Visit
) -> tuple[dict[int, int], dict[str, int]]:
    by_generation: dict[int, int] = {}
    by_channel: dict[str, int] = {}
    rows = session.execute(
        select(table.generation, table.channel, func.sum(table.count))
        .where(table.campaign_id == campaign_id)
        .group_by(table.generation, table.channel)
    )
    for generation, channel, count in rows:
        by_generation[generation] = by_generation.get(generation, 0) + int(count)
        by_channel[channel] = by_channel.get(channel, 0) + int(count)
    return by_generation, by_channel


def _slices(session: Session, campaign_id: int) -> tuple[SliceMetrics, list[SliceMetrics], list[SliceMetrics]]:
    visits_by_generation, visits_by_channel = _visits(session, campaign_id)
    plays_by_generation, plays_by_channel = _visits(session, campaign_id, VideoPlay)
    cells = {
        (c.generation, c.channel): c
        for c in session.scalars(select(MetricCell).where(MetricCell.campaign_id == campaign_id))
    }
    overall = _slice(
        cells.get((ALL_GENERATIONS, ALL_CHANNELS)),
        None,
        None,
        sum(visits_by_generation.values()),
        sum(plays_by_generation.values()),
    )
    generation_numbers = sorted(
        {g for g, c in cells if g != ALL_GENERATIONS and c == ALL_CHANNELS} | set(visits_by_generation)
    )
    generations = [
        _slice(cells.get((g, ALL_CHANNELS)), g, None, visits_by_generation.get(g, 0), plays_by_generation.get(g, 0))
        for g in generation_numbers
    ]
    channel_names = sorted(
        {c for g, c in cells if g == ALL_GENERATIONS and c != ALL_CHANNELS} | set(visits_by_channel),
        key=lambda name: (name == DIRECT, name),
    )
    channels = [
        _slice(cells.get((ALL_GENERATIONS, c)), None, c, visits_by_channel.get(c, 0), plays_by_channel.get(c, 0))
        for c in channel_names
    ]
    return overall, generations, channels


def _slice(
    cell: MetricCell | None, generation: int | None, channel: str | None, visitors: int, plays: int = 0
) -> SliceMetrics:
    figures = {name: getattr(cell, name) if cell else 0 for name in COUNT_COLUMNS}
    return SliceMetrics(
        generation=generation,
        channel=channel,
        visitors=visitors,
        plays=plays,
        cycle_time_seconds=cell.cycle_median_seconds if cell else None,
        **figures,
    )


def _reach_over_time(
    session: Session, campaign_id: int, since: date | None = None, until: date | None = None
) -> list[DayPoint]:
    # The running totals start at the first day read: within a range, reach since its start.
    conditions = [DailyForwards.campaign_id == campaign_id]
    if since is not None:
        conditions.append(DailyForwards.day >= since)
    if until is not None:
        conditions.append(DailyForwards.day <= until)
    rows = session.execute(
        select(DailyForwards.day, DailyForwards.generation, DailyForwards.forwards)
        .where(*conditions)
        .order_by(DailyForwards.generation, DailyForwards.day)
    )
    running: dict[int, int] = defaultdict(int)
    points = []
    for day, generation, forwards in rows:
        running[generation] += forwards
        points.append(DayPoint(day, generation, forwards, running[generation]))
    return sorted(points, key=lambda p: (p.day, p.generation))


def _ambassadors(session: Session, campaign_id: int, order: Any) -> list[Ambassador]:
    rows = list(
        session.scalars(
            select(AmbassadorStats)
            .where(AmbassadorStats.campaign_id == campaign_id)
            .order_by(order.desc(), AmbassadorStats.sender_key)
            .limit(TOP_AMBASSADORS)
        )
    )
    largest = _largest_forwards(session, campaign_id, [a.sender_key for a in rows])
    return [
        Ambassador(a.sender_name, a.generation, a.forwards, a.reach, a.conversions, largest.get(a.sender_key))
        for a in rows
    ]


def _largest_forwards(session: Session, campaign_id: int, sender_keys: list[str]) -> dict[str, str]:
    """Each sender's forward with the most forwards below it (its public id), in one query: where
    their tree starts. The sender key stays here; no page shows it."""
    if not sender_keys:
        return {}
    s = ForwardStats.__table__.c
    r = ForwardReach.__table__.c
    rank = func.row_number().over(partition_by=s.sender_key, order_by=(r.descendants.desc(), s.forward_id))
    ranked = (
        select(s.sender_key, Forward.public_id, rank.label("rank"))
        .join(ForwardReach, r.forward_id == s.forward_id)
        .join(Forward, Forward.id == s.forward_id)
        .where(s.campaign_id == campaign_id, s.sender_key.in_(sender_keys))
        .subquery()
    )
    rows = session.execute(select(ranked.c.sender_key, ranked.c.public_id).where(ranked.c.rank == 1))
    return {key: public_id for key, public_id in rows}


def _chains(session: Session, campaign_id: int) -> list[Chain]:
    s = ForwardStats.__table__.c
    r = ForwardReach.__table__.c
    # The largest chains through `forward_reach`'s index on (campaign, generation, descendants).
    roots = session.execute(
        select(s.forward_id, Forward.public_id, s.sender_name, r.descendants, r.height, s.conversions)
        .add_columns(r.downstream_conversions)
        .select_from(ForwardReach)
        .join(ForwardStats, s.forward_id == r.forward_id)
        .join(Forward, Forward.id == r.forward_id)
        .where(r.campaign_id == campaign_id, r.generation == 1)
        .order_by(r.descendants.desc(), r.forward_id)
        .limit(TOP_CHAINS)
    ).all()
    if not roots:
        return []
    widths: dict[int, int] = defaultdict(int)
    levels = session.execute(
        select(s.root_id, s.generation, func.count())
        .where(s.root_id.in_([r.forward_id for r in roots]))
        .group_by(s.root_id, s.generation)
    )
    for root_id, _generation, count in levels:
        widths[root_id] = max(widths[root_id], int(count))
    return [
        Chain(
            root=row.public_id,
            sender_name=row.sender_name,
            size=1 + row.descendants,
            depth=1 + row.height,
            breadth=widths[row.forward_id],
            conversions=row.conversions + row.downstream_conversions,
        )
        for row in roots
    ]


def _projection(session: Session, campaign: Campaign, overall: SliceMetrics, now: datetime) -> Projection | None:
    k = overall.k
    cycle = overall.cycle_time_seconds
    if k is None or not cycle:
        return None
    cycle_days = cycle / 86400
    if campaign.ends_at is not None:
        horizon_days = max(0.0, (campaign.ends_at - now).total_seconds() / 86400)
    else:
        horizon_days = DEFAULT_HORIZON_DAYS
    # The current wave: invitations of the last cycle, whose friends may still forward them.
    wave = (
        session.scalar(
            select(func.count())
            .select_from(Forward)
            .where(Forward.campaign_id == campaign.id, Forward.created_at >= now - timedelta(seconds=cycle))
        )
        or 0
    )
    ceiling = message_ceiling(CapSettings.from_overrides(campaign.caps), horizon_days, overall.invites)
    return project_reach(
        current=overall.invites, wave=wave, k=k, cycle_days=cycle_days, horizon_days=horizon_days, ceiling=ceiling
    )
