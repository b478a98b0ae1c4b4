"""Campaigns as the API shows them to integrators: what a campaign is, its state and its rules,
never its templates or contacts; listed a page at a time (engine.services.paging)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from engine.db import Database
from engine.models import Campaign, CampaignStatus
from engine.models.rewards import RewardProgram
from engine.services.lookups import find_campaign
from engine.services.paging import Slice, cut, keyset
from engine.services.rewards import incentives_refusal

STATUSES = tuple(status.value for status in CampaignStatus)


@dataclass(frozen=True)
class CampaignView:
    id: int
    slug: str
    name: str
    team: str
    brand_name: str
    offer_title: str
    status: str
    status_reason: str | None
    policy: str
    incentives_allowed: bool
    rewards_enabled: bool
    channels: tuple[str, ...]
    locales: tuple[str, ...]  # the first is the default
    phone_region: str | None
    coupon_mode: str
    starts_at: datetime | None
    ends_at: datetime | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = None  # put out of the console's list (engine.services.archive)

    def to_json(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "name": self.name,
            "team": self.team,
            "brand_name": self.brand_name,
            "offer_title": self.offer_title,
            "status": self.status,
            "status_reason": self.status_reason,
            "policy": self.policy,
            "incentives_allowed": self.incentives_allowed,
            "rewards_enabled": self.rewards_enabled,
            "channels": list(self.channels),
            "locales": list(self.locales),
            "phone_region": self.phone_region,
            "coupon_mode": self.coupon_mode,
            "starts_at": _iso(self.starts_at),
            "ends_at": _iso(self.ends_at),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "archived": self.archived_at is not None,
            "archived_at": _iso(self.archived_at),
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _view(campaign: Campaign, program: RewardProgram | None) -> CampaignView:
    allowed = incentives_refusal(campaign) is None
    return CampaignView(
        id=campaign.id,
        slug=campaign.slug,
        name=campaign.name,
        team=campaign.team,
        brand_name=campaign.brand_name,
        offer_title=campaign.offer_title,
        status=campaign.status,
        status_reason=campaign.status_reason,
        policy=campaign.policy_name,
        incentives_allowed=allowed,
        rewards_enabled=allowed and bool(program and program.enabled),
        channels=tuple(campaign.channels or ()),
        locales=tuple(campaign.locales or ()),
        phone_region=campaign.phone_region,
        coupon_mode=campaign.coupon_mode,
        starts_at=campaign.starts_at,
        ends_at=campaign.ends_at,
        created_at=campaign.created_at,
        updated_at=campaign.updated_at,
        archived_at=campaign.archived_at,
    )


def campaigns_after(
    db: Database, *, team: str | None, status: str | None, after: int | None, limit: int
) -> Slice[CampaignView]:
    """A page of campaigns (of `team`, of `status`), oldest first: new ones come at the end."""
    with db.reading() as session:
        query = select(Campaign, RewardProgram).outerjoin(RewardProgram, RewardProgram.campaign_id == Campaign.id)
        if team is not None:
            query = query.where(Campaign.team == team)
        if status is not None:
            query = query.where(Campaign.status == status)
        rows = session.execute(keyset(query, Campaign.id, after, limit)).all()
        views = [_view(campaign, program) for campaign, program in rows]
    return cut(views, limit, lambda view: view.id)


def campaign_view(db: Database, slug: str) -> CampaignView:
    """One campaign. Raises CampaignNotFound."""
    with db.reading() as session:
        campaign = find_campaign(session, slug)
        return _view(campaign, session.get(RewardProgram, campaign.id))
