"""Double-sided rewards: the friend's coupon, and the referrer's reward when the friend converts.

A reward is made in the transaction that records a redemption (engine.services.coupons.redeem)
when the campaign's consent policy allows incentives and its reward program is switched on.
The referrer is the sender of the forward the redeemed code was given to: the person who
invited the friend who converted.

Every reward is held until a marketer reviews it ("rewards held for review before release");
the fraud filters below only say what the reviewer should look at (`Reward.flags`). Each filter
works on what Fluister keeps, which for people is mostly keyed hashes:

- self-referral: a contact known to be the referrer's is also known to be the friend's (the
  referrer invited their own address, or the "friend" forwarded on under the referrer's contact);
- same IP: the friend clicked the invitation from the address the referrer sent it from;
- repeated device: one device (user agent and address) clicked the invitations of several of
  the referrer's converting friends;
- disposable address: the friend's address, while the policy still keeps it, is at a
  throwaway mail service.

The contest leaderboard ranks referrers by their converted friends, counting only eligible
rewards (`ELIGIBLE`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from engine.contacts import Contact, InvalidContact, is_disposable
from engine.db import Database, utcnow
from engine.models import Campaign, Click, Coupon, Forward, Redemption
from engine.models.rewards import Reward, RewardFlag, RewardProgram, RewardStatus
from engine.policy import PolicyError, policy_for
from engine.services.analytics import sender_key_expression
from engine.services.lookups import find_campaign

log = logging.getLogger(__name__)

MAX_REASON_LENGTH = 500
MAX_DESCRIPTION_LENGTH = 500
TOP_REFERRERS = 20
# A device behind this many of one referrer's converting friends is one person, not several.
REPEATED_DEVICE_FRIENDS = 2

# What counts on the leaderboard: an approved reward (a reviewer has weighed any flags), or
# one still held that no fraud filter flagged. Rejected rewards never count.
ELIGIBLE: ColumnElement[bool] = or_(
    Reward.status == RewardStatus.APPROVED.value,
    and_(Reward.status == RewardStatus.HELD.value, Reward.flagged.is_(False)),
)


class RewardNotFound(LookupError):
    pass


class RewardsNotAllowed(Exception):
    """The campaign's consent policy allows no incentives; the message says so for people."""


class AlreadyReviewed(Exception):
    def __init__(self, status: str) -> None:
        super().__init__(f"this reward was {status} already")
        self.status = status


# -- the fraud filters: small functions of what is known about one conversion ---------------------


@dataclass(frozen=True)
class Device:
    """A browser as a click recorded it: its user agent and its (hashed) address."""

    user_agent: str
    ip_hash: str

    def __post_init__(self) -> None:
        if not self.user_agent or not self.ip_hash:
            raise ValueError("a device is known by both its user agent and its address")


@dataclass(frozen=True)
class ConversionFacts:
    """What Fluister knows of a conversion, the referrer and the friend who converted."""

    # Contact hashes known to be the referrer's: the contact they gave with the invitation,
    # and the contact the forward they arrived through was sent to.
    referrer_contacts: frozenset[str]
    # Contact hashes known to be the friend's: the invitation's recipient, and the contacts
    # the friend gave when forwarding on.
    friend_contacts: frozenset[str]
    # Where the referrer sent the invitation from (hashed).
    referrer_ip_hash: str | None
    # The devices that clicked the invitation.
    friend_devices: frozenset[Device]
    # The devices that clicked the invitations of the referrer's other converting friends.
    other_friends_devices: frozenset[Device]
    # The friend's address, while the campaign's policy keeps it (None once purged).
    friend_address: Contact | None = None

    def __post_init__(self) -> None:
        if not self.friend_contacts:
            raise ValueError("the friend's contact hash is always known")


def is_self_referral(facts: ConversionFacts) -> bool:
    return bool(facts.referrer_contacts & facts.friend_contacts)


def shares_referrer_ip(facts: ConversionFacts) -> bool:
    return facts.referrer_ip_hash is not None and any(d.ip_hash == facts.referrer_ip_hash for d in facts.friend_devices)


def has_repeated_device(facts: ConversionFacts) -> bool:
    # This friend and at least one other converting friend of the referrer: REPEATED_DEVICE_FRIENDS.
    return bool(facts.friend_devices & facts.other_friends_devices)


