"""Rewards for the API: a campaign's rewards a page at a time, with filters, and one reward by
its id (with the campaign it belongs to, for the checks the caller makes on it). Review itself
is engine.services.rewards.review."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from engine.db import Database
from engine.models import Campaign
from engine.models.rewards import Reward, RewardStatus
from engine.services.lookups import find_campaign
from engine.services.paging import Slice, cut, keyset
from engine.services.rewards import RewardNotFound, RewardView, _reward_rows, _view, incentives_refusal

MAX_ID = 2**31 - 1  # ids are PostgreSQL integers


@dataclass(frozen=True)
class RewardsOf:
    """Whose rewards: the campaign, its team, and why it may have none (its policy)."""

    slug: str
    team: str
    refusal: str | None


def rewards_after(
    db: Database,
    slug: str,
    *,
    status: RewardStatus | None,
    flagged: bool | None,
    after: int | None,
    limit: int,
) -> tuple[RewardsOf, Slice[RewardView]]:
    """A page of the campaign's rewards, oldest first (the order they wait for review in).
    Raises CampaignNotFound."""
    with db.reading() as session:
        campaign = find_campaign(session, slug)
        query = _reward_rows().where(Reward.campaign_id == campaign.id)
        if status is not None:
            query = query.where(Reward.status == status.value)
        if flagged is not None:
            query = query.where(Reward.flagged.is_(flagged))
        rows = session.execute(keyset(query, Reward.id, after, limit)).all()
        views = [_view(*row) for row in rows]
        owner = _owner(campaign)
    return owner, cut(views, limit, lambda view: view.id)


def reward_by_id(db: Database, reward_id: int) -> tuple[RewardsOf, RewardView]:
    """One reward and its campaign. Raises RewardNotFound."""
    if not 0 < reward_id <= MAX_ID:
        raise RewardNotFound(f"no reward {reward_id}")  # PostgreSQL would refuse to compare it
    with db.reading() as session:
        row = session.execute(_reward_rows().where(Reward.id == reward_id)).one_or_none()
        if row is None:
            raise RewardNotFound(f"no reward {reward_id}")
        campaign = session.scalar(select(Campaign).where(Campaign.id == row[0].campaign_id))
        assert campaign is not None  # a reward's campaign is its foreign key
        return _owner(campaign), _view(*row)


def _owner(campaign: Campaign) -> RewardsOf:
    return RewardsOf(campaign.slug, campaign.team, incentives_refusal(campaign))
