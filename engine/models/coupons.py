"""Coupons and their redemptions: how a forwarded offer turns into a conversion.

A campaign with coupons gives each friend one code (from an uploaded pool, or generated);
the code is shown on the landing page they reach through their link and in their message.
A shop redeems it through the API: the redemption is the conversion, attributed to the
friend's forward and so to every forward above it in the chain.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import Base, UTCDateTime, utcnow
from engine.models.forwards import Forward


class CouponSource(StrEnum):
    UPLOADED = "uploaded"  # a code from the brand's CSV
    GENERATED = "generated"  # made by Fluister when a friend needed one


class Coupon(Base):
    __tablename__ = "coupons"
    __table_args__ = (
        UniqueConstraint("campaign_id", "code"),
        # Codes still free, oldest first: what handing one out looks for.
        Index("ix_coupons_free", "campaign_id", "forward_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    code: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16), default=CouponSource.UPLOADED)
    # The friend's forward the code was given to; None while it is free. One code per forward.
    forward_id: Mapped[int | None] = mapped_column(ForeignKey("forwards.id"), nullable=True, unique=True)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    forward: Mapped[Forward | None] = relationship()


class Redemption(Base):
    """A code redeemed: the conversion. A code redeems once (the unique coupon_id)."""

    __tablename__ = "redemptions"
    __table_args__ = (
        Index("ix_redemptions_campaign_created", "campaign_id", "created_at"),
        # An order converts once: the same order reported again is the same redemption. (A unique
        # index rather than a constraint: SQLite adds one without rebuilding the table.)
        Index("uq_redemptions_campaign_order", "campaign_id", "order_id", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"), unique=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    # The friend's forward the code was given to; the chain above it gets the credit.
    forward_id: Mapped[int | None] = mapped_column(ForeignKey("forwards.id"), nullable=True, index=True)
    # The shop's own reference (an order number), and who reported it (the API key's name).
    external_ref: Mapped[str | None] = mapped_column(String(100), nullable=True)
    reported_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The order the code was redeemed with, when the shop reported one. The total is kept in the
    # currency's minor units (cents), so that sums stay exact on every database.
    order_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    order_total_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    customer_ref: Mapped[str | None] = mapped_column(String(100), nullable=True)
    new_customer: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    # Whether it met the reward programme's rules (minimum order, new customers only) when it
    # was recorded: the conversions a tiered programme counts towards its milestones.
    qualifies: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    coupon: Mapped[Coupon] = relationship()
