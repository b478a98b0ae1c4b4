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

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import Base, UTCDateTime, utcnow
from engine.models.forwards import Forward


class RewardStatus(StrEnum):
    HELD = "held"  # waiting for review: nothing is given until a person approves it
    APPROVED = "approved"
    REJECTED = "rejected"


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

    forward: Mapped[Forward] = relationship()