def has_disposable_address(facts: ConversionFacts) -> bool:
    return facts.friend_address is not None and is_disposable(facts.friend_address)


FILTERS = (
    (RewardFlag.SELF_REFERRAL, is_self_referral),
    (RewardFlag.SAME_IP, shares_referrer_ip),
    (RewardFlag.REPEATED_DEVICE, has_repeated_device),
    (RewardFlag.DISPOSABLE_ADDRESS, has_disposable_address),
)


def fraud_flags(facts: ConversionFacts) -> list[RewardFlag]:
    """The flags of every filter that found something, in a fixed order."""
    return [flag for flag, found in FILTERS if found(facts)]


# -- making a reward (inside the redemption's transaction) -----------------------------------------


def incentives_refusal(campaign: Campaign) -> str | None:
    """Why this campaign may not reward anyone, or None when its policy allows incentives."""
    try:
        policy = policy_for(campaign.policy_name, campaign.policy_settings)
    except PolicyError as error:
        return _("Its consent policy cannot be read (%(error)s).", error=str(error))
    if not policy.incentives:
        return _(
            "Its consent policy (%(policy)s) allows no incentives: forwarding must not be rewarded.",
            policy=policy.name,
        )
    return None


def record_reward(session: Session, campaign: Campaign, redemption: Redemption) -> Reward | None:
    """The referrer's reward for this redemption, held for review with what the fraud filters
    found; None when the code was given to no friend, the policy allows no incentives or the
    campaign's rewards are off. Runs in the redemption's transaction: both are written or neither."""
    if redemption.forward_id is None or incentives_refusal(campaign) is not None:
        return None
    program = session.get(RewardProgram, campaign.id)
    if program is None or not program.enabled:
        return None
    forward = session.get(Forward, redemption.forward_id)
    assert forward is not None
    referrer_key = session.scalar(select(sender_key_expression()).where(Forward.id == forward.id))
    assert referrer_key is not None
    others = _devices_of_other_friends(session, campaign.id, referrer_key)
    facts = _facts(session, forward, frozenset().union(*others.values()))
    flags = fraud_flags(facts)
    reward = Reward(
        campaign_id=campaign.id,
        redemption_id=redemption.id,
        forward_id=forward.id,
        referrer_key=referrer_key,
        referrer_name=forward.sender_name,
        status=RewardStatus.HELD.value,
        flags=[flag.value for flag in flags],
        flagged=bool(flags),
        created_at=utcnow(),
    )
    session.add(reward)
    if RewardFlag.REPEATED_DEVICE in flags:
        _flag_earlier_friends(session, others, facts.friend_devices)
    session.flush()
    log.info("campaign %s: reward %d held for review (flags: %s)", campaign.slug, reward.id, flags or "none")
    return reward


def _facts(session: Session, forward: Forward, other_friends_devices: frozenset[Device]) -> ConversionFacts:
    referrer_contacts = {forward.sender_contact_hash}
    if forward.parent is not None:
        referrer_contacts.add(forward.parent.recipient_contact_hash)
    friend_contacts = {forward.recipient_contact_hash}
    friend_contacts.update(
        session.scalars(
            select(Forward.sender_contact_hash).where(
                Forward.parent_id == forward.id, Forward.sender_contact_hash.is_not(None)
            )
        )
    )
    return ConversionFacts(
        referrer_contacts=frozenset(c for c in referrer_contacts if c),
        friend_contacts=frozenset(c for c in friend_contacts if c),
        referrer_ip_hash=forward.client_ip_hash,
        friend_devices=frozenset(_devices(session, [forward.id]).get(forward.id, ())),
        other_friends_devices=other_friends_devices,
        friend_address=_stored_address(forward),
    )


def _stored_address(forward: Forward) -> Contact | None:
    if not forward.recipient_contact:
        return None
    try:
        return Contact(forward.channel, forward.recipient_contact)
    except InvalidContact:
        return None


def _devices(session: Session, forward_ids: Iterable[int]) -> dict[int, set[Device]]:
    rows = session.execute(
        select(Click.forward_id, Click.user_agent, Click.client_ip_hash).where(
            Click.forward_id.in_(list(forward_ids)), Click.user_agent.is_not(None), Click.client_ip_hash.is_not(None)
        )
    )
    devices: dict[int, set[Device]] = {}
    for forward_id, user_agent, ip_hash in rows:
        if user_agent and ip_hash:
            devices.setdefault(forward_id, set()).add(Device(user_agent, ip_hash))
    return devices


