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

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from engine.contacts import Contact, InvalidContact, is_disposable
from engine.db import Database, utcnow
from engine.models import Campaign, Click, Coupon, Forward, Redemption
from engine.models.rewards import PayoutState, Reward, RewardFlag, RewardProgram, RewardStatus
from engine.policy import PolicyError, policy_for
from engine.services.analytics import sender_key_expression
from engine.services.lookups import find_campaign
from engine.services.reward_history import SYSTEM_ACTOR, HistoryEntry, Step, history, note
from engine.services.reward_rules import Money, Order, ProgrammeKind, Referrals, RewardRules, decide
from engine.services.webhooks import publish

log = logging.getLogger(__name__)

MAX_REASON_LENGTH = 500
MAX_DESCRIPTION_LENGTH = 500
TOP_REFERRERS = 20
# A device behind this many of one referrer's converting friends is one person, not several.
REPEATED_DEVICE_FRIENDS = 2

# What counts on the leaderboard: an approved reward (a reviewer has weighed any flags), or
# one still held that no fraud filter flagged. Rejected rewards never count.
ELIGIBLE: ColumnElement[bool] = or_(
    Reward.status.in_([RewardStatus.APPROVED.value, RewardStatus.PAID.value]),
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


def record_reward(
    session: Session,
    campaign: Campaign,
    redemption: Redemption,
    order: Order | None = None,
    now: datetime | None = None,
) -> Reward | None:
    """The referrer's reward for this redemption, held for review with what the fraud filters
    found; None when the code was given to no friend, the policy allows no incentives, the
    campaign's rewards are off or the programme's rules give nothing for it (under the minimum
    order, not a new customer, over the cap, between milestones). Marks the redemption as
    qualifying when it met the rules. Runs in the redemption's transaction: all of it is
    written or none."""
    if redemption.forward_id is None or incentives_refusal(campaign) is not None:
        return None
    program = session.get(RewardProgram, campaign.id)
    if program is None or not program.enabled:
        return None
    now = now or utcnow()
    rules = programme_rules(program)
    forward = session.get(Forward, redemption.forward_id)
    assert forward is not None
    referrer_key = session.scalar(select(sender_key_expression()).where(Forward.id == forward.id))
    assert referrer_key is not None
    _lock_referrer(session, campaign.id, referrer_key)
    verdict = decide(rules, order or Order(), _referrals(session, campaign.id, referrer_key, redemption.id))
    redemption.qualifies = verdict.qualifies
    if not verdict.earns:
        log.info("campaign %s: redemption %d earns no reward: %s", campaign.slug, redemption.id, verdict.why)
        return None
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
        created_at=now,
        description=verdict.milestone.description if verdict.milestone else program.description,
        milestone=verdict.milestone.friends if verdict.milestone else None,
        payable_at=now + timedelta(days=rules.hold_days),
        payout_method=rules.payout.value,
    )
    session.add(reward)
    if RewardFlag.REPEATED_DEVICE in flags:
        _flag_earlier_friends(session, others, facts.friend_devices)
    session.flush()
    note(session, reward.id, SYSTEM_ACTOR, Step.EARNED, now, why=verdict.why, flags=reward.flags)
    publish(session, "reward.earned", reward_event(campaign, reward), now=reward.created_at)
    log.info("campaign %s: reward %d held for review (flags: %s)", campaign.slug, reward.id, flags or "none")
    return reward


def programme_rules(program: RewardProgram | None) -> RewardRules:
    """The programme's rules; the defaults (a reward per friend, paid by the shop) for a
    programme saved before rules existed."""
    if program is None:
        return RewardRules()
    try:
        return RewardRules.from_json(program.rules)
    except ValueError:
        log.exception("campaign %s: the reward rules cannot be read; the defaults apply", program.campaign_id)
        return RewardRules()


def _lock_referrer(session: Session, campaign_id: int, referrer_key: str) -> None:
    # Two friends of one referrer converting at once must not both reach the same milestone or
    # both slip under the cap: their rewards are decided one after the other. (SQLite's writers
    # take turns anyway.)
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.blake2b(f"referrer:{campaign_id}:{referrer_key}".encode(), digest_size=8).digest()
        session.execute(select(func.pg_advisory_xact_lock(int.from_bytes(digest, "big", signed=True))))


