"""Idempotency keys: a request sent again with the same key gets the first answer, once done.

`begin` claims the key for a request (or says what happened to it before); `finish` stores the
answer; `abandon` lets the key go when the request ended in a server error, so that the client
may simply try again. Keys belong to one API key and last `ttl` (24 hours) on the app's clock;
`remove_expired` clears the table of older ones (the scheduler calls it).

The claim is its own committed transaction, so the unique (api key, key) constraint decides
between two requests arriving together, on PostgreSQL as on SQLite: one runs, the other is
told the key is in use.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from engine.clock import Clock
from engine.db import Database, rows_changed
from engine.models.idempotency import MAX_KEY_LENGTH, IdempotencyRecord

log = logging.getLogger(__name__)

KEY_TTL = timedelta(hours=24)
# A first request still unanswered after this long died with its process (a request has a
# minute at most behind gunicorn): its key may be claimed again instead of blocking for a day.
ABANDONED_AFTER = timedelta(minutes=5)


class KeyInUse(Exception):
    """Another request with this key is being handled right now."""


class KeyReused(Exception):
    """This key was used with another request (another method, path or body)."""


class BadKey(ValueError):
    """Not a usable idempotency key."""


@dataclass(frozen=True)
class Started:
    """The key is this request's: handle it, then finish (or abandon) the record."""

    record_id: int


@dataclass(frozen=True)
class Replay:
    """The key's first request was answered: this is its answer."""

    status: int
    content_type: str
    body: bytes


KEY = re.compile(rf'(?:[!#-~]{{1,{MAX_KEY_LENGTH}}}|"[!#-~]{{1,{MAX_KEY_LENGTH}}}")')


def parse_key(header: str) -> str:
    """The key from an `Idempotency-Key` header: 1 to 255 printable ASCII characters without
    spaces or quotes (a UUID, an order number), bare or as a structured-field string (`"…"`, as
    the IETF draft writes it)."""
    key = header.strip()
    if not KEY.fullmatch(key):
        raise BadKey(f"an idempotency key is 1 to {MAX_KEY_LENGTH} printable ASCII characters without spaces or quotes")
    return key.strip('"')


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same request."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class IdempotencyStore:
    def __init__(self, db: Database, clock: Clock, ttl: timedelta = KEY_TTL) -> None:
        self._db = db
        self._clock = clock
        self._ttl = ttl

    def begin(self, api_key_id: int, key: str, method: str, path: str, print_: str) -> Started | Replay:
        """Claim `key` for this request. Raises KeyInUse or KeyReused."""
        now = self._clock.now()
        fresh = IdempotencyRecord(
            api_key_id=api_key_id,
            key=key,
            method=method,
            path=path[:500],
            fingerprint=print_,
            created_at=now,
            expires_at=now + self._ttl,
        )
        try:
            with self._db.transaction() as session:
                session.add(fresh)
                session.flush()
                return Started(fresh.id)
        except IntegrityError:
            pass  # the key is taken: see by whom
        with self._db.transaction() as session:
            record = session.scalar(
                select(IdempotencyRecord)
                .where(IdempotencyRecord.api_key_id == api_key_id, IdempotencyRecord.key == key)
                .with_for_update()
            )
            if record is None:
                # Removed since (expired and cleaned up): the next request claims it afresh.
                raise KeyInUse(key)
            abandoned = record.status is None and record.created_at <= now - ABANDONED_AFTER
            if record.expires_at <= now or abandoned:
                # An old use of the key: this request takes it over, in place.
                record.method, record.path, record.fingerprint = method, path[:500], print_
                record.status = record.content_type = record.body = None
                record.created_at, record.expires_at = now, now + self._ttl
                return Started(record.id)
            if record.fingerprint != print_:
                raise KeyReused(key)
            if record.status is None:
                raise KeyInUse(key)
            return Replay(record.status, record.content_type or "application/json", record.body or b"")

    def finish(self, record_id: int, status: int, content_type: str, body: bytes) -> None:
        with self._db.transaction() as session:
            record = session.get(IdempotencyRecord, record_id)
            if record is not None:
                record.status, record.content_type, record.body = status, content_type[:100], body

    def abandon(self, record_id: int) -> None:
        """Let the key go: the request failed on our side, and trying again must be possible."""
        with self._db.transaction() as session:
            session.execute(
                delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id, IdempotencyRecord.status.is_(None))
            )

    def remove_expired(self) -> int:
        """Delete every key past its 24 hours; how many."""
        with self._db.transaction() as session:
            expired = delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= self._clock.now())
            removed = rows_changed(session, expired)
        if removed:
            log.info("removed %d expired idempotency keys", removed)
        return removed
