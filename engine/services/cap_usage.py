"""Live cap usage of a campaign, for operators: how close it is to its budgets, what was refused.

The per-campaign budgets are read from the limiter itself (the same Redis keys the form
counts against). Caps per sender, address or friend have one counter per person, so for
those the report gives their limits and how often they refused in the last day.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from engine.caps import CapSettings, Limiter, submission_rules
from engine.db import Database, utcnow
from engine.models import Forward, Message, Rejection
from engine.services.campaign_guides import CAP_GUIDES, CapGuide
from engine.services.lookups import find_campaign


@dataclass(frozen=True)
class BudgetUsage:
    name: str
    limit: int
    period_seconds: int | None  # None: in total, ever
    used: int
    remaining: int


@dataclass(frozen=True)
class CapUsageReport:
    campaign: str
    status: str
    status_reason: str | None
    as_of: datetime
    budgets: list[BudgetUsage]
    limits: dict[str, int | None]
    refused_last_24h: dict[str, int]
    messages_last_24h: dict[str, int]

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        return data


def cap_usage(db: Database, limiter: Limiter, slug: str, now: datetime | None = None) -> CapUsageReport:
    """Raises CampaignNotFound, or CapsUnavailable when Redis cannot be asked."""
    now = now or utcnow()
    since = now - timedelta(hours=24)
    with db.reading() as session:
        campaign = find_campaign(session, slug)
        refused = session.execute(
            select(Rejection.reason, func.count())
            .where(Rejection.campaign_id == campaign.id, Rejection.created_at >= since)
            .group_by(Rejection.reason)
        ).all()
        held = session.execute(
            select(Message.status, func.count())
            .join(Forward, Message.forward_id == Forward.id)
            .where(Forward.campaign_id == campaign.id, Message.created_at >= since)
            .group_by(Message.status)
        ).all()
        caps = CapSettings.from_overrides(campaign.caps)
        report_head = (campaign.slug, campaign.status, campaign.status_reason, campaign.id)
    # With no sender, address or network given, the rules left are the campaign's own budgets.
    budgets = submission_rules(caps, report_head[3], ip_hash=None, network_hash=None, sender_key=None, friends=1)
    return CapUsageReport(
        campaign=report_head[0],
        status=report_head[1],
        status_reason=report_head[2],
        as_of=now,
        budgets=[
            BudgetUsage(
                u.rule.name,
                u.rule.limit,
                None if u.rule.period is None else int(u.rule.period.total_seconds()),
                u.used,
                u.remaining,
            )
            for u in limiter.usage(budgets)
        ],
        limits=asdict(caps),
        refused_last_24h={reason: count for reason, count in refused},
        messages_last_24h={status: count for status, count in held},
    )


@dataclass(frozen=True)
class CapRow:
    """One cap as the console's usage page shows it. A cap counted per person (a sender, an
    address, a friend) has one count a person: `used` is None, its refusals say how it bites."""

    guide: CapGuide
    limit: int | None  # None: no cap
    used: int | None
    frees_at: datetime | None  # when what is used is all free again (None: nothing used, or a total)
    one_frees_every: timedelta | None  # GCRA frees the window's share steadily: one unit this often
    refused_last_24h: int

    @property
    def share(self) -> float | None:
        return None if self.used is None or not self.limit else min(1.0, self.used / self.limit)


def cap_rows(report: CapUsageReport) -> list[CapRow]:
    """Every cap of the report, in the campaign form's order, with its usage where it has one."""
    budgets = {budget.name: budget for budget in report.budgets}
    rows = []
    for guide in CAP_GUIDES:
        budget = budgets.get(guide.rule_name or "")
        limit = report.limits.get(guide.name)
        used = budget.used if budget is not None else (None if guide.per_person or limit is None else 0)
        window = guide.window
        step = window / limit if window is not None and limit else None
        # Each use keeps its share of the window (window / limit) booked: all of it is free once
        # `used` shares have passed.
        frees_at = report.as_of + step * used if step is not None and used else None
        refused = report.refused_last_24h.get(guide.rule_name or "", 0)
        rows.append(CapRow(guide, limit, used, frees_at, step, refused))
    return rows
