"""The suppression list: who must not be messaged, on which channel, how widely."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime, utcnow


class SuppressionScope(StrEnum):
    GLOBAL = "global"  # nothing from this brand, whatever the route
    FRIENDS = "friends"  # never through friends, in any campaign
    CAMPAIGN = "campaign"  # not from this one campaign


class SuppressionSource(StrEnum):
    LINK = "link"
    ONE_CLICK = "one-click"
    STOP = "stop"
    BOUNCE = "bounce"
    SPAM_REPORT = "spam-report"
    MANUAL = "manual"
    ERASE_REQUEST = "erase-request"
    # Opt-in log entries only (never a suppression): START, UNSTOP or YES by text, and the
    # unsubscribe page's undo, pressed within minutes of the opt-out it takes back.
    START = "start"
    UNDO = "undo"


class Suppression(Base):
    __tablename__ = "suppressions"
    # scope_key folds scope and campaign into one non-null value ("campaign:42"), so the
    # unique constraint holds on PostgreSQL too, where NULLs never collide.
    __table_args__ = (UniqueConstraint("contact_hash", "channel", "scope_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_hash: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(16))
    scope_key: Mapped[str] = mapped_column(String(32))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), nullable=True)
    source: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def scope_key(scope: SuppressionScope, campaign_id: int | None) -> str:
    return f"campaign:{campaign_id}" if scope is SuppressionScope.CAMPAIGN else scope.value


def keys_covering(campaign_id: int) -> list[str]:
    """Every scope_key that stops a message of this campaign."""
    return [SuppressionScope.GLOBAL.value, SuppressionScope.FRIENDS.value, f"campaign:{campaign_id}"]
