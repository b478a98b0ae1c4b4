"""Contests: a period in which a campaign's referrers compete for prizes, and the leaderboard
frozen when it ends (engine.services.contests)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime, utcnow


class ContestMetric(StrEnum):
    # Distinct friends whose invitation was sent or delivered within the period.
    FRIENDS_REACHED = "friends-reached"
    # Friends who redeemed within the period, counted as the rewards are (fraud filters applied).
    FRIENDS_CONVERTED = "friends-converted"


class NoticeState(StrEnum):
    """A winner's notice, sent at most once like every message."""

    WAITING_CONTACT = "waiting-contact"  # no confirmed contact yet: looked for again each pass
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    SUPPRESSED = "suppressed"  # their contact opted out: never sent
    FAILED = "failed"
    UNKNOWN = "unknown"  # the provider may have taken it: never resent blindly


class Contest(Base):
    __tablename__ = "contests"
    __table_args__ = (Index("ix_contests_campaign_period", "campaign_id", "starts_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    # The official rules, shown in full on the campaign's contest page and linked from the landing page.
    rules: Mapped[str] = mapped_column(Text)
    metric: Mapped[str] = mapped_column(String(24))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The zone the period is announced and typed in (IANA name); stored times are UTC.
    time_zone: Mapped[str] = mapped_column(String(64))
    # Prizes by rank: the first for rank 1, and so on.
    prizes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # When the final leaderboard was frozen (contest_winners); never computed again after.
    finalised_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def state(self, now: datetime) -> str:
        if self.cancelled_at is not None:
            return "cancelled"
        if self.finalised_at is not None:
            return "final"
        if now < self.starts_at:
            return "upcoming"
        return "open" if now < self.ends_at else "ended"

    def rules_snapshot(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "metric": self.metric,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "time_zone": self.time_zone,
            "prizes": list(self.prizes or []),
        }


class ContestWinner(Base):
    """A place on a contest's final leaderboard, frozen when the contest ended."""

    __tablename__ = "contest_winners"
    __table_args__ = (
        UniqueConstraint("contest_id", "rank", name="uq_contest_winners_rank"),
        UniqueConstraint("contest_id", "referrer_key", name="uq_contest_winners_referrer"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contest_id: Mapped[int] = mapped_column(ForeignKey("contests.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    # The referrer as the rewards and analytics know them (engine.services.analytics.sender_key_expression).
    referrer_key: Mapped[str] = mapped_column(String(160))
    sender_name: Mapped[str] = mapped_column(String(80))
    score: Mapped[int] = mapped_column(Integer)
    # When they reached that score: the earlier one wins a tie.
    reached_at: Mapped[datetime] = mapped_column(UTCDateTime)
    prize: Mapped[str | None] = mapped_column(String(200), nullable=True)
    notice_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    notice_channel: Mapped[str | None] = mapped_column(String(16), nullable=True)
    notice_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # When the notice last moved (queued, sent, held back): a queued notice no job took is
    # queued again by a later pass.
    notice_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