def _referrals(session: Session, campaign_id: int, referrer_key: str, redemption_id: int) -> Referrals:
    qualifying = session.scalar(
        select(func.count())
        .select_from(Redemption)
        .join(Forward, Forward.id == Redemption.forward_id)
        .where(
            Redemption.campaign_id == campaign_id,
            Redemption.qualifies.is_(True),
            Redemption.id != redemption_id,
            sender_key_expression() == referrer_key,
        )
    )
    rewards = session.scalar(
        select(func.count()).where(
            Reward.campaign_id == campaign_id,
            Reward.referrer_key == referrer_key,
            Reward.status != RewardStatus.REJECTED.value,
        )
    )
    return Referrals(qualifying=int(qualifying or 0), rewards=int(rewards or 0))


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
            Click.forward_id.in_(list(forward_ids)),
            Click.user_agent.is_not(None),
            Click.client_ip_hash.is_not(None),
            # A link preview or a mail scanner is nobody's device.
            Click.prefetch.is_(False),
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
    rules: RewardRules = field(default_factory=RewardRules)

    def __post_init__(self) -> None:
        if len(self.description) > MAX_DESCRIPTION_LENGTH:
            raise ValueError(f"the description is longer than {MAX_DESCRIPTION_LENGTH} characters")
        if self.enabled and not self.description.strip() and self.rules.kind is ProgrammeKind.SINGLE:
            raise ValueError("say what a referrer earns for each friend who converts")


@dataclass(frozen=True)
class ProgramView:
    campaign: str
    enabled: bool
    description: str
    refusal: str | None  # why rewards cannot be switched on, if they cannot
    rules: RewardRules = field(default_factory=RewardRules)


def reward_program(db: Database, slug: str) -> ProgramView:
    with db.reading() as session:
        campaign = find_campaign(session, slug)
        program = session.get(RewardProgram, campaign.id)
        return ProgramView(
            campaign=campaign.slug,
            enabled=bool(program and program.enabled),
            description=program.description if program else "",
            refusal=incentives_refusal(campaign),
            rules=programme_rules(program),
        )


def set_program(db: Database, slug: str, settings: ProgramSettings) -> None:
    """Switch the campaign's rewards on or off, with their rules. Raises CampaignNotFound, or
    RewardsNotAllowed when switching on under a policy without incentives (off is always allowed)."""
    with db.transaction() as session:
        campaign = find_campaign(session, slug)
        refusal = incentives_refusal(campaign)
        if settings.enabled and refusal:
            raise RewardsNotAllowed(refusal)
        program = session.get(RewardProgram, campaign.id) or RewardProgram(campaign_id=campaign.id)
        program.enabled = settings.enabled
        program.description = settings.description.strip()
        program.rules = settings.rules.to_json()
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
class RewardFilter:
    """Which of a campaign's rewards a list, a bulk review or an export takes."""

    status: RewardStatus | None = None
    flagged: bool | None = None
    created_from: datetime | None = None  # earned at or after
    created_to: datetime | None = None  # earned before
    referrer: str = ""  # a part of the referrer's name, or their key exactly
    ids: tuple[int, ...] = ()  # only these rewards (none: any)

    def __post_init__(self) -> None:
        if self.created_from and self.created_to and self.created_from >= self.created_to:
            raise ValueError("the date range ends before it starts")
        if len(self.referrer) > 160:
            raise ValueError("the referrer to look for is longer than 160 characters")

    def where(self) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        if self.ids:
            clauses.append(Reward.id.in_(self.ids))
        if self.status is not None:
            clauses.append(Reward.status == self.status.value)
        if self.flagged is not None:
            clauses.append(Reward.flagged.is_(self.flagged))
        if self.created_from is not None:
            clauses.append(Reward.created_at >= self.created_from)
        if self.created_to is not None:
            clauses.append(Reward.created_at < self.created_to)
        if self.referrer.strip():
            needle = self.referrer.strip()
            escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append(or_(Reward.referrer_key == needle, Reward.referrer_name.ilike(f"%{escaped}%", escape="\\")))
        return clauses


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
    description: str = ""
    milestone: int | None = None
    order_id: str | None = None
    order_total: str | None = None  # "42.50 EUR"
    payable_at: datetime | None = None
    payout_method: str = ""
    payout_state: str | None = None
    payout_code: str | None = None
    payout_reference: str | None = None
    paid_by: str | None = None
    paid_at: datetime | None = None
    created_at: datetime | None = None

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
            "description": self.description,
            "milestone": self.milestone,
            "order_id": self.order_id,
            "order_total": self.order_total,
            "payable_at": self.payable_at.isoformat() if self.payable_at else None,
            "payout": {
                "method": self.payout_method,
                "state": self.payout_state,
                "reference": self.payout_reference,
                "paid_by": self.paid_by,
                "paid_at": self.paid_at.isoformat() if self.paid_at else None,
            },
        }


