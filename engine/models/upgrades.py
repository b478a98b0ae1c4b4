"""Work an upgrade still owes the data before the app may serve and send."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime, utcnow


class PendingUpgrade(Base):
    """One row per data step a migration could not do itself (it lacked a key), named like
    the command that does it; that command deletes the row. While any is here the web answers
    503 and workers do not send."""

    __tablename__ = "pending_upgrades"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
