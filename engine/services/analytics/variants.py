"""Figures per A/B variant (`variant_counts`): what the statistics of an experiment start from.

Visitors and views of a variant are counted in Redis as they happen (`VariantVisitCounter`):
one hash per campaign, a field per variant and kind. No row is written on a landing view
(docs/analytics.md says why); every refresh of the roll-ups moves the counts into
`variant_visits` in its own transaction (`variant_visits_taken`, as landing views go into
`visits`), so that Redis holds only what came since: Redis losing its data loses minutes of
counts, not the experiment's. The figures are the table's plus what waits in Redis. A visitor is counted
once, on the visit that drew (or inherited) their variant and set its cookie; a visitor who
clears their cookies is counted again, so visitors are an upper bound on people, as views are.

Forwards, senders, invites, clicks and conversions are read from the database: each forward
records its variant (forwards.variant_id).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import Select, distinct, func, select
from sqlalchemy.orm import Session

from engine.db import Database
from engine.models import CampaignVariant, Click, Forward, Redemption, VariantVisit
from engine.services.analytics.sql import sender_key_expression, upsert
from engine.services.analytics.visits import counts_taken
from engine.sharing import POSTER_QR_CHANNEL

log = logging.getLogger(__name__)

VARIANT_VISITS_KEY = "analytics:variant-visits"
VIEWS = "views"
VISITORS = "visitors"


class VariantVisitCounter:
    """Views and new visitors of each variant, in Redis (the runtime's queue connection)."""

    def __init__(self, connection: redis.Redis, key_prefix: str = "fluister:") -> None:
        self._redis = connection
        self._key_prefix = f"{key_prefix}{VARIANT_VISITS_KEY}:"
        self._unreachable = False
        self._take = connection.register_script(_TAKE)

    def count(self, campaign_id: int, variant_key: str, new_visitor: bool) -> None:
        """One view of the variant, and one visitor when `new_visitor`. Never raises: when
        Redis is unreachable the view goes uncounted (one warning per outage, not per view)."""
        key = f"{self._key_prefix}{campaign_id}"
        try:
            with self._redis.pipeline(transaction=True) as pipeline:
                pipeline.hincrby(key, f"{variant_key}:{VIEWS}", 1)
                if new_visitor:
                    pipeline.hincrby(key, f"{variant_key}:{VISITORS}", 1)
                pipeline.execute()
        except redis.RedisError as error:
            if not self._unreachable:
                self._unreachable = True
                log.warning("variant views are not being counted: Redis is unreachable (%s)", error)
            return
        self._unreachable = False

    def totals(self, campaign_id: int) -> dict[tuple[str, str], int]:
        """(variant key, "views" or "visitors") -> count waiting in Redis (not yet folded)."""
        return _counts(self._redis.hgetall(self._key(campaign_id)))

    def take(self, campaign_id: int) -> dict[tuple[str, str], int]:
        """Remove and return the campaign's waiting counts, in one step (a view counted meanwhile
        is either taken or left for the next refresh, never lost nor taken twice)."""
        return _counts(self._take(keys=[self._key(campaign_id)]))

    def give_back(self, campaign_id: int, counts: Mapping[tuple[str, str], int]) -> None:
        """Add taken counts back (their refresh failed)."""
        with self._redis.pipeline(transaction=True) as pipeline:
            for (variant_key, kind), count in counts.items():
                pipeline.hincrby(self._key(campaign_id), f"{variant_key}:{kind}", count)
            pipeline.execute()

    def _key(self, campaign_id: int) -> str:
        return f"{self._key_prefix}{campaign_id}"


_TAKE = """
local fields = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return fields
"""


def _counts(fields: Any) -> dict[tuple[str, str], int]:
    """HGETALL's answer (a mapping, or Lua's flat list) as (variant key, kind) -> count."""
    pairs = fields.items() if isinstance(fields, Mapping) else zip(fields[::2], fields[1::2], strict=True)
    counts: dict[tuple[str, str], int] = {}
    for name, value in pairs:
        variant_key, _, kind = _text(name).rpartition(":")
        counts[(variant_key, kind)] = int(value)
    return counts


@contextmanager
def variant_visits_taken(counter: VariantVisitCounter | None, campaign_id: int) -> Iterator[dict[tuple[str, str], int]]:
    """The counts waiting in Redis, for the caller's transaction to add to `variant_visits`: given
    back when that transaction fails. (A process killed between the two loses them: a few views.)"""
    if counter is None:
        yield {}
        return
    with counts_taken(
        lambda: counter.take(campaign_id),
        lambda counts: counter.give_back(campaign_id, counts),
        f"variant views of campaign {campaign_id}",
    ) as counts:
        yield counts


def add_variant_visits(session: Session, campaign_id: int, counts: Mapping[tuple[str, str], int]) -> None:
    """Add taken counts to `variant_visits`, in the caller's transaction. Counts of a variant the
    campaign no longer has are dropped (a variant is stopped, not deleted, while it has figures)."""
    if not counts:
        return
    ids = dict(
        session.execute(
            select(CampaignVariant.key, CampaignVariant.id).where(CampaignVariant.campaign_id == campaign_id)
        ).all()
    )
    rows: dict[int, dict[str, int]] = {}
    for (variant_key, kind), count in counts.items():
        if variant_key in ids and kind in (VIEWS, VISITORS):
            row = rows.setdefault(ids[variant_key], {VIEWS: 0, VISITORS: 0})
            row[kind] += count
    if not rows:
        return
    v = VariantVisit.__table__.c
    statement = upsert(session, VariantVisit.__table__)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["variant_id"],
            set_={"views": v.views + statement.excluded.views, "visitors": v.visitors + statement.excluded.visitors},
        ),
        [
            {"variant_id": variant_id, "campaign_id": campaign_id, "views": row[VIEWS], "visitors": row[VISITORS]}
            for variant_id, row in sorted(rows.items())
        ],
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class VariantCounts:
    """One variant's figures so far. `visitors`: people first shown it (by its cookie); `views`:
    its landing views; `senders`: distinct sender keys among its forwards (docs/analytics.md);
    `forwards`: all its forwards, shares included; `invites`: its forwards to a friend the server
    messaged (no share link); `clicks`: people's clicks on its forwards' links (no prefetches);
    `conversions`: redemptions of codes given through its forwards."""

    key: str
    name: str
    wrapper: str
    weight: int
    stopped: bool
    visitors: int
    views: int
    senders: int
    forwards: int
    invites: int
    clicks: int
    conversions: int


