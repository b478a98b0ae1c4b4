"""The `daily_cohorts` roll-up: per day and generation (0: every generation), the invites, those
that became senders, and the senders whose first forward was made that day. K on mature cohorts
(engine.services.analytics.maturity, `mature_rows`) sums them over the days before a date: distinct senders
are not additive over days, but "first forward before D" is, and a sender has a forward before
D exactly when their first one is.

A rebuild counts them from `forward_stats`; an incremental refresh adds to them the difference
its re-derived rows and its new senders' first days made, like the slices."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date

from sqlalchemy import case, delete, func, insert, select
from sqlalchemy.orm import Session

from engine.models import DailyCohort, ForwardStats
from engine.services.analytics.figures import ALL_GENERATIONS
from engine.services.analytics.sql import upsert
from engine.services.analytics.stats import among, chunks

CohortKey = tuple[date, int]  # (day, generation)
FIGURES = ("invites", "became_senders", "first_senders")
# A sender's first day: in one generation, and (generation ALL_GENERATIONS) in any.
FirstDays = dict[tuple[str, int], date]


def insert_cohorts(session: Session, campaign_id: int) -> None:
    """Count every row of the campaign from its `forward_stats` rows (a rebuild)."""
    s = ForwardStats.__table__.c
    mine = s.campaign_id == campaign_id
    became = func.sum(case((s.children > 0, 1), else_=0))
    figures: dict[CohortKey, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FIGURES, 0))
    for day, generation, invites, became_senders in session.execute(
        select(s.day, s.generation, func.count(), became).where(mine).group_by(s.day, s.generation)
    ):
        for key in ((day, generation), (day, ALL_GENERATIONS)):
            figures[key]["invites"] += int(invites)
            figures[key]["became_senders"] += int(became_senders or 0)
    per_generation = (
        select(s.generation, func.min(s.day).label("first")).where(mine).group_by(s.sender_key, s.generation).subquery()
    )
    overall = select(func.min(s.day).label("first")).where(mine).group_by(s.sender_key).subquery()
    firsts: list[tuple[int, date, int]] = [
        (generation, day, senders)
        for generation, day, senders in session.execute(
            select(per_generation.c.generation, per_generation.c.first, func.count()).group_by(
                per_generation.c.generation, per_generation.c.first
            )
        )
    ]
    firsts += [
        (ALL_GENERATIONS, day, senders)
        for day, senders in session.execute(select(overall.c.first, func.count()).group_by(overall.c.first))
    ]
    for generation, day, senders in firsts:
        figures[(day, generation)]["first_senders"] += int(senders)
    if figures:
        session.execute(
            insert(DailyCohort.__table__),
            [
                {"campaign_id": campaign_id, "day": day, "generation": generation, **values}
                for (day, generation), values in sorted(figures.items())
            ],
        )


def first_days(session: Session, campaign_id: int, sender_keys: Iterable[str]) -> FirstDays:
    """The first day of each of these senders' forwards, per generation and in any."""
    s = ForwardStats.__table__.c
    found: FirstDays = {}
    for keys in chunks(session, sorted(sender_keys)):
        query = (
            select(s.sender_key, s.generation, func.min(s.day))
            .where(s.campaign_id == campaign_id, among(session, s.sender_key, keys))
            .group_by(s.sender_key, s.generation)
        )
        for key, generation, day in session.execute(query):
            found[(key, generation)] = day
            overall = found.get((key, ALL_GENERATIONS))
            found[(key, ALL_GENERATIONS)] = day if overall is None or day < overall else overall
    return found


def add_differences(
    session: Session,
    campaign_id: int,
    rows_before: Iterable[tuple[date, int, int]],
    rows_after: Iterable[tuple[date, int, int]],
    firsts_before: Mapping[tuple[str, int], date],
    firsts_after: Mapping[tuple[str, int], date],
) -> None:
    """Add to the cohorts what changed: re-derived rows (day, generation, children) before and
    after, and the first days of the senders whose forwards were new."""
    deltas: dict[CohortKey, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FIGURES, 0))
    for rows, sign in ((rows_before, -1), (rows_after, 1)):
        for day, generation, children in rows:
            for key in ((day, generation), (day, ALL_GENERATIONS)):
                deltas[key]["invites"] += sign
                deltas[key]["became_senders"] += sign * int(children > 0)
    for firsts, sign in ((firsts_before, -1), (firsts_after, 1)):
        for (_, generation), day in firsts.items():
            deltas[(day, generation)]["first_senders"] += sign
    changes = [
        {"campaign_id": campaign_id, "day": day, "generation": generation, **values}
        for (day, generation), values in sorted(deltas.items())
        if any(values.values())
    ]
    if not changes:
        return
    table = DailyCohort.__table__
    statement = upsert(session, table)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["campaign_id", "day", "generation"],
            set_={name: table.c[name] + statement.excluded[name] for name in FIGURES},
        ),
        changes,
    )
    # A day and generation left without forwards (never, unless a forward was deleted) shows
    # as no row, as in a rebuild.
    c = table.c
    session.execute(delete(table).where(c.campaign_id == campaign_id, c.invites == 0))
