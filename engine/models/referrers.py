"""Referrers: a person who forwarded an offer, known by the sender key of the analytics, who may
confirm their own e-mail address or phone number to follow their rewards.

A referrer's contact is stored only once they confirm it (a one-time code or a signed link),
as consent to hear from the brand about their rewards and nothing else, and only for as long
as engine.services.referrers.purge_referrer_contacts allows. While a confirmation is pending,
the contact it was sent to is held (with the code's keyed hash) until the code or link
expires, so that it can be stored when confirmed; then it is dropped either way.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime, utcnow


class Referrer(Base):
    __tablename__ = "referrers"
    __table_args__ = (UniqueConstraint("campaign_id", "referrer_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # What the page's signed link carries: opaque, never the row id or a contact.
    public_id: Mapped[str] = mapped_column(String(24), unique=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    # Who they are, as the analytics and rewards count senders (engine.services.analytics.sender_key_expression).
    referrer_key: Mapped[str] = mapped_column(String(160))
    # The forward their page was first asked for from: their name and identity come from it.
    forward_id: Mapped[int] = mapped_column(ForeignKey("forwards.id"))
    # Their personal tracked link: a `share-link` forward carrying the same sender identity.
    link_forward_id: Mapped[int | None] = mapped_column(ForeignKey("forwards.id"), nullable=True)

    # The confirmed contact: stored only once confirmed, erased when revoked or past retention.
    contact_channel: Mapped[str | None] = mapped_column(String(16), nullable=True)
    contact: Mapped[str | None] = mapped_column(String(254), nullable=True)
    contact_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The consent row (purpose `rewards`) the confirmation recorded.
    consent_id: Mapped[int | None] = mapped_column(ForeignKey("consents.id"), nullable=True)

    # A pending confirmation: held until it expires, then dropped (never kept unconfirmed).
    pending_channel: Mapped[str | None] = mapped_column(String(16), nullable=True)
    pending_contact: Mapped[str | None] = mapped_column(String(254), nullable=True)
    pending_contact_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The keyed hash of the one-time code (texts), or of the nonce the signed link carries (e-mail).
    pending_secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pending_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    pending_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    pending_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
