"""The roll-ups: every figure of a campaign that is expensive to count, kept from its forwards,
clicks, messages and redemptions in small tables (engine.models.analytics) that the dashboard
reads.

`refresh_rollups` is incremental: it folds what changed since the campaign's watermarks
(engine.services.analytics.watermarks; engine.services.analytics.incremental says what an old
row can change by). `rebuild_rollups` recomputes everything from the base tables, in one
transaction: the first refresh of a campaign, `flask analytics rebuild`, and a campaign whose
roll-ups were marked `rebuild_due` get it. Both give exactly the same rows
(tests/integration/test_incremental_analytics.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, case, delete, func, insert, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import CTE

from engine.db import Database
from engine.models import (
    AmbassadorStats,
    DailyCohort,
    DailyForwards,
    Forward,
    ForwardReach,
    ForwardStats,
    MetricCell,
    RollupState,
    VideoPlay,
)
from engine.services.analytics import cohorts, incremental
from engine.services.analytics.figures import ALL_CHANNELS, ALL_GENERATIONS, COUNT_COLUMNS, DIRECT
from engine.services.analytics.sql import find_campaign_id, lock_campaign
from engine.services.analytics.stats import (
    forward_rows,
    insert_ambassadors,
    insert_forward_rows,
    insert_reach_rows,
    median_cycle,
    reach_below,
    write_reach,
)
from engine.services.analytics.variants import VariantVisitCounter, add_variant_visits, variant_visits_taken
from engine.services.analytics.visits import VisitCounter, add_visits, visits_taken
from engine.services.analytics.watermarks import Watermarks, advance, take_reading

log = logging.getLogger(__name__)

ROLLUP_TABLES = (ForwardStats, ForwardReach, AmbassadorStats, MetricCell, DailyForwards, DailyCohort)

# Set in `rollup_state.watermarks` by every refresh of this release, which keeps what is below a
# forward in `forward_reach`. The release before keeps it in `forward_stats` and writes the
# watermarks without this mark: a refresh it made during a rolling deploy (after migration 0038
# filled `forward_reach`, before its own processes stopped) changed rows this release does not
# read, so a campaign without the mark is rebuilt rather than carried on from stale rows.
REACH_MARK = "forward_reach"


@dataclass(frozen=True)
class RefreshReport:
    slug: str
    forwards: int
    seconds: float
    # A full rebuild, or an incremental refresh that re-derived `rederived` forwards' rows.
    full: bool = True
    rederived: int = 0


def refresh_rollups(
    db: Database,
    slug: str,
    now: datetime,
    *,
    visits: VisitCounter | None = None,
    plays: VisitCounter | None = None,
    variant_visits: VariantVisitCounter | None = None,
    full: bool = False,
) -> RefreshReport:
    """Bring every roll-up of the campaign up to date, in one transaction: readers see the old
    figures until it commits. Incremental (what changed since the last refresh) unless `full`,
    or the campaign was never refreshed or is marked for a rebuild. With a `VisitCounter`, the
    landing views counted in Redis are folded into `visits` in it too (and with `plays`, the
    video plays into `video_plays`; with `variant_visits`, the A/B variants' views and visitors
    into `variant_visits`). `now` is the app's clock's: the refresh's time, which
    staleness is judged by, and the day the views are folded around. Two refreshes of one
    campaign take turns (`lock_campaign`)."""
    started = time.perf_counter()
    with db.reading() as session:
        campaign_id = find_campaign_id(session, slug)
    with (
        visits_taken(visits, campaign_id, now.date()) as counted,
        visits_taken(plays, campaign_id, now.date()) as played,
        variant_visits_taken(variant_visits, campaign_id) as shown,
        db.transaction() as session,
    ):
        lock_campaign(session, campaign_id)
        add_visits(session, campaign_id, counted)
        add_visits(session, campaign_id, played, VideoPlay)
        add_variant_visits(session, campaign_id, shown)
        state = session.get(RollupState, campaign_id)
        previous = Watermarks.from_json(state.watermarks) if state is not None else None
        # Read before anything is scanned: see engine.services.analytics.watermarks.
        reading = take_reading(session)
        marked = state is not None and isinstance(state.watermarks, dict) and bool(state.watermarks.get(REACH_MARK))
        if state is None or previous is None or state.rebuild_due or full or not marked:
            forwards = rederived = _rebuild(session, campaign_id)
            full = True
        else:
            try:
                folded = incremental.fold_changes(session, campaign_id, previous)
                forwards, rederived = state.forwards + folded.new_forwards, folded.rederived
            except incremental.RebuildNeeded as error:
                log.warning("analytics of %s rebuilt: %s", slug, error)
                forwards = rederived = _rebuild(session, campaign_id)
                full = True
        seconds = time.perf_counter() - started
        session.merge(
            RollupState(
                campaign_id=campaign_id,
                refreshed_at=now,
                forwards=forwards,
                duration_ms=round(seconds * 1000),
                watermarks={**advance(previous, reading).to_json(), REACH_MARK: True},
                rebuild_due=False,
            )
        )
    kind = "rebuilt" if full else "refreshed"
    log.info("analytics of %s %s: %d forwards (%d re-derived) in %.2f s", slug, kind, forwards, rederived, seconds)
    return RefreshReport(slug, forwards, time.perf_counter() - started, full, rederived)


def rebuild_rollups(
    db: Database, slug: str, now: datetime, *, visits: VisitCounter | None = None, plays: VisitCounter | None = None
) -> RefreshReport:
    """Recompute every roll-up of the campaign from the base tables (`refresh_rollups`, full)."""
    return refresh_rollups(db, slug, now, visits=visits, plays=plays, full=True)


def _rebuild(session: Session, campaign_id: int) -> int:
    for table in ROLLUP_TABLES:
        session.execute(delete(table).where(table.campaign_id == campaign_id))
    forwards = _insert_forward_stats(session, campaign_id)
    _add_downstream_figures(session, campaign_id)
    _insert_metric_cells(session, campaign_id)
    _insert_daily_forwards(session, campaign_id)
    cohorts.insert_cohorts(session, campaign_id)
    insert_ambassadors(session, campaign_id)
    return forwards


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
    insert_forward_rows(session, forward_rows(session, campaign_id, _spread_tree(campaign_id)))
    s = ForwardStats.__table__.c
    return session.scalar(select(func.count()).select_from(ForwardStats).where(s.campaign_id == campaign_id)) or 0


def _add_downstream_figures(session: Session, campaign_id: int) -> None:
    """Descendants, conversions below and height of every forward (`forward_reach`), one
    generation at a time from the deepest up: each forward's figures are its children's, so
    every row is read once as a child and written once as a parent (O(forwards), where a
    recursive CTE per forward would walk each chain once per ancestor). The children of a
    generation are read through the index on (campaign, generation)."""
    insert_reach_rows(session, campaign_id)
    r = ForwardReach.__table__.c
    deepest = session.scalar(select(func.max(r.generation)).where(r.campaign_id == campaign_id)) or 0
    for generation in range(deepest, 1, -1):
        write_reach(session, reach_below(and_(r.campaign_id == campaign_id, r.generation == generation)))


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
    session.execute(
        insert(MetricCell.__table__),
        [
            {
                "campaign_id": campaign_id,
                "generation": generation,
                "channel": channel,
                **figures,
                "cycle_median_seconds": median_cycle(session, campaign_id, generation, channel),
            }
            for (generation, channel), figures in cells.items()
        ],
    )


def _insert_daily_forwards(session: Session, campaign_id: int) -> None:
    s = ForwardStats.__table__.c
    rows = (
        select(s.campaign_id, s.day, s.generation, func.count())
        .where(s.campaign_id == campaign_id)
        .group_by(s.campaign_id, s.day, s.generation)
    )
    d = DailyForwards.__table__.c
    session.execute(insert(DailyForwards.__table__).from_select([d.campaign_id, d.day, d.generation, d.forwards], rows))