def list_rewards(
    db: Database, slug: str, status: RewardStatus | None = None, limit: int = 200, *, where: RewardFilter | None = None
) -> list[RewardView]:
    """The campaign's rewards (of a status, or matching a filter), oldest first: the order they
    wait for review in."""
    where = where or RewardFilter(status=status)
    with db.reading() as session:
        campaign = find_campaign(session, slug)
        query = _reward_rows().where(Reward.campaign_id == campaign.id, *where.where())
        rows = session.execute(query.order_by(Reward.id).limit(limit))
        return [_view(*row) for row in rows]


def review(
    db: Database, slug: str, reward_id: int, decision: ReviewDecision, now: datetime | None = None
) -> RewardView:
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
        _decide(session, campaign, reward, decision, now or utcnow())
        session.flush()
        row = session.execute(_reward_rows().where(Reward.id == reward.id)).one()
        view = _view(*row)
    log.info("campaign %s: reward %d %s by %s", slug, reward_id, view.status, decision.reviewer)
    return view


def reward_event(campaign: Campaign, reward: Reward) -> dict[str, Any]:
    """What a webhook says of a reward (`reward.earned`, `reward.approved`, `reward.paid`): ids,
    the referrer's key as it may leave, its status and the filters' flags; never the referrer's
    name. Publish it after the reward's status changed, in that transaction."""
    return {
        "campaign": campaign.slug,
        "reward": reward.id,
        "redemption": reward.redemption_id,
        "referrer_key": _shareable_referrer_key(reward.referrer_key),
        "status": reward.status,
        "flags": list(reward.flags),
        # How it is paid out (`coupon`, `webhook`) and from when: a shop paying by webhook pays
        # once the hold period is over, then confirms with POST /api/v1/rewards/<id>/paid.
        "payout_method": reward.payout_method,
        "payable_at": reward.payable_at.isoformat() if reward.payable_at else None,
    }


def _shareable_referrer_key(referrer_key: str) -> str:
    """The referrer's key as a webhook may carry it. A contact's keyed hash (`c:`) and the forward
    they came through (`p:`, a row id) are already pseudonyms; a direct visitor's key (`a:`) holds
    the name they typed, so it leaves as a digest, the same one each time."""
    if referrer_key.startswith("a:"):
        return "a:" + hashlib.sha256(referrer_key.encode()).hexdigest()
    return referrer_key


@dataclass(frozen=True)
class BulkReview:
    decided: list[int]  # the rewards this review approved or rejected
    skipped: int  # matched, but no longer held (someone else decided them meanwhile)


MAX_BULK = 1000


def review_many(
    db: Database, slug: str, where: RewardFilter, decision: ReviewDecision, now: datetime | None = None
) -> BulkReview:
    """Approve or reject every held reward the filter matches (at most MAX_BULK at once), in one
    transaction. Rewards already reviewed are left as they are. Raises CampaignNotFound."""
    now = now or utcnow()
    with db.transaction() as session:
        campaign = find_campaign(session, slug)
        rewards = session.scalars(
            select(Reward)
            .where(Reward.campaign_id == campaign.id, *where.where())
            .order_by(Reward.id)
            .limit(MAX_BULK)
            .with_for_update()
        ).all()
        decided: list[int] = []
        for reward in rewards:
            if reward.status != RewardStatus.HELD:
                continue
            _decide(session, campaign, reward, decision, now)
            decided.append(reward.id)
    log.info(
        "campaign %s: %d rewards %s in bulk by %s",
        slug,
        len(decided),
        "approved" if decision.approve else "rejected",
        decision.reviewer,
    )
    return BulkReview(decided, len(rewards) - len(decided))


