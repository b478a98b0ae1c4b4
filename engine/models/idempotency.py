"""Idempotency keys of the API: a POST sent again with the same `Idempotency-Key` is answered
with the first answer, not done twice (a shop's checkout that retried after a timeout must not
redeem an order twice).

A row is written (its `status` still empty) before the request is handled, in a transaction of
its own, so that a second request with the same key arriving meanwhile finds it and is told to
wait (409) instead of running alongside; the answer is stored on it once there is one. Keys
belong to the API key that sent them: two clients may pick the same value.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime

MAX_KEY_LENGTH = 255


class IdempotencyRecord(Base):
    __tablename__ = "api_idempotency_keys"
    __table_args__ = (
        UniqueConstraint("api_key_id", "key", name="uq_api_idempotency_keys_api_key_key"),
        # The clean-up removes expired rows, oldest first.
        Index("ix_api_idempotency_keys_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    # SHA-256 of the method, the path and the body: the same key with another request is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    # None while the first request is being handled.
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # When the first request started (a request that never finished is given up on after a while),
    # and when the key may be used afresh; both on the app's clock.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
