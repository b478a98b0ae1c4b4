"""Where an incremental refresh of a campaign's roll-ups starts: a watermark per base table,
safe under concurrent writers.

The problem: ids come from a sequence when a row is inserted, not when it commits. A forward
given id 100 by a transaction still open while a refresh sees id 101 commits later, below
"the highest id seen". A refresh that started next time from 101 would skip it forever.

The choice: a watermark is only advanced to an id once every transaction that could hold an
id up to it has ended. A refresh reads each table's sequence (the highest id handed out,
committed or not), then the transactions running in the database (PostgreSQL's `pg_locks`:
every transaction holds the lock of its virtual transaction id from its first statement,
before it can take an id, whether or not it has written yet). Any id up to the sequence's
value belongs to a transaction that had ended by then or is in that list. That reading is a
*pending* watermark; a later refresh that finds none of its transactions still running
promotes it to *settled*: every row up to it is committed (or rolled back) and visible. Each
refresh rescans from the settled watermark, so rows between it and the newest are seen again
until it moves past them: the incremental refresh re-derives every forward it touches from the
base tables (rather than adding counts), which makes seeing a row twice harmless. When no other
transaction is running, the reading settles at once. A long transaction (a backup, a bulk
import) only holds the watermark back: later refreshes rescan more, none skips anything.

Rejected: `xmin`/`pg_snapshot` of each row (finding the rows a snapshot could not see means
scanning whole tables: there is no index on xmin); a commit-time sequence (a trigger or a
column on the hot tables: a write on every forward, click and message); a fixed margin of
ids or minutes (a transaction longer than the margin is lost).

Message status changes (a delivery report arriving days later) are updates, not new ids: they
are found by `updated_at`, which the app writes with its wall clock when it makes the change.
The settled watermark carries the wall-clock time of its reading, and a refresh rescans the
messages updated since that time minus `MESSAGE_CLOCK_MARGIN` (for the app servers' clocks
disagreeing, and a statement reaching the database after its `updated_at` was taken).

On SQLite a refresh is a write transaction (`BEGIN IMMEDIATE`): no other writer is running,
every id up to the highest is committed, and the reading settles at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, select, text
from sqlalchemy.dialects.postgresql import REGCLASS
from sqlalchemy.orm import Session

from engine.db import utcnow
from engine.models import Click, Forward, Message, Redemption
from engine.services.analytics.sql import dialect

# The base tables a refresh folds, by the name their watermark is stored under. Each is
# insert-only (messages also change status: `MESSAGE_CLOCK_MARGIN`). A new table that the
# roll-ups count (another kind of event on a forward) gets an entry here.
TRACKED: dict[str, Table] = {
    "forwards": Forward.__table__,
    "clicks": Click.__table__,
    "redemptions": Redemption.__table__,
    "messages": Message.__table__,
}
MESSAGE_CLOCK_MARGIN = timedelta(minutes=5)
NOTHING_SEEN = datetime(1970, 1, 1, tzinfo=UTC)

_RUNNING_TRANSACTIONS = text(
    "SELECT l.virtualxid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'virtualxid' AND l.mode = 'ExclusiveLock' AND l.granted"
    " AND a.datname = current_database() AND l.pid <> pg_backend_pid()"
)


@dataclass(frozen=True)
class Reading:
    """The highest id handed out in each tracked table, when (wall clock), and the transactions
    that were running then (and may still commit ids up to those)."""

    ids: dict[str, int]
    at: datetime
    transactions: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {"ids": self.ids, "at": self.at.isoformat(), "transactions": sorted(self.transactions)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reading:
        ids = {name: int(data["ids"].get(name, 0)) for name in TRACKED}
        return cls(ids, datetime.fromisoformat(data["at"]), frozenset(data.get("transactions", ())))


@dataclass(frozen=True)
class Watermarks:
    """A campaign's settled watermark (everything up to it was folded) and the pending one."""

    settled: Reading
    pending: Reading | None = None

    def to_json(self) -> dict[str, Any]:
        return {"settled": self.settled.to_json(), "pending": self.pending.to_json() if self.pending else None}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Watermarks | None:
        if not data:
            return None
        pending = data.get("pending")
        return cls(Reading.from_json(data["settled"]), Reading.from_json(pending) if pending else None)

    def messages_since(self) -> datetime:
        """Message changes at or after this (wall-clock) time are looked at again."""
        return self.settled.at - MESSAGE_CLOCK_MARGIN


def take_reading(session: Session) -> Reading:
    """Read the watermark candidates now, in the caller's transaction (the sequences first, then
    the running transactions: an id handed out before the first read belongs to a transaction
    that the second read lists, or that had ended)."""
    at = utcnow()
    if dialect(session) != "postgresql":
        ids = {name: session.scalar(select(func.coalesce(func.max(t.c.id), 0))) or 0 for name, t in TRACKED.items()}
        return Reading(ids, at)
    sequences = [
        func.coalesce(func.pg_sequence_last_value(func.pg_get_serial_sequence(t.name, "id").cast(REGCLASS)), 0)
        for t in TRACKED.values()
    ]
    values = session.execute(select(*sequences)).one()
    ids = {name: int(value) for name, value in zip(TRACKED, values, strict=True)}
    running = frozenset(str(vxid) for vxid in session.scalars(_RUNNING_TRANSACTIONS))
    return Reading(ids, at, running)


def advance(previous: Watermarks | None, now: Reading) -> Watermarks:
    """The watermarks to store after a refresh that scanned from `previous.settled` and took the
    reading `now` before it scanned. A pending reading settles when none of its transactions
    is still running (`now.transactions` lists those running now); a reading with none running
    settles at once. Otherwise the oldest pending reading is kept, so that it settles as soon
    as its transactions end, however busy the database stays."""
    if not now.transactions:
        return Watermarks(now)
    if previous is None:
        # A first (full) refresh with writers running: nothing is settled yet, the next refresh
        # rescans everything up to the pending reading.
        return Watermarks(Reading(dict.fromkeys(TRACKED, 0), NOTHING_SEEN), now)
    pending = previous.pending
    if pending is not None and not (pending.transactions & now.transactions):
        return Watermarks(pending, now)
    return Watermarks(previous.settled, pending or now)
