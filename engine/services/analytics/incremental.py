"""An incremental refresh: the roll-ups brought up to date from what changed since the
campaign's settled watermarks (engine.services.analytics.watermarks), with the same figures a
full rebuild computes.

What an event changes, besides its own rows:

- a new forward: its own row; its parent's `children` and cycle time (the cycle runs to the
  parent's *first* child); every ancestor's `descendants` and `height` (in `forward_reach`);
  the slices of its generation and channel (invites, senders, became senders through the
  parent, median cycle time); its day's reach and cohort; its sender's ambassador row and
  every ancestor sender's reach;
- a click: its forward's `clicks`, and the cycle time if it is the forward's first click;
- a redemption: its forward's `conversions`, and every ancestor's `downstream_conversions`;
- a message's status (a delivery report arriving days later): its forward's `delivered`.

So the refresh collects the forwards touched by a new forward, click, redemption or message
change (and the parents of new forwards), and *re-derives* their rows from the base tables with
the query a rebuild uses, rather than adding to them: a row seen twice (the watermarks rescan
a margin) comes out the same, and is written only where a figure changed. Then it walks up from
the new forwards and those whose conversions changed, and recomputes the figures below every
ancestor (`forward_reach`) from its children's rows, deepest generation first, writing only the
rows whose figures change. The slices (`metric_cells`) and the daily cohorts (`daily_cohorts`)
change by the difference between the touched rows before and after; distinct senders by
whether each new forward's sender key was already counted in a slice, and first senders by the
first days of the new forwards' senders before and after. A slice's median cycle time is read
again (through an index) only when one of its cycle times changed. The ambassador rows of every
sender key whose conversions or reach changed are recomputed. Nothing here reads the whole
campaign.

Visits need nothing: the counts in Redis are added to `visits` by every refresh, incremental
by nature.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, literal, select, update
from sqlalchemy.orm import Session

from engine.models import Click, DailyForwards, Forward, ForwardStats, Message, MessageStatus, MetricCell, Redemption
from engine.services.analytics import cohorts
from engine.services.analytics.figures import ALL_CHANNELS, ALL_GENERATIONS, COUNT_COLUMNS, DIRECT
from engine.services.analytics.sql import sender_key_expression, upsert
from engine.services.analytics.stats import (
    add_downstream,
    among,
    chunks,
    forward_rows,
    insert_ambassadors,
    insert_reach_rows,
    median_cycle,
    replace_forward_rows,
)
from engine.services.analytics.watermarks import Watermarks

Cell = tuple[int, str]


class RebuildNeeded(Exception):
    """The changes cannot be folded in (a forward whose parent has no row): rebuild instead."""


@dataclass(frozen=True)
class Folded:
    new_forwards: int
    rederived: int


@dataclass(frozen=True)
class CellRow:
    """What a forward_stats row gives the slices."""

    generation: int
    channel: str
    children: int
    delivered: int
    clicks: int
    prefetches: int
    conversions: int
    cycle_seconds: float | None
    day: date

    def cells(self) -> tuple[Cell, ...]:
        return ((self.generation, ALL_CHANNELS), (ALL_GENERATIONS, self.channel), (ALL_GENERATIONS, ALL_CHANNELS))

    def counts(self) -> dict[str, int]:
        return {
            "invites": 1,
            "became_senders": int(self.children > 0),
            "delivered": int(self.delivered > 0),
            "clicked": int(self.clicks > 0),
            "clicks": self.clicks,
            "prefetches": self.prefetches,
            "conversions": self.conversions,
        }


def fold_changes(session: Session, campaign_id: int, since: Watermarks) -> Folded:
    """Fold every change since `since.settled` into the campaign's roll-ups, in the caller's
    transaction (which holds the campaign's refresh lock)."""
    new = _new_forwards(session, campaign_id, since)
    touched = _touched_forwards(session, campaign_id, since) | set(new) | {p for p in new.values() if p is not None}
    if not touched:
        return Folded(0, 0)
    generations = _generations(session, sorted(touched))
    before = _cell_rows(session, sorted(touched))
    new_keys = _sender_keys_of_forwards(session, sorted(new))
    senders_before = _sender_cells(session, campaign_id, new_keys)
    firsts_before = cohorts.first_days(session, campaign_id, new_keys)
    _rederive(session, campaign_id, generations)
    after = _cell_rows(session, sorted(touched))
    senders_after = _sender_cells(session, campaign_id, new_keys)
    firsts_after = cohorts.first_days(session, campaign_id, new_keys)
    # What is below a forward changes with a new forward or a conversion under it, nothing else:
    # the walk up starts from those, and rewrites only the rows whose figures change.
    insert_reach_rows(session, campaign_id, sorted(new))
    below_changed = {
        forward_id
        for forward_id, row in after.items()
        if forward_id in new or forward_id not in before or before[forward_id].conversions != row.conversions
    }
    ancestors = _with_ancestors(session, {i: generations[i] for i in below_changed})
    reach_changed: list[int] = []
    for generation in sorted(set(ancestors.values()), reverse=True):
        reach_changed += add_downstream(session, sorted(i for i, g in ancestors.items() if g == generation))
    _apply_to_cells(session, campaign_id, before, after, senders_after - senders_before)
    cohorts.add_differences(
        session,
        campaign_id,
        [(row.day, row.generation, row.children) for row in before.values()],
        [(row.day, row.generation, row.children) for row in after.values()],
        firsts_before,
        firsts_after,
    )
    # Forwards past the settled watermark may have been folded by the last refresh already.
    first_seen = sorted(set(new) - set(before))
    _add_daily_forwards(session, campaign_id, first_seen)
    # An ambassador row sums its sender's forwards' conversions and what is below them.
    ambassadors = _sender_keys_of_rows(session, sorted(below_changed | set(reach_changed))) | new_keys
    insert_ambassadors(session, campaign_id, sorted(ambassadors))
    return Folded(len(first_seen), len(touched))


def _new_forwards(session: Session, campaign_id: int, since: Watermarks) -> dict[int, int | None]:
    """The campaign's forwards past the watermark, with their parents."""
    rows = session.execute(
        select(Forward.id, Forward.parent_id).where(
            Forward.id > since.settled.ids["forwards"], Forward.campaign_id == campaign_id
        )
    )
    return {forward_id: parent_id for forward_id, parent_id in rows}


def _touched_forwards(session: Session, campaign_id: int, since: Watermarks) -> set[int]:
    """The campaign's forwards with a click, a redemption or a message change past the watermarks."""
    marks = since.settled.ids
    mine = Forward.campaign_id == campaign_id
    queries = [
        select(Click.forward_id).join(Forward, Forward.id == Click.forward_id).where(Click.id > marks["clicks"], mine),
        select(Redemption.forward_id).where(
            Redemption.id > marks["redemptions"],
            Redemption.campaign_id == campaign_id,
            Redemption.forward_id.is_not(None),
        ),
        select(Message.forward_id)
        .join(Forward, Forward.id == Message.forward_id)
        .where(Message.id > marks["messages"], mine),
        # Through the (status, updated_at) index: one range per status.
        select(Message.forward_id)
        .join(Forward, Forward.id == Message.forward_id)
        .where(
            Message.status.in_([s.value for s in MessageStatus]), Message.updated_at >= since.messages_since(), mine
        ),
    ]
    touched: set[int] = set()
    for query in queries:
        touched.update(forward_id for forward_id in session.scalars(query.distinct()) if forward_id is not None)
    return touched


def _generations(session: Session, forward_ids: Sequence[int]) -> dict[int, int]:
    generations: dict[int, int] = {}
    for ids in chunks(session, forward_ids):
        generations.update(
            (i, g)
            for i, g in session.execute(select(Forward.id, Forward.generation).where(among(session, Forward.id, ids)))
        )
    return generations


def _rederive(session: Session, campaign_id: int, generations: dict[int, int]) -> None:
    """Replace the rows of these forwards by rows computed afresh, generation by generation
    from the top, so that a forward's parent row (its root and channel) is always there."""
    _check_parents(session, campaign_id, sorted(generations))
    for generation in sorted(set(generations.values())):
        for ids in chunks(session, sorted(i for i, g in generations.items() if g == generation)):
            replace_forward_rows(session, forward_rows(session, campaign_id, _parent_tree(session, ids), ids))


def _check_parents(session: Session, campaign_id: int, forward_ids: Sequence[int]) -> None:
    """Every parent of these forwards has a row, or is one of them."""
    parents: set[int] = set()
    for ids in chunks(session, forward_ids):
        query = select(Forward.parent_id).where(among(session, Forward.id, ids), Forward.parent_id.is_not(None))
        parents.update(session.scalars(query))
    outside = sorted(parents - set(forward_ids))
    found = 0
    for ids in chunks(session, outside):
        query = select(func.count()).select_from(ForwardStats).where(among(session, ForwardStats.forward_id, ids))
        found += session.scalar(query) or 0
    if found != len(outside):
        raise RebuildNeeded(f"a forward of campaign {campaign_id} has a parent without a row")


def _parent_tree(session: Session, ids: Sequence[int]) -> Any:
    """Each forward's root and arrival channel, from its parent's row (what the rebuild's walk
    down from the roots gives)."""
    f = Forward.__table__.alias("f")
    parent = ForwardStats.__table__.alias("parent")
    return (
        select(
            f.c.id.label("id"),
            func.coalesce(parent.c.root_id, f.c.id).label("root_id"),
            func.coalesce(parent.c.channel, literal(DIRECT)).label("arrival_channel"),
        )
        .select_from(f.outerjoin(parent, parent.c.forward_id == f.c.parent_id))
        .where(among(session, f.c.id, ids))
        .subquery("tree")
    )


def _cell_rows(session: Session, forward_ids: Sequence[int]) -> dict[int, CellRow]:
    s = ForwardStats.__table__.c
    rows: dict[int, CellRow] = {}
    for ids in chunks(session, forward_ids):
        query = select(
            s.forward_id,
            s.generation,
            s.channel,
            s.children,
            s.delivered,
            s.clicks,
            s.prefetches,
            s.conversions,
            s.cycle_seconds,
            s.day,
        ).where(among(session, s.forward_id, ids))
        for forward_id, *figures in session.execute(query):
            rows[forward_id] = CellRow(*figures)
    return rows


def _sender_keys_of_forwards(session: Session, forward_ids: Sequence[int]) -> set[str]:
    keys: set[str] = set()
    for ids in chunks(session, forward_ids):
        keys.update(session.scalars(select(sender_key_expression()).where(among(session, Forward.id, ids)).distinct()))
    return keys


def _sender_keys_of_rows(session: Session, forward_ids: Sequence[int]) -> set[str]:
    s = ForwardStats.__table__.c
    keys: set[str] = set()
    for ids in chunks(session, forward_ids):
        keys.update(session.scalars(select(s.sender_key).where(among(session, s.forward_id, ids)).distinct()))
    return keys


def _sender_cells(session: Session, campaign_id: int, sender_keys: Iterable[str]) -> set[tuple[str, Cell]]:
    """Where each of these senders is counted: the slices of the generations they sent in, of
    the channel that brought them, and the whole campaign's."""
    s = ForwardStats.__table__.c
    present: set[tuple[str, Cell]] = set()
    for keys in chunks(session, sorted(sender_keys)):
        query = select(s.sender_key, s.generation, s.arrival_channel).where(
            s.campaign_id == campaign_id, among(session, s.sender_key, keys)
        )
        for key, generation, arrival in session.execute(query.distinct()):
            present.update(
                {
                    (key, (generation, ALL_CHANNELS)),
                    (key, (ALL_GENERATIONS, arrival)),
                    (key, (ALL_GENERATIONS, ALL_CHANNELS)),
                }
            )
    return present


def _with_ancestors(session: Session, generations: dict[int, int]) -> dict[int, int]:
    """These forwards and every forward above them, with their generations: a walk up, one
    generation per query."""
    s = ForwardStats.__table__.c
    found = dict(generations)
    frontier = sorted(generations)
    while frontier:
        parents: set[int] = set()
        for ids in chunks(session, frontier):
            parents.update(
                session.scalars(select(s.parent_id).where(among(session, s.forward_id, ids), s.parent_id.is_not(None)))
            )
        frontier = sorted(parents - set(found))
        for ids in chunks(session, frontier):
            found.update(
                (i, g)
                for i, g in session.execute(select(s.forward_id, s.generation).where(among(session, s.forward_id, ids)))
            )
    return found


def _apply_to_cells(
    session: Session,
    campaign_id: int,
    before: dict[int, CellRow],
    after: dict[int, CellRow],
    new_senders: set[tuple[str, Cell]],
) -> None:
    """Add to the slices what the re-derived rows changed, and read the median cycle time again
    of the slices one of whose cycle times changed."""
    deltas: dict[Cell, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNT_COLUMNS, 0))
    for rows, sign in ((before, -1), (after, 1)):
        for row in rows.values():
            for cell in row.cells():
                for name, value in row.counts().items():
                    deltas[cell][name] += sign * value
    for _, cell in new_senders:
        deltas[cell]["senders"] += 1
    cycles_changed = {
        cell
        for forward_id, row in after.items()
        if (before[forward_id].cycle_seconds if forward_id in before else None) != row.cycle_seconds
        for cell in row.cells()
    }
    m = MetricCell.__table__.c
    existing = {
        (row.generation, row.channel): {name: row[name] for name in COUNT_COLUMNS}
        for row in session.execute(select(MetricCell.__table__).where(m.campaign_id == campaign_id)).mappings()
    }
    for cell in sorted(set(deltas) | cycles_changed, key=lambda c: (c[0], c[1])):
        figures = {name: existing.get(cell, {}).get(name, 0) + deltas[cell][name] for name in COUNT_COLUMNS}
        where = _cell_key(campaign_id, cell)
        values: dict[str, Any] = dict(figures)
        if cell in cycles_changed or cell not in existing:
            values["cycle_median_seconds"] = median_cycle(session, campaign_id, *cell)
        if cell in existing:
            session.execute(update(MetricCell.__table__).where(where).values(**values))
        elif figures["invites"] > 0 or figures["senders"] > 0:
            # A slice a rebuild would show: forwards in it, or senders its channel brought.
            values.setdefault("cycle_median_seconds", None)
            session.execute(
                insert(MetricCell.__table__).values(
                    campaign_id=campaign_id, generation=cell[0], channel=cell[1], **values
                )
            )


def _cell_key(campaign_id: int, cell: Cell) -> ColumnElement[bool]:
    m = MetricCell.__table__.c
    return and_(m.campaign_id == campaign_id, m.generation == cell[0], m.channel == cell[1])


def _add_daily_forwards(session: Session, campaign_id: int, new_ids: Sequence[int]) -> None:
    s = ForwardStats.__table__.c
    counts: dict[tuple[Any, int], int] = defaultdict(int)
    for ids in chunks(session, new_ids):
        query = (
            select(s.day, s.generation, func.count())
            .where(among(session, s.forward_id, ids))
            .group_by(s.day, s.generation)
        )
        for day, generation, number in session.execute(query):
            counts[(day, generation)] += int(number)
    if not counts:
        return
    d = DailyForwards.__table__
    statement = upsert(session, d)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["campaign_id", "day", "generation"],
            set_={"forwards": d.c.forwards + statement.excluded.forwards},
        ),
        [
            {"campaign_id": campaign_id, "day": day, "generation": generation, "forwards": number}
            for (day, generation), number in sorted(counts.items())
        ],
    )
