"""What the engine refused and why: counters aside, the only trace a refused request leaves."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime, utcnow


class Rejection(Base):
    __tablename__ = "rejections"
    __table_args__ = (Index("ix_rejections_campaign_created", "campaign_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), nullable=True)
    # The cap or check that refused: "submissions per IP per hour", "honeypot", "too fast", ...
    reason: Mapped[str] = mapped_column(String(64))
    client_ip_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
