"""The console's list of campaigns: each with its status, its reach, its K and its forwards of
the last 30 days, found by a search and a status filter.

The figures are the analytics roll-ups as their last refresh left them (the scheduler
refreshes every started campaign every ANALYTICS_REFRESH_EVERY_SECONDS; a dashboard read
refreshes a small one at once), never computed here: the list is two queries however many
campaigns it shows, one for the campaigns with their overall slice (`metric_cells`), one for
their forwards per day (`daily_forwards`). K is the dashboard's own (SliceMetrics.k).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from sqlalchemy import Select, and_, func, or_, select

from engine.db import Database
from engine.models import Campaign, CampaignStatus, DailyForwards, MetricCell
from engine.services.analytics.figures import ALL_CHANNELS, ALL_GENERATIONS, COUNT_COLUMNS, SliceMetrics
from engine.services.campaigns import may_archive

SPARKLINE_DAYS = 30
MAX_QUERY = 200  # characters of a search: longer is no name, slug or brand


class ListFilter(StrEnum):
    """What the status filter offers: every campaign not archived (the default), one status,
    or the archived ones (which no other choice shows)."""

    CURRENT = ""
    DRAFT = CampaignStatus.DRAFT.value
    ACTIVE = CampaignStatus.ACTIVE.value
    PAUSED = CampaignStatus.PAUSED.value
    ENDED = CampaignStatus.ENDED.value
    ARCHIVED = "archived"


class Badge(StrEnum):
    """What the list says a campaign is, in a word a reader knows (the page translates it)."""

    DRAFT = "draft"
    LIVE = "live"
    SENDING_PAUSED = "sending-paused"  # paused itself: its page still takes forwards
    PAUSED = "paused"
    ENDED = "ended"
    ARCHIVED = "archived"


@dataclass(frozen=True)
class CampaignRow:
    slug: str
    name: str
    brand_name: str
    policy_name: str
    status: str
    status_reason: str | None
    badge: Badge
    reach: int  # people reached: invitations sent (each friend is invited once per campaign)
    k: float | None  # None: no senders yet
    forwards_by_day: tuple[int, ...]  # SPARKLINE_DAYS values, the oldest first, today last
    archived: bool
    may_archive: bool = False  # not archived, and not live (engine.services.archive)


def campaign_rows(
    db: Database, *, today: date, team: str | None = None, query: str = "", shown: ListFilter = ListFilter.CURRENT
) -> list[CampaignRow]:
    """The campaigns (of `team`) that match `query` (in their name, slug or brand, any case)
    and the filter, newest first, with their figures; `today` is the last day of the sparkline
    (a UTC day, as the roll-ups count them)."""
    first_day = today - timedelta(days=SPARKLINE_DAYS - 1)
    campaigns = _matching(select(Campaign.id), team, query.strip()[:MAX_QUERY], shown)
    with db.reading() as session:
        overall = and_(
            MetricCell.campaign_id == Campaign.id,
            MetricCell.generation == ALL_GENERATIONS,
            MetricCell.channel == ALL_CHANNELS,
        )
        rows = session.execute(
            select(Campaign, MetricCell)
            .outerjoin(MetricCell, overall)
            .where(Campaign.id.in_(campaigns))
            .order_by(Campaign.created_at.desc(), Campaign.id.desc())
        ).all()
        days = session.execute(
            select(DailyForwards.campaign_id, DailyForwards.day, func.sum(DailyForwards.forwards))
            .where(DailyForwards.campaign_id.in_(campaigns), DailyForwards.day >= first_day)
            .group_by(DailyForwards.campaign_id, DailyForwards.day)
        ).all()
        by_day: dict[int, dict[date, int]] = {}
        for campaign_id, day, forwards in days:
            by_day.setdefault(campaign_id, {})[day] = int(forwards or 0)
        period = [first_day + timedelta(days=n) for n in range(SPARKLINE_DAYS)]
        return [_row(campaign, cell, _days(by_day.get(campaign.id, {}), period)) for campaign, cell in rows]


def _days(forwards: dict[date, int], period: list[date]) -> tuple[int, ...]:
    return tuple(forwards.get(day, 0) for day in period)


def _matching(ids: Select[tuple[int]], team: str | None, query: str, shown: ListFilter) -> Select[tuple[int]]:
    if team is not None:
        ids = ids.where(Campaign.team == team)
    if query:
        ids = ids.where(
            or_(
                Campaign.name.icontains(query, autoescape=True),
                Campaign.slug.icontains(query, autoescape=True),
                Campaign.brand_name.icontains(query, autoescape=True),
            )
        )
    if shown is ListFilter.ARCHIVED:
        return ids.where(Campaign.archived_at.is_not(None))
    ids = ids.where(Campaign.archived_at.is_(None))
    return ids if shown is ListFilter.CURRENT else ids.where(Campaign.status == shown.value)


def _row(campaign: Campaign, cell: MetricCell | None, forwards_by_day: tuple[int, ...]) -> CampaignRow:
    overall = SliceMetrics(
        generation=None,
        channel=None,
        visitors=0,  # not read: neither reach nor K needs the landing views
        cycle_time_seconds=None,
        **{name: getattr(cell, name) if cell else 0 for name in COUNT_COLUMNS},
    )
    return CampaignRow(
        slug=campaign.slug,
        name=campaign.name,
        brand_name=campaign.brand_name,
        policy_name=campaign.policy_name,
        status=campaign.status,
        status_reason=campaign.status_reason,
        badge=_badge(campaign),
        reach=overall.invitees,
        k=overall.k,
        forwards_by_day=forwards_by_day,
        archived=campaign.archived_at is not None,
        may_archive=campaign.archived_at is None and may_archive(campaign.status, campaign.paused_automatically),
    )


def _badge(campaign: Campaign) -> Badge:
    if campaign.archived_at is not None:
        return Badge.ARCHIVED
    if campaign.status == CampaignStatus.PAUSED and campaign.paused_automatically:
        return Badge.SENDING_PAUSED
    return {
        CampaignStatus.DRAFT: Badge.DRAFT,
        CampaignStatus.ACTIVE: Badge.LIVE,
        CampaignStatus.PAUSED: Badge.PAUSED,
        CampaignStatus.ENDED: Badge.ENDED,
    }[CampaignStatus(campaign.status)]
