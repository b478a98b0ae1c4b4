"""The engine's records for compliance: what it refused and why, the opt-out log, consents."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime, utcnow


class Rejection(Base):
    """Counters aside, the only trace a refused request leaves."""

    __tablename__ = "rejections"
    __table_args__ = (Index("ix_rejections_campaign_created", "campaign_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), nullable=True)
    # The cap or check that refused: "submissions per IP per hour", "honeypot", "too fast", ...
    reason: Mapped[str] = mapped_column(String(64))
    client_ip_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OptOutAction(StrEnum):
    OPT_OUT = "opt-out"
    # START, UNSTOP or YES by text, or consent given: the log keeps both directions.
    OPT_IN = "opt-in"


class OptOutEntry(Base):
    """One line of the opt-out log: append-only, each entry chained to the one before by hash.

    `entry_hash` covers every field and the previous entry's hash, so that an edited,
    inserted or deleted entry breaks the chain (`flask audit verify` finds the first one).
    `seq` numbers entries without gaps; the log's head (OptOutLogHead) holds the newest.
    """

    __tablename__ = "opt_out_log"
    __table_args__ = (
        Index("ix_opt_out_log_contact", "contact_hash"),
        Index("ix_opt_out_log_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    action: Mapped[str] = mapped_column(String(8))
    contact_hash: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(16))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), nullable=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), nullable=True)
    source: Mapped[str] = mapped_column(String(16))
    # Request metadata: client address hash, user agent, provider event id, keyword, note.
    # Never a plaintext contact.
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


class OptOutLogHead(Base):
    """The newest entry of the opt-out log: one row, locked by each append, which serialises
    appends and lets `audit verify` notice entries deleted from the end of the log."""

    __tablename__ = "opt_out_log_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    entry_hash: Mapped[str] = mapped_column(String(64))


class ConsentSource(StrEnum):
    IMPORT = "import"  # uploaded by the brand, with its own evidence
    KEYWORD = "keyword"  # the person texted START, UNSTOP or YES
    MANUAL = "manual"  # recorded by compliance staff
    CONFIRMED = "confirmed"  # a referrer confirmed their own contact (a one-time code or a signed link)


class ConsentPurpose(StrEnum):
    """What a consent lets the brand send. Only `offers` counts for a campaign's messages to
    friends; `rewards` (a referrer following their own rewards) lets nothing else through."""

    OFFERS = "offers"
    REWARDS = "rewards"


class Consent(Base):
    """A person's own prior consent to be messaged on a channel (TCPA: a referrer cannot give
    it for a friend). Withdrawing it sets `revoked_at`; the row stays as evidence."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_contact_channel", "contact_hash", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_hash: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    # None: for every campaign of the brand.
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), nullable=True)
    source: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16), default=ConsentPurpose.OFFERS, server_default="offers")
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    given_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
