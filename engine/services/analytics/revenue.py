"""Revenue: the order totals shops reported with their redemptions, attributed along the chain.

- By generation: an order counts for the generation of the forward whose code was redeemed
  (the friend who bought was invited by a forward of that generation).
- By ambassador: an order counts for every sender in its chain — the friend's inviter, who
  was invited by someone, and so on up to generation 1 — once per order however many of their
  forwards the chain passes through. It is revenue each of them helped bring, not a share:
  the ambassadors' figures add up to more than the campaign's total.

Amounts are never converted: every figure is per currency. Redemptions without an order
total (a bare code, or a shop that sends none) count nowhere here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.models import Forward, Redemption
from engine.services.analytics.sql import sender_key_expression
from engine.services.reward_rules import Money

TOP_AMBASSADORS = 20
_LOOKUP_CHUNK = 1000


@dataclass(frozen=True)
class RevenueLine:
    currency: str
    orders: int
    total_minor: int

    @property
    def total(self) -> str:
        return f"{Money.from_minor(self.total_minor, self.currency).amount}"

    def to_json(self) -> dict[str, Any]:
        return {"currency": self.currency, "orders": self.orders, "total": self.total}


@dataclass(frozen=True)
class GenerationRevenue:
    generation: int
    line: RevenueLine


@dataclass(frozen=True)
class AmbassadorRevenue:
    sender_name: str
    line: RevenueLine


@dataclass(frozen=True)
class Revenue:
    totals: list[RevenueLine]  # the campaign's, per currency
    by_generation: list[GenerationRevenue]  # by generation, then currency
    by_ambassador: list[AmbassadorRevenue]  # per currency, the top ambassadors by revenue

    def to_json(self) -> dict[str, Any]:
        return {
            "totals": [line.to_json() for line in self.totals],
            "by_generation": [{"generation": g.generation, **g.line.to_json()} for g in self.by_generation],
            "by_ambassador": [{"sender_name": a.sender_name, **a.line.to_json()} for a in self.by_ambassador],
        }


def campaign_revenue(session: Session, campaign_id: int, top: int = TOP_AMBASSADORS) -> Revenue:
    with_total = (
        Redemption.campaign_id == campaign_id,
        Redemption.order_total_minor.is_not(None),
        Redemption.currency.is_not(None),
    )
    totals = [
        RevenueLine(str(currency), int(orders), int(total or 0))
        for currency, orders, total in session.execute(
            select(Redemption.currency, func.count(), func.sum(Redemption.order_total_minor))
            .where(*with_total)
            .group_by(Redemption.currency)
            .order_by(Redemption.currency)
        )
    ]
    by_generation = [
        GenerationRevenue(int(generation), RevenueLine(str(currency), int(orders), int(total or 0)))
        for generation, currency, orders, total in session.execute(
            select(Forward.generation, Redemption.currency, func.count(), func.sum(Redemption.order_total_minor))
            .join(Forward, Forward.id == Redemption.forward_id)
            .where(*with_total)
            .group_by(Forward.generation, Redemption.currency)
            .order_by(Forward.generation, Redemption.currency)
        )
    ]
    orders = session.execute(
        select(Redemption.currency, Redemption.order_total_minor, Redemption.detail).where(
            *with_total, Redemption.forward_id.is_not(None)
        )
    ).all()
    chains = [list(detail.get("chain", [])) for _, _, detail in orders]
    senders = _senders(session, campaign_id, {public_id for chain in chains for public_id in chain})
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    names: dict[str, str] = {}
    for (currency, total, _), chain in zip(orders, chains, strict=True):
        for key in {senders[p][0] for p in chain if p in senders}:
            entry = sums[(key, str(currency))]
            entry[0] += 1
            entry[1] += int(total or 0)
        for public_id in chain:
            if public_id in senders:
                names.setdefault(senders[public_id][0], senders[public_id][1])
    ranked = sorted(sums.items(), key=lambda item: (item[0][1], -item[1][1], -item[1][0], names[item[0][0]]))
    by_ambassador: list[AmbassadorRevenue] = []
    shown: dict[str, int] = defaultdict(int)
    for (key, currency), (count, total) in ranked:
        if shown[currency] < top:
            shown[currency] += 1
            by_ambassador.append(AmbassadorRevenue(names[key], RevenueLine(currency, count, total)))
    return Revenue(totals, by_generation, by_ambassador)


def _senders(session: Session, campaign_id: int, public_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Public id -> (sender key, sender name) of these forwards."""
    wanted = sorted(public_ids)
    found: dict[str, tuple[str, str]] = {}
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        rows = session.execute(
            select(Forward.public_id, sender_key_expression(), Forward.sender_name).where(
                Forward.campaign_id == campaign_id, Forward.public_id.in_(wanted[start : start + _LOOKUP_CHUNK])
            )
        )
        found.update({public_id: (key, name) for public_id, key, name in rows})
    return found