def variant_counts(
    db: Database, campaign_id: int, *, visits: VariantVisitCounter | None = None
) -> tuple[VariantCounts, ...]:
    """The figures of each of the campaign's variants, in key order (empty: no variants).
    Without `visits` (Redis), visitors and views are 0. Redis failing is logged, not raised."""
    totals = stored_and_waiting_visits(db, campaign_id, visits)
    with db.reading() as session:
        variants = session.scalars(
            select(CampaignVariant).where(CampaignVariant.campaign_id == campaign_id).order_by(CampaignVariant.key)
        ).all()
        forwards = _forward_figures(session, campaign_id)
        clicks = _per_variant(
            session,
            select(Forward.variant_id, func.count(Click.id))
            .join(Click, Click.forward_id == Forward.id)
            .where(Forward.campaign_id == campaign_id, Click.prefetch.is_(False))
            .group_by(Forward.variant_id),
        )
        conversions = _per_variant(
            session,
            select(Forward.variant_id, func.count(Redemption.id))
            .join(Redemption, Redemption.forward_id == Forward.id)
            .where(Forward.campaign_id == campaign_id)
            .group_by(Forward.variant_id),
        )
    return tuple(
        VariantCounts(
            key=v.key,
            name=v.name,
            wrapper=v.wrapper,
            weight=v.weight,
            stopped=v.stopped,
            visitors=totals.get((v.key, VISITORS), 0),
            views=totals.get((v.key, VIEWS), 0),
            senders=forwards.get(v.id, (0, 0, 0))[0],
            forwards=forwards.get(v.id, (0, 0, 0))[1],
            invites=forwards.get(v.id, (0, 0, 0))[2],
            clicks=clicks.get(v.id, 0),
            conversions=conversions.get(v.id, 0),
        )
        for v in variants
    )


def stored_and_waiting_visits(
    db: Database, campaign_id: int, visits: VariantVisitCounter | None
) -> dict[tuple[str, str], int]:
    """(variant key, "views" or "visitors") -> count: what the refreshes folded into
    `variant_visits` plus what waits in Redis (read first: a refresh moving counts between
    the two reads may count them twice, never lose them)."""
    waiting = _visit_totals(visits, campaign_id)
    with db.reading() as session:
        totals = _stored_visits(session, campaign_id)
    for key, count in waiting.items():
        totals[key] = totals.get(key, 0) + count
    return totals


def _visit_totals(visits: VariantVisitCounter | None, campaign_id: int) -> Mapping[tuple[str, str], int]:
    if visits is None:
        return {}
    try:
        return visits.totals(campaign_id)
    except redis.RedisError as error:
        log.warning("variant visitors of campaign %d not read: Redis is unreachable (%s)", campaign_id, error)
        return {}


def _stored_visits(session: Session, campaign_id: int) -> dict[tuple[str, str], int]:
    """What the refreshes folded into `variant_visits`, by (variant key, kind)."""
    rows = session.execute(
        select(CampaignVariant.key, VariantVisit.views, VariantVisit.visitors)
        .join(VariantVisit, VariantVisit.variant_id == CampaignVariant.id)
        .where(VariantVisit.campaign_id == campaign_id)
    ).all()
    totals: dict[tuple[str, str], int] = {}
    for key, views, visitors in rows:
        totals[(key, VIEWS)] = int(views)
        totals[(key, VISITORS)] = int(visitors)
    return totals


def _forward_figures(session: Session, campaign_id: int) -> dict[int, tuple[int, int, int]]:
    """Per variant id: distinct senders, forwards, invites (forwards the server messaged)."""
    shared = Forward.channel.like("share-%") | (Forward.channel == POSTER_QR_CHANNEL)
    rows = session.execute(
        select(
            Forward.variant_id,
            func.count(distinct(sender_key_expression())),
            func.count(Forward.id),
            func.count(Forward.id).filter(~shared),
        )
        .where(Forward.campaign_id == campaign_id, Forward.variant_id.is_not(None))
        .group_by(Forward.variant_id)
    ).all()
    return {row[0]: (row[1], row[2], row[3]) for row in rows if row[0] is not None}


def _per_variant(session: Session, query: Select[int | None, int]) -> dict[int, int]:
    return {variant_id: count for variant_id, count in session.execute(query) if variant_id is not None}
