"""Staff: people who sign in to the console, and API keys for machine clients."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import String, true
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime, utcnow


class Role(StrEnum):
    ADMIN = "admin"  # everything, including other staff
    MARKETER = "marketer"  # campaigns, templates, figures
    COMPLIANCE = "compliance"  # opt-out and consent logs, data-subject requests

    def may_act_as(self, role: Role) -> bool:
        return self is Role.ADMIN or self == role


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored as normalised by engine.staff.normalise_email, unique in that form.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    # The key is shown once, when made; only its SHA-256 is kept (keys are long and random,
    # so a fast hash is enough), with a short prefix to tell keys apart in lists and logs.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
