"""Figures per A/B variant (`variant_counts`): what the statistics of an experiment start from.

Visitors and views of a variant are counted in Redis as they happen (`VariantVisitCounter`):
one hash per campaign, a field per variant and kind, never expiring. No row is written on a
landing view (docs/analytics.md says why), and a campaign has a handful of variants, so the
totals stay in Redis rather than in a roll-up: the cheapest honest count. A visitor is counted
once, on the visit that drew (or inherited) their variant and set its cookie; a visitor who
clears their cookies is counted again, so visitors are an upper bound on people, as views are.

Forwards, senders, invites, clicks and conversions are read from the database: each forward
records its variant (forwards.variant_id).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import redis
from sqlalchemy import Select, distinct, func, select
from sqlalchemy.orm import Session

from engine.db import Database
from engine.models import CampaignVariant, Click, Forward, Redemption
from engine.services.analytics.sql import sender_key_expression
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
        """(variant key, "views" or "visitors") -> count so far."""
        fields = self._redis.hgetall(f"{self._key_prefix}{campaign_id}")
        totals: dict[tuple[str, str], int] = {}
        for name, value in fields.items():
            variant_key, _, kind = _text(name).rpartition(":")
            totals[(variant_key, kind)] = int(value)
        return totals


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
    totals = _visit_totals(visits, campaign_id)
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


def _visit_totals(visits: VariantVisitCounter | None, campaign_id: int) -> Mapping[tuple[str, str], int]:
    if visits is None:
        return {}
    try:
        return visits.totals(campaign_id)
    except redis.RedisError as error:
        log.warning("variant visitors of campaign %d not read: Redis is unreachable (%s)", campaign_id, error)
        return {}


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
