"""Bring hashes kept before canonical identities up to date.

Older versions hashed an email address lowercased; now the hash is of the mailbox it reaches
(`engine.contacts.canonical_email`). Only a spelling whose plaintext is still held (a forward's
friend) can be rehashed, and with it every row that shares its old hash: the forwards to and
from that spelling, its suppressions and consents, and the rewards of its referrals. Rows known
only by an old hash stay as they are; an opt-out among them is still found when that spelling
is typed again or sent to (`ContactHasher.legacy_hash`). The opt-out log is append-only and
keeps its old hashes: its searches look up both.

The upgrade does this itself (migration 0016) when it is given the contact hash key, as
`flask db upgrade` does; otherwise it leaves a `PendingUpgrade` row, and until
`flask contacts rehash` has run the web answers 503 and workers do not send (`RehashGate`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Table, bindparam, delete, exists, func, select, update
from sqlalchemy.orm import Session

from engine.channels import registered
from engine.contacts import Contact, ContactHasher, InvalidContact
from engine.db import Database
from engine.models import Consent, Forward, PendingUpgrade, Reward, RollupState, Suppression

log = logging.getLogger(__name__)

CONTACT_REHASH = "contacts rehash"
# Old hashes moved per round of statements: bounds the size of each IN list.
CHUNK = 1000
PENDING_LINE = (
    "contact hashes from before canonical identities are not rehashed yet: "
    "run `flask --app wsgi contacts rehash` (it needs CONTACT_HASH_KEY) before serving or sending"
)


class RehashPending(RuntimeError):
    """The upgrade's rehash has not run: opt-outs kept under old hashes could be missed."""

    def __init__(self) -> None:
        super().__init__(PENDING_LINE)


@dataclass(frozen=True)
class RehashReport:
    forwards: int
    suppressions: int
    consents: int = 0
    rewards: int = 0

    def summary(self) -> str:
        return (
            f"rehashed {self.forwards} forwards, {self.suppressions} suppressions, "
            f"{self.consents} consents and {self.rewards} rewards"
        )


def rehash_contacts(db: Database, hasher: ContactHasher) -> RehashReport:
    """Rehash every email identity whose plaintext is still held, and clear the upgrade's
    pending mark; running it again changes nothing."""
    with db.transaction() as session:
        report = rehash_in(session, hasher)
        session.execute(delete(PendingUpgrade).where(PendingUpgrade.name == CONTACT_REHASH))
        if report.forwards:
            # The analytics' sender keys are contact hashes, and an incremental refresh only
            # reads what is new: every campaign's next refresh rebuilds its roll-ups.
            session.execute(update(RollupState).values(rebuild_due=True))
    return report


def rehash_in(session: Session, hasher: ContactHasher) -> RehashReport:
    """The rehash, inside the caller's transaction. A migration runs it too, so it names the
    columns it reads and writes and never loads whole rows (a later schema may have more)."""
    report = RehashReport(0, 0)
    moves = list(_moves(session, hasher).items())
    for start in range(0, len(moves), CHUNK):
        chunk = dict(moves[start : start + CHUNK])
        pairs = [{"old": old, "new": new} for old, new in chunk.items()]
        forwards = sum(
            _update_many(session, Forward.__table__, column, pairs)
            for column in ("recipient_contact_hash", "sender_contact_hash")
        )
        consents = _update_many(session, Consent.__table__, "contact_hash", pairs)
        # A referrer is known by the analytics' sender key: "c:" and their contact hash.
        keys = [{"old": f"c:{p['old']}", "new": f"c:{p['new']}"} for p in pairs]
        rewards = _update_many(session, Reward.__table__, "referrer_key", keys)
        report = RehashReport(
            report.forwards + forwards,
            report.suppressions + _move_suppressions(session, chunk),
            report.consents + consents,
            report.rewards + rewards,
        )
    return report


def _rehashed_channels() -> list[str]:
    """The channels whose contacts older versions hashed differently (today: e-mail)."""
    return [channel.name for channel in registered() if channel.rehash_needed]


def holds_rehashable_contacts(session: Session) -> bool:
    """Whether any friend's contact on such a channel is held: only then can a rehash change anything."""
    held = exists().where(Forward.channel.in_(_rehashed_channels()), Forward.recipient_contact.is_not(None))
    return bool(session.scalar(select(held)))


def _moves(session: Session, hasher: ContactHasher) -> dict[str, str]:
    """Each old hash that a held spelling had, to its canonical hash."""
    spellings = session.execute(
        select(Forward.channel, Forward.recipient_contact)
        .where(Forward.channel.in_(_rehashed_channels()), Forward.recipient_contact.is_not(None))
        .distinct()
    )
    moves: dict[str, str] = {}
    for channel, value in spellings:
        if value is None:  # the query skips erased contacts; this says so to the type checker
            continue
        try:
            contact = Contact(channel, value)
        except InvalidContact:
            continue
        old = hasher.legacy_hash(contact)
        if old is not None:
            moves[old] = hasher.hash(contact)
    return moves


def _update_many(session: Session, table: Table, column: str, pairs: list[dict[str, str]]) -> int:
    """`column` from each pair's old value to its new one, as one executemany; how many rows
    it changed (counted first: drivers do not all sum an executemany's row counts)."""
    counting = select(func.count()).select_from(table).where(table.c[column].in_([p["old"] for p in pairs]))
    found = session.scalar(counting) or 0
    if found:
        statement = update(table).where(table.c[column] == bindparam("old")).values({column: bindparam("new")})
        session.connection().execute(statement, pairs)
    return found


def _move_suppressions(session: Session, moves: dict[str, str]) -> int:
    """Each suppression to the new hash, unless the person is already suppressed there under
    it (the unique constraint): then the old row stays, and is harmless."""
    rows = session.execute(
        select(Suppression.id, Suppression.contact_hash, Suppression.channel, Suppression.scope_key).where(
            Suppression.contact_hash.in_(list(moves))
        )
    ).all()
    if not rows:
        return 0
    taken = {
        tuple(row)
        for row in session.execute(
            select(Suppression.contact_hash, Suppression.channel, Suppression.scope_key).where(
                Suppression.contact_hash.in_(list(set(moves.values())))
            )
        )
    }
    moved: list[dict[str, object]] = []
    for row_id, old, channel, key in rows:
        target = (moves[old], channel, key)
        if target not in taken:
            taken.add(target)
            moved.append({"row_id": row_id, "new": moves[old]})
    if moved:
        table = Suppression.__table__
        statement = update(table).where(table.c.id == bindparam("row_id")).values(contact_hash=bindparam("new"))
        session.connection().execute(statement, moved)
    return len(moved)


class RehashGate:
    """Whether the upgrade still owes the rehash. Only a migration sets the mark, so once it
    is found clear this process never asks again."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._clear = False
        self._told = False

    def check(self) -> None:
        """Raise RehashPending (and log it, once per process) while the rehash is owed."""
        if self._clear:
            return
        with self._db.reading() as session:
            pending = session.get(PendingUpgrade, CONTACT_REHASH) is not None
        if not pending:
            self._clear = True
            return
        if not self._told:
            self._told = True
            log.error(PENDING_LINE)
        raise RehashPending()
