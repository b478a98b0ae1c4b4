"""Bring hashes kept before canonical identities up to date.

Older versions hashed an email address lowercased; now the hash is of the mailbox it reaches
(`engine.contacts.canonical_email`). Only a row that still holds the plaintext can be rehashed:
a forward whose friend's address is kept, and every row that shares its old hash (the other
forwards to that spelling, its suppressions). Rows known only by an old hash stay as they
are; an opt-out or an invitation among them is still found when that spelling is typed again
(`ContactHasher.legacy_hash`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.contacts import Channel, Contact, ContactHasher, InvalidContact
from engine.db import Database
from engine.models import Forward, Suppression


@dataclass(frozen=True)
class RehashReport:
    forwards: int
    suppressions: int


def rehash_contacts(db: Database, hasher: ContactHasher) -> RehashReport:
    """Rehash every email identity whose plaintext is still held; running it again changes nothing."""
    with db.transaction() as session:
        spellings = session.scalars(
            select(Forward.recipient_contact)
            .where(Forward.channel == Channel.EMAIL.value, Forward.recipient_contact.is_not(None))
            .distinct()
        )
        moves: dict[str, str] = {}
        for address in spellings:
            try:
                contact = Contact(Channel.EMAIL, address)
            except InvalidContact:
                continue
            old = hasher.legacy_hash(contact)
            if old is not None:
                moves[old] = hasher.hash(contact)
        forwards = suppressions = 0
        for old, new in moves.items():
            forwards += _move_forwards(session, old, new)
            suppressions += _move_suppressions(session, old, new)
    return RehashReport(forwards, suppressions)


def _move_forwards(session: Session, old: str, new: str) -> int:
    moved = 0
    for column in (Forward.recipient_contact_hash, Forward.sender_contact_hash):
        result = session.execute(update(Forward).where(column == old).values({column: new}))
        moved += result.rowcount or 0  # type: ignore[attr-defined]
    return moved


def _move_suppressions(session: Session, old: str, new: str) -> int:
    """Each suppression to the new hash, unless the person is already suppressed there under
    it (the unique constraint): then the old row stays, and is harmless."""
    moved = 0
    for suppression in session.scalars(select(Suppression).where(Suppression.contact_hash == old)):
        taken = session.scalar(
            select(Suppression.id).where(
                Suppression.contact_hash == new,
                Suppression.channel == suppression.channel,
                Suppression.scope_key == suppression.scope_key,
            )
        )
        if taken is None:
            suppression.contact_hash = new
            moved += 1
    return moved
