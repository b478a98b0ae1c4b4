"""Messages: one per (forward, channel), moved through the delivery states in docs/architecture.md."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import Base, UTCDateTime, utcnow
from engine.models.forwards import Forward


class MessageStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    CAPPED = "capped"
    DEFERRED = "deferred"
    # The provider call may have left before a crash or timeout: never resent blindly.
    UNKNOWN = "unknown"


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("forward_id", "channel"),
        Index("ix_messages_status_updated", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True)
    forward_id: Mapped[int] = mapped_column(ForeignKey("forwards.id"))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Whose problem a failure was: account, provider, content or recipient.
    fault: Mapped[str | None] = mapped_column(String(16), nullable=True)

    # The consent policy (and its version) that allowed this message.
    policy_name: Mapped[str] = mapped_column(String(32))
    policy_version: Mapped[int] = mapped_column(Integer)
    # The campaign's template versions this message was rendered with, by file name
    # ({"email.html": 3}); a file at its default has no entry. Empty until sent.
    template_versions: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A queued message is not sent before this (retry backoff, a provider's Retry-After).
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Written (and committed) right before the provider is called; cleared by each claim. A
    # message left `sending` without it never left us and may go again; with it, it may have.
    handed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The provider request it went in (a batch's recipients share one): the pause rule counts
    # failed requests, not the recipients of one.
    request_ref: Mapped[str | None] = mapped_column(String(32), nullable=True)

    forward: Mapped[Forward] = relationship()