def _devices_of_other_friends(session: Session, campaign_id: int, referrer_key: str) -> dict[int, set[Device]]:
    """The devices that clicked each of the referrer's earlier rewarded invitations, by reward id."""
    rows = session.execute(
        select(Reward.forward_id, Reward.id).where(
            Reward.campaign_id == campaign_id, Reward.referrer_key == referrer_key
        )
    )
    rewards = {forward_id: reward_id for forward_id, reward_id in rows}
    if not rewards:
        return {}
    return {rewards[forward_id]: found for forward_id, found in _devices(session, rewards).items()}


def _flag_earlier_friends(session: Session, others: dict[int, set[Device]], devices: frozenset[Device]) -> None:
    """The device seen again flags the earlier conversions it was behind too, while they are held."""
    for reward_id, seen in others.items():
        if not seen & devices:
            continue
        earlier = session.get(Reward, reward_id)
        if earlier is None or earlier.status != RewardStatus.HELD or RewardFlag.REPEATED_DEVICE in earlier.flags:
            continue
        earlier.flags = [*earlier.flags, RewardFlag.REPEATED_DEVICE.value]
        earlier.flagged = True


# -- the reward program (a campaign setting) --------------------------------------------------------


@dataclass(frozen=True)
class ProgramSettings:
    enabled: bool
    description: str

    def __post_init__(self) -> None:
        if len(self.description) > MAX_DESCRIPTION_LENGTH:
            raise ValueError(f"the description is longer than {MAX_DESCRIPTION_LENGTH} characters")
        if self.enabled and not self.description.strip():
            raise ValueError("say what a referrer earns for each friend who converts")


@dataclass(frozen=True)
class ProgramView:
    campaign: str
    enabled: bool
    description: str
    refusal: str | None  # why rewards cannot be switched on, if they cannot


def reward_program(db: Database, slug: str) -> ProgramView:
    with db.reading() as session:
        campaign = find_campaign(session, slug)
        program = session.get(RewardProgram, campaign.id)
        return ProgramView(
            campaign=campaign.slug,
            enabled=bool(program and program.enabled),
            description=program.description if program else "",
            refusal=incentives_refusal(campaign),
        )


def set_program(db: Database, slug: str, settings: ProgramSettings) -> None:
    """Switch the campaign's rewards on or off. Raises CampaignNotFound, or RewardsNotAllowed when
    switching on under a policy without incentives (off is always allowed)."""
    with db.transaction() as session:
        campaign = find_campaign(session, slug)
        refusal = incentives_refusal(campaign)
        if settings.enabled and refusal:
            raise RewardsNotAllowed(refusal)
        program = session.get(RewardProgram, campaign.id) or RewardProgram(campaign_id=campaign.id)
        program.enabled = settings.enabled
        program.description = settings.description.strip()
        program.updated_at = utcnow()
        session.add(program)
    log.info("campaign %s: rewards %s", slug, "on" if settings.enabled else "off")


# -- review ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewDecision:
    approve: bool
    reviewer: str
    reason: str | None = None

    def __post_init__(self) -> None:
        if not self.reviewer:
            raise ValueError("a review names its reviewer")
        reason = (self.reason or "").strip()
        if not self.approve and not reason:
            raise ValueError("say why the reward is rejected")
        if len(reason) > MAX_REASON_LENGTH:
            raise ValueError(f"the reason is longer than {MAX_REASON_LENGTH} characters")


@dataclass(frozen=True)
class RewardView:
    id: int
    referrer_name: str
    forward: str  # the public id of the invitation the friend converted through
    generation: int
    code: str
    redeemed_at: datetime
    status: str
    flags: tuple[str, ...]
    reason: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "referrer_name": self.referrer_name,
            "forward": self.forward,
            "generation": self.generation,
            "code": self.code,
            "redeemed_at": self.redeemed_at.isoformat(),
            "status": self.status,
            "flags": list(self.flags),
            "reason": self.reason,
            "reviewed_by": self.reviewed_by,
            "reviewed_at": self.reviewed_at.isoformat() if self.reviewed_at else None,
        }


