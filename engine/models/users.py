"""Staff: people who sign in to the console, and API keys for machine clients."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Integer, String, true
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime, utcnow


class Role(StrEnum):
    ADMIN = "admin"  # everything, including other staff
    MARKETER = "marketer"  # campaigns, templates, figures
    COMPLIANCE = "compliance"  # opt-out and consent logs, data-subject requests

    def may_act_as(self, role: Role) -> bool:
        return self is Role.ADMIN or self == role


# Everyone and every campaign belongs to a team; a marketer sees and changes only their own
# team's campaigns. Accounts, keys and campaigns made before teams existed are in this one.
DEFAULT_TEAM = "default"


class Scope(StrEnum):
    """What an API key may do on /api/v1, chosen when it is made (as well as its role)."""

    REDEMPTIONS = "redemptions"  # report a coupon code redeemed (a shop's checkout)
    METRICS_READ = "metrics:read"  # read a campaign's figures: metrics, caps, coupon counts


# The scopes each role's key may have; a key made without --scope gets all of them (what keys
# could do before scopes existed).
ROLE_SCOPES: dict[Role, tuple[Scope, ...]] = {
    Role.ADMIN: (Scope.REDEMPTIONS, Scope.METRICS_READ),
    Role.MARKETER: (Scope.REDEMPTIONS, Scope.METRICS_READ),
    Role.COMPLIANCE: (Scope.METRICS_READ,),
}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored as normalised by engine.staff.normalise_email, unique in that form.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    team: Mapped[str] = mapped_column(String(64), default=DEFAULT_TEAM, server_default=DEFAULT_TEAM)
    # Copied into each session cookie at sign-in and compared on every request: raising it
    # (sign out, a new password, "sign out everywhere", disabling) ends every session at once.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Two-factor sign-in (TOTP, RFC 6238): the base32 secret once confirmed, and the time step
    # of the last code accepted, so that a code works once.
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The console's language and time zone (an IANA name) for this person; None: their
    # browser's language, and UTC.
    locale: Mapped[str | None] = mapped_column(String(16), nullable=True)
    time_zone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    team: Mapped[str] = mapped_column(String(64), default=DEFAULT_TEAM, server_default=DEFAULT_TEAM)
    # Space-separated Scope values, as OAuth writes them.
    scopes: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # The key is shown once, when made; only its SHA-256 is kept (keys are long and random,
    # so a fast hash is enough), with a short prefix to tell keys apart in lists and logs.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
