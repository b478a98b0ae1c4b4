"""Double-sided rewards: the friend gets the coupon, and the referrer who invited them earns a
reward when they convert (redeem it), where the campaign's consent policy allows incentives
and the campaign has rewards switched on.

Every reward waits for a person to review it (held → approved | rejected); the fraud filters
of engine.services.rewards record what they found on it (`flags`), for that person to weigh.
Nothing here holds a contact: the referrer is known by the sender key of the analytics
(a keyed hash, or a forward id) and by the name they typed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import Base, UTCDateTime, utcnow
from engine.models.forwards import Forward


class RewardStatus(StrEnum):
    HELD = "held"  # waiting for review: nothing is given until a person approves it
    APPROVED = "approved"  # paid out by the campaign's payout method once its hold is over
    PAID = "paid"  # the referrer has it: their code was sent, or the shop confirmed the payout
    REJECTED = "rejected"


class PayoutMethod(StrEnum):
    COUPON = "coupon"  # a code (from the payout pool, or generated) sent to the referrer's confirmed contact
    WEBHOOK = "webhook"  # the shop pays it out (told by reward.approved) and confirms through the API


class PayoutState(StrEnum):
    """Where a coupon payout is, between approval and the referrer having their code."""

    WAITING_HOLD = "waiting_hold"  # approved, but the hold period is not over yet
    WAITING_CONTACT = "waiting_contact"  # the referrer has confirmed no contact to send it to
    QUEUED = "queued"  # a job will send it
    SENDING = "sending"  # claimed by a job; the provider may be called
    SENT = "sent"
    SUPPRESSED = "suppressed"  # the referrer's contact opted out: never sent
    CAPPED = "capped"  # over the recipient cap: tried again later
    FAILED = "failed"  # the provider refused it for good
    UNKNOWN = "unknown"  # the provider call may have left: never resent blindly
    WAITING_SHOP = "waiting_shop"  # webhook payouts: the shop has been told, its confirmation is awaited


class RewardFlag(StrEnum):
    """What a fraud filter found on a conversion (engine.services.rewards)."""

    SELF_REFERRAL = "self_referral"  # the friend is the referrer under another hat
    SAME_IP = "same_ip"  # the friend clicked from the address the referrer forwarded from
    REPEATED_DEVICE = "repeated_device"  # one device behind several of the referrer's converting friends
    DISPOSABLE_ADDRESS = "disposable_address"  # the friend's address is at a throwaway mail service


class RewardProgram(Base):
    """A campaign's rewards switch: one row per campaign that ever had one (no row: off)."""

    __tablename__ = "reward_programs"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # What a referrer earns per converted friend, in the marketer's words ("a €5 voucher").
    description: Mapped[str] = mapped_column(Text, default="")
    # The programme's rules (engine.services.reward_rules.RewardRules.to_json): single or tiered,
    # minimum order, new customers only, cap per referrer, hold period, payout method.
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Reward(Base):
    """A referrer's reward for one conversion: one per redemption of a code given to a friend."""

    __tablename__ = "rewards"
    __table_args__ = (
        # The review queue and the leaderboard: a campaign's rewards by status.
        Index("ix_rewards_campaign_status", "campaign_id", "status", "flagged"),
        # A referrer's other conversions (the repeated-device filter, the leaderboard's groups).
        Index("ix_rewards_campaign_referrer", "campaign_id", "referrer_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    redemption_id: Mapped[int] = mapped_column(ForeignKey("redemptions.id", ondelete="CASCADE"), unique=True)
    # The invitation the referrer sent to the friend who converted: the forward the redeemed
    # code was given to. Its sender is the referrer.
    forward_id: Mapped[int] = mapped_column(ForeignKey("forwards.id"))
    # Who the referrer is, as the analytics count senders (engine.services.analytics.sender_key_expression).
    referrer_key: Mapped[str] = mapped_column(String(160))
    referrer_name: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16), default=RewardStatus.HELD)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Whether `flags` is non-empty: a column the leaderboard and the review queue can filter on.
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # why it was rejected
    reviewed_by: Mapped[str | None] = mapped_column(String(254), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What the referrer gets, in the marketer's words: the programme's description, or the
    # milestone's ("10 friends: a bag of beans") for a tiered programme.
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The friends a tiered programme's milestone asked for (None: a reward per converted friend).
    milestone: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Not paid out before this (the programme's hold period after the conversion).
    payable_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    payout_method: Mapped[str] = mapped_column(
        String(16), default=PayoutMethod.WEBHOOK, server_default=PayoutMethod.WEBHOOK.value
    )
    payout_state: Mapped[str | None] = mapped_column(String(24), nullable=True)
    payout_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payout_channel: Mapped[str | None] = mapped_column(String(16), nullable=True)
    payout_not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    payout_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The shop's reference for a payout it confirmed (a voucher number, a transfer id).
    payout_reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    paid_by: Mapped[str | None] = mapped_column(String(254), nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    forward: Mapped[Forward] = relationship()


class RewardEvent(Base):
    """One step of a reward's history: who or what did it, when, and what it changed."""

    __tablename__ = "reward_events"
    __table_args__ = (Index("ix_reward_events_reward", "reward_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RewardCode(Base):
    """A code the brand loaded to pay referrers with (coupon payouts take these first)."""

    __tablename__ = "reward_codes"
    __table_args__ = (
        UniqueConstraint("campaign_id", "code"),
        Index("ix_reward_codes_free", "campaign_id", "reward_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    reward_id: Mapped[int | None] = mapped_column(ForeignKey("rewards.id"), nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