def list_rewards(db: Database, slug: str, status: RewardStatus | None = None, limit: int = 200) -> list[RewardView]:
    """The campaign's rewards (of a status), oldest first: the order they wait for review in."""
    with db.reading() as session:
        campaign = find_campaign(session, slug)
        query = _reward_rows().where(Reward.campaign_id == campaign.id)
        if status is not None:
            query = query.where(Reward.status == status.value)
        rows = session.execute(query.order_by(Reward.id).limit(limit))
        return [_view(*row) for row in rows]


def review(db: Database, slug: str, reward_id: int, decision: ReviewDecision) -> RewardView:
    """Approve or reject a held reward. Raises CampaignNotFound, RewardNotFound, AlreadyReviewed."""
    with db.transaction() as session:
        campaign = find_campaign(session, slug)
        reward = session.scalar(
            select(Reward).where(Reward.id == reward_id, Reward.campaign_id == campaign.id).with_for_update()
        )
        if reward is None:
            raise RewardNotFound(f"campaign {slug} has no reward {reward_id}")
        if reward.status != RewardStatus.HELD:
            raise AlreadyReviewed(reward.status)
        reward.status = (RewardStatus.APPROVED if decision.approve else RewardStatus.REJECTED).value
        reward.reason = None if decision.approve else (decision.reason or "").strip()
        reward.reviewed_by = decision.reviewer
        reward.reviewed_at = utcnow()
        session.flush()
        row = session.execute(_reward_rows().where(Reward.id == reward.id)).one()
        view = _view(*row)
    log.info("campaign %s: reward %d %s by %s", slug, reward_id, view.status, decision.reviewer)
    return view


def _reward_rows() -> Any:
    return (
        select(Reward, Forward.public_id, Forward.generation, Coupon.code, Redemption.created_at)
        .join(Forward, Forward.id == Reward.forward_id)
        .join(Redemption, Redemption.id == Reward.redemption_id)
        .join(Coupon, Coupon.id == Redemption.coupon_id)
    )


def _view(reward: Reward, public_id: str, generation: int, code: str, redeemed_at: datetime) -> RewardView:
    return RewardView(
        id=reward.id,
        referrer_name=reward.referrer_name,
        forward=public_id,
        generation=generation,
        code=code,
        redeemed_at=redeemed_at,
        status=reward.status,
        flags=tuple(reward.flags),
        reason=reward.reason,
        reviewed_by=reward.reviewed_by,
        reviewed_at=reward.reviewed_at,
    )


# -- the contest leaderboard ------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaderboardEntry:
    rank: int
    sender_name: str
    converted_friends: int  # eligible rewards
    approved: int  # of which a reviewer approved

    def __post_init__(self) -> None:
        if self.rank < 1 or self.converted_friends < 1 or not 0 <= self.approved <= self.converted_friends:
            raise ValueError("a referrer on the leaderboard has at least one eligible converted friend")


@dataclass(frozen=True)
class Leaderboard:
    campaign: str
    as_of: datetime
    rewards_enabled: bool
    entries: list[LeaderboardEntry]

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "as_of": self.as_of.isoformat(),
            "rewards_enabled": self.rewards_enabled,
            "referrers": [
                {
                    "rank": e.rank,
                    "sender_name": e.sender_name,
                    "converted_friends": e.converted_friends,
                    "approved": e.approved,
                }
                for e in self.entries
            ],
        }


def leaderboard(db: Database, slug: str, limit: int = TOP_REFERRERS) -> Leaderboard:
    """The top referrers by converted friends (eligible rewards only); ties go to whoever got
    there first. Referrers are named by the sender name they typed."""
    with db.reading() as session:
        campaign = find_campaign(session, slug)
        program = session.get(RewardProgram, campaign.id)
        converted = func.count().label("converted")
        rows = session.execute(
            select(
                Reward.referrer_key,
                func.max(Reward.referrer_name),
                converted,
                func.sum(case((Reward.status == RewardStatus.APPROVED.value, 1), else_=0)),
            )
            .where(Reward.campaign_id == campaign.id, ELIGIBLE)
            .group_by(Reward.referrer_key)
            .order_by(converted.desc(), func.min(Reward.id), Reward.referrer_key)
            .limit(limit)
        ).all()
        entries = [
            LeaderboardEntry(rank, name, int(count), int(approved or 0))
            for rank, (_key, name, count, approved) in enumerate(rows, 1)
        ]
        return Leaderboard(campaign.slug, utcnow(), bool(program and program.enabled), entries)
