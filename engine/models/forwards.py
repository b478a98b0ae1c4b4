"""Forwards (one per friend a consumer sent the offer to) and the clicks on their links."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import Base, UTCDateTime, utcnow
from engine.models.campaigns import Campaign, CampaignVariant


class Forward(Base):
    __tablename__ = "forwards"
    __table_args__ = (
        Index("ix_forwards_campaign_created", "campaign_id", "created_at"),
        Index("ix_forwards_recipient", "recipient_contact_hash"),
        Index("ix_forwards_sender", "sender_contact_hash"),
        Index("ix_forwards_form_stamp", "form_stamp"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The opaque id that signed links carry; never the row id, never a contact.
    public_id: Mapped[str] = mapped_column(String(24), unique=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("forwards.id"), index=True, nullable=True)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    channel: Mapped[str] = mapped_column(String(16))

    sender_name: Mapped[str] = mapped_column(String(80))
    sender_contact_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    recipient_contact_hash: Mapped[str] = mapped_column(String(64))
    # Plaintext only as long as the campaign's consent policy allows; purged after that.
    recipient_contact: Mapped[str | None] = mapped_column(String(254), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

    policy_name: Mapped[str] = mapped_column(String(32))
    policy_version: Mapped[int] = mapped_column(Integer)
    client_ip_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The sender's network (an IPv4 address, an IPv6 /64), hashed: one visitor, whichever
    # address of their /64 they use (the automatic pause counts senders by it).
    client_network_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The random part of the render stamp of the form that sent it: a stamp spent without a
    # forward (a failed commit, a lost answer from Redis) may be sent again.
    form_stamp: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The language the sender used (one of the campaign's locales): the friend's message, landing
    # page and unsubscribe page speak it. None for forwards made before languages were kept.
    locale: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # The A/B variant whose page the sender saw (None: a campaign without variants, or a forward
    # made before it had them). Kept when the variant is stopped; never deleted with it.
    variant_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign_variants.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    campaign: Mapped[Campaign] = relationship()
    parent: Mapped[Forward | None] = relationship(remote_side=[id])
    variant: Mapped[CampaignVariant | None] = relationship()


class Click(Base):
    __tablename__ = "clicks"

    id: Mapped[int] = mapped_column(primary_key=True)
    forward_id: Mapped[int] = mapped_column(ForeignKey("forwards.id"), index=True)
    client_ip_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A machine fetching the link ahead of a person (a chat app's link preview, a mail scanner,
    # a HEAD request: engine.visitors): counted apart, never as a click.
    prefetch: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")

    forward: Mapped[Forward] = relationship()
