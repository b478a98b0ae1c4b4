"""The roll-ups: every figure of a campaign that is expensive to count, recomputed from its
forwards, clicks, messages and redemptions into small tables (engine.models.analytics) that
the dashboard reads.

A refresh is a full recomputation in one transaction, not an incremental one: clicks,
deliveries and redemptions change forwards long after they were made, and one recomputation
from the base tables cannot drift from them (docs/analytics.md, *How it scales*).
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, and_, case, delete, func, insert, literal, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import CTE

from engine.db import Database
from engine.models import (
    AmbassadorStats,
    Click,
    DailyForwards,
    Forward,
    ForwardStats,
    Message,
    MessageStatus,
    MetricCell,
    Redemption,
    RollupState,
)
from engine.services.analytics.figures import ALL_CHANNELS, ALL_GENERATIONS, COUNT_COLUMNS, DIRECT
from engine.services.analytics.sql import (
    dialect,
    find_campaign_id,
    lock_campaign,
    seconds_between,
    sender_key_expression,
    utc_day,
)
from engine.services.analytics.visits import VisitCounter, add_visits, visits_taken

log = logging.getLogger(__name__)

# A message counts as delivered once a provider accepted it and has not reported it lost:
# SMTP and the outbox never confirm delivery, so counting only `delivered` would show 0 there.
DELIVERED_STATUSES = (MessageStatus.SENT.value, MessageStatus.DELIVERED.value)


@dataclass(frozen=True)
class RefreshReport:
    slug: str
    forwards: int
    seconds: float


def refresh_rollups(db: Database, slug: str, now: datetime, *, visits: VisitCounter | None = None) -> RefreshReport:
    """Recompute every roll-up of the campaign from its forwards, clicks, messages and
    redemptions, in one transaction: readers see the old figures until it commits. With a
    `VisitCounter`, the landing views counted in Redis are folded into `visits` in it too.
    `now` is the app's clock's: the refresh's time, which staleness is judged by, and the day
    the views are folded around."""
    started = time.perf_counter()
    with db.reading() as session:
        campaign_id = find_campaign_id(session, slug)
    with visits_taken(visits, campaign_id, now.date()) as counted, db.transaction() as session:
        lock_campaign(session, campaign_id)
        add_visits(session, campaign_id, counted)
        for table in (ForwardStats, AmbassadorStats, MetricCell, DailyForwards, RollupState):
            session.execute(delete(table).where(table.campaign_id == campaign_id))
        forwards = _insert_forward_stats(session, campaign_id)
        _add_downstream_figures(session, campaign_id)
        _insert_metric_cells(session, campaign_id)
        _insert_daily_forwards(session, campaign_id)
        _insert_ambassadors(session, campaign_id)
        seconds = time.perf_counter() - started
        session.add(
            RollupState(
                campaign_id=campaign_id,
                refreshed_at=now,
                forwards=forwards,
                duration_ms=round(seconds * 1000),
            )
        )
    log.info("analytics of %s refreshed: %d forwards in %.2f s", slug, forwards, seconds)
    return RefreshReport(slug, forwards, time.perf_counter() - started)


def _spread_tree(campaign_id: int) -> CTE:
    """Every forward of the campaign with the generation-1 forward its chain started from and
    the channel its sender came through: a walk down from the roots (a recursive CTE)."""
    f = Forward.__table__.alias("f")
    roots = select(
        f.c.id.label("id"),
        f.c.id.label("root_id"),
        f.c.channel.label("channel"),
        literal(DIRECT, String).label("arrival_channel"),
    ).where(f.c.campaign_id == campaign_id, f.c.parent_id.is_(None))
    tree = roots.cte("spread", recursive=True)
    child = Forward.__table__.alias("child")
    return tree.union_all(
        select(child.c.id, tree.c.root_id, child.c.channel, tree.c.channel).where(child.c.parent_id == tree.c.id)
    )


def _insert_forward_stats(session: Session, campaign_id: int) -> int:
    f = Forward.__table__
    person = Click.prefetch.is_(False)
    clicks = (
        select(
            Click.forward_id,
            func.count().filter(person).label("n"),
            func.count().filter(Click.prefetch).label("prefetches"),
            # The cycle starts at a person's first click, not at a preview's fetch.
            func.min(Click.created_at).filter(person).label("first"),
        )
        .join(Forward, Forward.id == Click.forward_id)
        .where(Forward.campaign_id == campaign_id)
        .group_by(Click.forward_id)
        .subquery("click_counts")
    )
    children = (
        select(Forward.parent_id, func.count().label("n"), func.min(Forward.created_at).label("first"))
        .where(Forward.campaign_id == campaign_id, Forward.parent_id.is_not(None))
        .group_by(Forward.parent_id)
        .subquery("child_counts")
    )
    delivered = (
        select(Message.forward_id, func.count().label("n"))
        .join(Forward, Forward.id == Message.forward_id)
        .where(Forward.campaign_id == campaign_id, Message.status.in_(DELIVERED_STATUSES))
        .group_by(Message.forward_id)
        .subquery("delivered_counts")
    )
    conversions = (
        select(Redemption.forward_id, func.count().label("n"))
        .where(Redemption.campaign_id == campaign_id, Redemption.forward_id.is_not(None))
        .group_by(Redemption.forward_id)
        .subquery("conversion_counts")
    )
    tree = _spread_tree(campaign_id)
    cycle = seconds_between(session, children.c.first, clicks.c.first)
    rows = (
        select(
            f.c.id,
            f.c.campaign_id,
            f.c.parent_id,
            tree.c.root_id,
            f.c.generation,
            f.c.channel,
            tree.c.arrival_channel,
            sender_key_expression(f.c),
            f.c.sender_name,
            utc_day(session, f.c.created_at),
            func.coalesce(delivered.c.n, 0),
            func.coalesce(clicks.c.n, 0),
            func.coalesce(clicks.c.prefetches, 0),
            func.coalesce(children.c.n, 0),
            # A forward made before its click (a link opened in another browser) is a cycle of 0.
            case((cycle < 0, 0.0), else_=cycle),
            func.coalesce(conversions.c.n, 0),
            literal(0, Integer),
            literal(0, Integer),
            literal(0, Integer),
        )
        .select_from(f)
        .join(tree, tree.c.id == f.c.id)
        .outerjoin(clicks, clicks.c.forward_id == f.c.id)
        .outerjoin(children, children.c.parent_id == f.c.id)
        .outerjoin(delivered, delivered.c.forward_id == f.c.id)
        .outerjoin(conversions, conversions.c.forward_id == f.c.id)
        .where(f.c.campaign_id == campaign_id)
    )
    s = ForwardStats.__table__.c
    columns = [
        s.forward_id,
        s.campaign_id,
        s.parent_id,
        s.root_id,
        s.generation,
        s.channel,
        s.arrival_channel,
        s.sender_key,
        s.sender_name,
        s.day,
        s.delivered,
        s.clicks,
        s.prefetches,
        s.children,
        s.cycle_seconds,
        s.conversions,
        s.descendants,
        s.downstream_conversions,
        s.height,
    ]
    session.execute(insert(ForwardStats.__table__).from_select(columns, rows))
    return session.scalar(select(func.count()).select_from(ForwardStats).where(s.campaign_id == campaign_id)) or 0


def _add_downstream_figures(session: Session, campaign_id: int) -> None:
    """Descendants, conversions below and height of every forward, one generation at a time
    from the deepest up: each forward's figures are its children's, so every row is read once
    as a child and written once as a parent (O(forwards), where a recursive CTE per forward
    would walk each chain once per ancestor)."""
    s = ForwardStats.__table__.c
    deepest = session.scalar(select(func.max(s.generation)).where(s.campaign_id == campaign_id)) or 0
    for generation in range(deepest, 1, -1):
        below = (
            select(
                s.parent_id.label("parent_id"),
                (func.count() + func.sum(s.descendants)).label("descendants"),
                func.sum(s.conversions + s.downstream_conversions).label("conversions"),
                (func.max(s.height) + 1).label("height"),
            )
            .where(s.campaign_id == campaign_id, s.generation == generation)
            .group_by(s.parent_id)
            .subquery("below")
        )
        session.execute(
            update(ForwardStats.__table__)
            .where(s.forward_id == below.c.parent_id)
            .values(
                descendants=below.c.descendants,
                downstream_conversions=below.c.conversions,
                height=below.c.height,
            )
        )


def _cell_figures(s: Any) -> list[Any]:
    return [
        func.count().label("invites"),
        func.count(s.sender_key.distinct()).label("senders"),
        func.sum(case((s.children > 0, 1), else_=0)).label("became_senders"),
        func.sum(case((s.delivered > 0, 1), else_=0)).label("delivered"),
        func.sum(case((s.clicks > 0, 1), else_=0)).label("clicked"),
        func.sum(s.clicks).label("clicks"),
        func.sum(s.prefetches).label("prefetches"),
        func.sum(s.conversions).label("conversions"),
    ]


def _insert_metric_cells(session: Session, campaign_id: int) -> None:
    s = ForwardStats.__table__.c
    mine = s.campaign_id == campaign_id
    cells: dict[tuple[int, str], dict[str, Any]] = {}

    def collect(key_columns: Sequence[Any], keys: tuple[str, str]) -> None:
        query = select(*key_columns, *_cell_figures(s)).where(mine)
        for row in session.execute(query.group_by(*key_columns) if key_columns else query).mappings():
            if row["invites"] == 0:
                continue
            key = (
                row[keys[0]] if keys[0] in row else ALL_GENERATIONS,
                row[keys[1]] if keys[1] in row else ALL_CHANNELS,
            )
            cells[key] = {name: int(row[name] or 0) for name in COUNT_COLUMNS}

    collect([s.generation], ("generation", ""))
    collect([s.channel], ("", "channel"))
    collect([], ("", ""))
    # Per channel, senders are counted by the channel that brought them (their visits too).
    for (generation, channel), cell in cells.items():
        if generation == ALL_GENERATIONS and channel != ALL_CHANNELS:
            cell["senders"] = 0
    arrivals = session.execute(
        select(s.arrival_channel, func.count(s.sender_key.distinct())).where(mine).group_by(s.arrival_channel)
    )
    for channel, senders in arrivals:
        cell = cells.setdefault((ALL_GENERATIONS, channel), dict.fromkeys(COUNT_COLUMNS, 0))
        cell["senders"] = int(senders)
    if not cells:
        return
    medians = _cycle_medians(session, campaign_id)
    session.execute(
        insert(MetricCell.__table__),
        [
            {
                "campaign_id": campaign_id,
                "generation": generation,
                "channel": channel,
                **figures,
                "cycle_median_seconds": medians.get((generation, channel)),
            }
            for (generation, channel), figures in cells.items()
        ],
    )


def _cycle_medians(session: Session, campaign_id: int) -> dict[tuple[int, str], float]:
    """The median cycle time of every slice. PostgreSQL computes it (percentile_cont); SQLite
    has no percentile, and its campaigns are small: the durations are read and sorted here."""
    s = ForwardStats.__table__.c
    where = and_(s.campaign_id == campaign_id, s.cycle_seconds.is_not(None))
    medians: dict[tuple[int, str], float] = {}
    if dialect(session) == "postgresql":
        median = func.percentile_cont(0.5).within_group(s.cycle_seconds)
        for generation, value in session.execute(select(s.generation, median).where(where).group_by(s.generation)):
            medians[(generation, ALL_CHANNELS)] = float(value)
        for channel, value in session.execute(select(s.channel, median).where(where).group_by(s.channel)):
            medians[(ALL_GENERATIONS, channel)] = float(value)
        overall = session.scalar(select(median).where(where))
        if overall is not None:
            medians[(ALL_GENERATIONS, ALL_CHANNELS)] = float(overall)
        return medians
    durations: dict[tuple[int, str], list[float]] = defaultdict(list)
    for generation, channel, seconds in session.execute(select(s.generation, s.channel, s.cycle_seconds).where(where)):
        for key in ((generation, ALL_CHANNELS), (ALL_GENERATIONS, channel), (ALL_GENERATIONS, ALL_CHANNELS)):
            durations[key].append(float(seconds))
    return {key: statistics.median(values) for key, values in durations.items()}


def _insert_daily_forwards(session: Session, campaign_id: int) -> None:
    s = ForwardStats.__table__.c
    rows = (
        select(s.campaign_id, s.day, s.generation, func.count())
        .where(s.campaign_id == campaign_id)
        .group_by(s.campaign_id, s.day, s.generation)
    )
    d = DailyForwards.__table__.c
    session.execute(insert(DailyForwards.__table__).from_select([d.campaign_id, d.day, d.generation, d.forwards], rows))


def _insert_ambassadors(session: Session, campaign_id: int) -> None:
    s = ForwardStats.__table__.c
    rows = (
        select(
            s.campaign_id,
            s.sender_key,
            func.max(s.sender_name),
            func.min(s.generation),
            func.count(),
            func.sum(1 + s.descendants),
            func.sum(s.conversions + s.downstream_conversions),
        )
        .where(s.campaign_id == campaign_id)
        .group_by(s.campaign_id, s.sender_key)
    )
    a = AmbassadorStats.__table__.c
    columns = [a.campaign_id, a.sender_key, a.sender_name, a.generation, a.forwards, a.reach, a.conversions]
    session.execute(insert(AmbassadorStats.__table__).from_select(columns, rows))