def _decide(session: Session, campaign: Campaign, reward: Reward, decision: ReviewDecision, now: datetime) -> None:
    reward.status = (RewardStatus.APPROVED if decision.approve else RewardStatus.REJECTED).value
    reward.reason = None if decision.approve else (decision.reason or "").strip()
    reward.reviewed_by = decision.reviewer
    reward.reviewed_at = now
    if decision.approve:
        # Paid out by the payout pass (engine.services.payouts) once the hold period is over.
        reward.payout_state = PayoutState.WAITING_HOLD.value
        note(session, reward.id, decision.reviewer, Step.APPROVED, now)
        publish(session, "reward.approved", reward_event(campaign, reward), now=now)
    else:
        note(session, reward.id, decision.reviewer, Step.REJECTED, now, reason=reward.reason)


def _reward_rows() -> Any:
    return (
        select(Reward, Forward.public_id, Forward.generation, Coupon.code, Redemption)
        .join(Forward, Forward.id == Reward.forward_id)
        .join(Redemption, Redemption.id == Reward.redemption_id)
        .join(Coupon, Coupon.id == Redemption.coupon_id)
    )


def _view(reward: Reward, public_id: str, generation: int, code: str, redemption: Redemption) -> RewardView:
    total = None
    if redemption.order_total_minor is not None and redemption.currency:
        total = str(Money.from_minor(redemption.order_total_minor, redemption.currency))
    return RewardView(
        id=reward.id,
        referrer_name=reward.referrer_name,
        forward=public_id,
        generation=generation,
        code=code,
        redeemed_at=redemption.created_at,
        status=reward.status,
        flags=tuple(reward.flags),
        reason=reward.reason,
        reviewed_by=reward.reviewed_by,
        reviewed_at=reward.reviewed_at,
        description=reward.description,
        milestone=reward.milestone,
        order_id=redemption.order_id,
        order_total=total,
        payable_at=reward.payable_at,
        payout_method=reward.payout_method,
        payout_state=reward.payout_state,
        payout_code=reward.payout_code,
        payout_reference=reward.payout_reference,
        paid_by=reward.paid_by,
        paid_at=reward.paid_at,
        created_at=reward.created_at,
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
                func.sum(case((Reward.status.in_([RewardStatus.APPROVED.value, RewardStatus.PAID.value]), 1), else_=0)),
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


# -- the export ------------------------------------------------------------------------------------

CSV_HEADER = [
    "id",
    "earned_at",
    "referrer",
    "generation",
    "forward",
    "reward",
    "milestone",
    "status",
    "flags",
    "order_id",
    "order_total",
    "payable_at",
    "payout_method",
    "payout_state",
    "payout_reference",
    "paid_at",
    "reviewed_by",
    "reviewed_at",
    "reason",
]


def csv_row(view: RewardView) -> list[object]:
    """One reward as a row of the export (under CSV_HEADER); cells are not yet made formula-safe."""

    def when(moment: datetime | None) -> str:
        return moment.isoformat() if moment else ""

    return [
        view.id,
        when(view.created_at),
        view.referrer_name,
        view.generation,
        view.forward,
        view.description,
        view.milestone if view.milestone is not None else "",
        view.status,
        " ".join(view.flags),
        view.order_id or "",
        view.order_total or "",
        when(view.payable_at),
        view.payout_method,
        view.payout_state or "",
        view.payout_reference or "",
        when(view.paid_at),
        view.reviewed_by or "",
        when(view.reviewed_at),
        view.reason or "",
    ]


def histories(db: Database, reward_ids: list[int]) -> dict[int, list[HistoryEntry]]:
    """Each of these rewards' steps, oldest first (engine.services.reward_history)."""
    with db.reading() as session:
        return history(session, reward_ids)
