"""The opt-out log: every opt-out (and opt-in) ever recorded, append-only, chained by hash.

Each entry's hash covers its fields and the hash of the entry before it, so that editing,
inserting or deleting an entry anywhere breaks the chain from there on; the head row
(the newest entry's number and hash) also catches entries cut from the end. Appends lock
the head row, so entries are chained one after the other even when opt-outs arrive at
once; the log is written in the same transaction as the suppression it explains.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.db import utcnow
from engine.models import OptOutAction, OptOutEntry, OptOutLogHead

GENESIS = "0" * 64
_HEAD_ID = 1


@dataclass(frozen=True)
class OptOutRecord:
    """What one log entry says. `detail` is request metadata (hashed address, user agent,
    provider event id, keyword, staff note); never a plaintext contact."""

    contact_hash: str
    channel: str
    scope: str
    source: str
    action: OptOutAction = OptOutAction.OPT_OUT
    campaign_id: int | None = None
    message_id: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


def append(session: Session, record: OptOutRecord, now: datetime | None = None) -> OptOutEntry:
    """Add an entry to the log in the caller's transaction."""
    head = _lock_head(session)
    entry = OptOutEntry(
        seq=head.seq + 1,
        action=record.action.value,
        contact_hash=record.contact_hash,
        channel=record.channel,
        scope=record.scope,
        campaign_id=record.campaign_id,
        message_id=record.message_id,
        source=record.source,
        detail=dict(record.detail),
        # Microseconds are what both databases keep: the hash is computed on what is stored.
        created_at=(now or utcnow()).astimezone(UTC),
        prev_hash=head.entry_hash,
    )
    entry.entry_hash = entry_digest(entry)
    session.add(entry)
    head.seq = entry.seq
    head.entry_hash = entry.entry_hash
    session.flush()
    return entry


def take_turn(session: Session) -> None:
    """Wait for the log's turn, as `append` does, before deciding whether to append: two
    transactions doing the same then see each other's writes."""
    _lock_head(session)


def entry_digest(entry: OptOutEntry) -> str:
    """SHA-256 of the entry's fields in a canonical form, and of the previous hash."""
    fields = {
        "seq": entry.seq,
        "action": entry.action,
        "contact_hash": entry.contact_hash,
        "channel": entry.channel,
        "scope": entry.scope,
        "campaign_id": entry.campaign_id,
        "message_id": entry.message_id,
        "source": entry.source,
        "detail": entry.detail or {},
        "created_at": entry.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "prev_hash": entry.prev_hash,
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _lock_head(session: Session) -> OptOutLogHead:
    query = select(OptOutLogHead).where(OptOutLogHead.id == _HEAD_ID).with_for_update()
    head = session.scalar(query)
    if head is not None:
        return head
    try:
        with session.begin_nested():
            session.add(OptOutLogHead(id=_HEAD_ID, seq=0, entry_hash=GENESIS))
    except IntegrityError:
        pass  # another transaction made it first: wait for its lock below
    head = session.scalar(query)
    assert head is not None
    return head


# -- verification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    checked: int
    head_seq: int
    head_hash: str
    broken_seq: int | None = None  # the first entry that does not follow from the one before
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify(session: Session, batch: int = 1000) -> ChainReport:
    """Walk the whole log in order and recompute every hash; name the first broken entry.

    Call it on a session that has not queried yet: on PostgreSQL the walk then reads one
    snapshot, so opt-outs committed while it runs are neither half-seen nor taken for tampering."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    head = session.scalar(select(OptOutLogHead).where(OptOutLogHead.id == _HEAD_ID))
    head_seq, head_hash = (head.seq, head.entry_hash) if head else (0, GENESIS)
    expected_seq, expected_prev, checked = 1, GENESIS, 0
    for entry in _in_order(session, batch):
        checked += 1
        problem = None
        if entry.seq != expected_seq:
            problem = f"entry {expected_seq} is missing (the next one is {entry.seq})"
        elif entry.prev_hash != expected_prev:
            problem = f"entry {entry.seq} does not follow from entry {entry.seq - 1}"
        elif entry_digest(entry) != entry.entry_hash:
            problem = f"entry {entry.seq} was changed after it was written"
        if problem:
            broken = expected_seq if entry.seq != expected_seq else entry.seq
            return ChainReport(checked, head_seq, head_hash, broken, problem)
        expected_seq, expected_prev = entry.seq + 1, entry.entry_hash
    last_seq = expected_seq - 1
    if last_seq < head_seq:
        problem = f"the log ends at entry {last_seq} but its head says {head_seq}: entries were removed from the end"
        return ChainReport(checked, head_seq, head_hash, last_seq + 1, problem)
    if last_seq > head_seq:
        # Chained on correctly, but past the head: not written by append().
        problem = f"the log goes on to entry {last_seq} but its head says {head_seq}: entries were added"
        return ChainReport(checked, head_seq, head_hash, head_seq + 1, problem)
    if expected_prev != head_hash:
        problem = f"entry {last_seq} is not the one the head recorded: it was rewritten"
        return ChainReport(checked, head_seq, head_hash, last_seq, problem)
    return ChainReport(checked, head_seq, head_hash)


def _in_order(session: Session, batch: int) -> Iterator[OptOutEntry]:
    # Keyset pages: constant memory for a log of any length.
    after = 0
    while True:
        page = list(
            session.scalars(select(OptOutEntry).where(OptOutEntry.seq > after).order_by(OptOutEntry.seq).limit(batch))
        )
        if not page:
            return
        yield from page
        after = page[-1].seq
        session.expunge_all()
