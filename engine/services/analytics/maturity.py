"""K on mature cohorts: the forwards old enough for their friends to have forwarded in turn.

A forward made an hour ago has had no time to be forwarded on, yet it counts its sender among
the senders and nobody among those who became senders: taken over every forward, K is pulled
down by the youngest ones, and a growing campaign (whose youngest generations are its largest)
shows a K below that of every one of its generations. So the headline K is of the forwards made
at least a *maturity window* ago, stated beside it (docs/analytics.md, *Mature cohorts*).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from engine.models import DailyCohort, ForwardStats
from engine.services.analytics.formulas import viral_coefficient

# The window is a few median cycle times (most forwards on happen within them), in whole days
# (the roll-up keeps a forward's day), within these bounds; without a cycle time yet, the default.
CYCLES_TO_MATURE = 3
MIN_WINDOW_DAYS = 1
MAX_WINDOW_DAYS = 14
DEFAULT_WINDOW_DAYS = 7

# The generation of `daily_cohorts`' rows over every generation (figures.ALL_GENERATIONS; figures
# imports this module, so the number is repeated here).
EVERY_GENERATION = 0


def maturity_days(cycle_seconds: float | None) -> int:
    """Whole days a forward needs before its K counts: CYCLES_TO_MATURE median cycle times."""
    if not cycle_seconds or cycle_seconds <= 0:
        return DEFAULT_WINDOW_DAYS
    days = math.ceil(CYCLES_TO_MATURE * cycle_seconds / 86400)
    return max(MIN_WINDOW_DAYS, min(MAX_WINDOW_DAYS, days))


def mature_before(now: datetime, window_days: int) -> date:
    """The first day whose forwards are not all mature yet: every forward of an earlier day was
    made at least `window_days` before `now`."""
    return (now - timedelta(days=window_days)).date()


@dataclass(frozen=True)
class Cohort:
    """The forwards of a stretch of days (one generation, or every one)."""

    generation: int | None
    invites: int
    senders: int
    became_senders: int

    @property
    def k(self) -> float | None:
        return viral_coefficient(self.invites, self.senders, self.became_senders, self.invites)


@dataclass(frozen=True)
class MatureK:
    window_days: int
    before: date  # forwards of days before this one are mature
    since: date | None  # the date range's first day, when one was asked for
    overall: Cohort
    generations: list[Cohort]

    @property
    def k(self) -> float | None:
        return self.overall.k

    @property
    def last_day(self) -> date:
        return self.before - timedelta(days=1)


def mature_k(
    session: Session,
    campaign_id: int,
    now: datetime,
    cycle_seconds: float | None,
    *,
    since: date | None = None,
    until: date | None = None,
) -> MatureK:
    """K of the campaign's mature forwards (made in [since, until] when given), overall and per
    generation. Without `since`, a sum over the `daily_cohorts` roll-up (a row per day and
    generation); with it, two aggregates over the campaign's `forward_stats` rows of those
    days (a sender's first day says nothing of whether they sent after `since`)."""
    window = maturity_days(cycle_seconds)
    before = mature_before(now, window)
    if until is not None:
        before = min(before, until + timedelta(days=1))
    if since is None:
        rows = mature_rows(session, campaign_id, before)
        overall = next((row for row in rows if row[0] == EVERY_GENERATION), (None, 0, 0, 0))
        per_generation = [row for row in rows if row[0] != EVERY_GENERATION]
    else:
        overall, per_generation = scan_mature(session, campaign_id, before, since)
    _, invites, senders, became = overall
    return MatureK(
        window_days=window,
        before=before,
        since=since,
        overall=Cohort(None, int(invites or 0), int(senders or 0), int(became or 0)),
        generations=[Cohort(int(g), int(i), int(n), int(b)) for g, i, n, b in per_generation],
    )


def scan_mature(session: Session, campaign_id: int, before: date, since: date | None) -> tuple[Any, list[Any]]:
    """(None, invites, distinct senders, became senders) of the forwards of the days in
    [since, before), and the same per generation: read from every one of those rows (through
    the index on the campaign's days, which holds what is counted)."""
    s = ForwardStats.__table__.c
    conditions = [s.campaign_id == campaign_id, s.day < before]
    if since is not None:
        conditions.append(s.day >= since)
    figures = (
        func.count(),
        func.count(s.sender_key.distinct()),
        func.coalesce(func.sum(case((s.children > 0, 1), else_=0)), 0),
    )
    overall = (None, *session.execute(select(*figures).where(*conditions)).one())
    per_generation = session.execute(
        select(s.generation, *figures).where(*conditions).group_by(s.generation).order_by(s.generation)
    ).all()
    return overall, list(per_generation)


def mature_rows(session: Session, campaign_id: int, before: date) -> list[Any]:
    """Per generation (EVERY_GENERATION first), the `daily_cohorts` sums over the days before
    `before`: (generation, invites, senders, became senders)."""
    c = DailyCohort.__table__.c
    return list(
        session.execute(
            select(c.generation, func.sum(c.invites), func.sum(c.first_senders), func.sum(c.became_senders))
            .where(c.campaign_id == campaign_id, c.day < before)
            .group_by(c.generation)
            .order_by(c.generation)
        )
    )
