"""contacts: rehash identities kept before canonical identities, or mark the rehash as owed

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 02:30:00.000000
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.orm import Session

from engine.contacts import ContactHasher
from engine.db import utcnow
from engine.models import PendingUpgrade
from engine.services.identities import CONTACT_REHASH, holds_rehashable_contacts, rehash_in

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    op.create_table(
        "pending_upgrades",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_pending_upgrades")),
    )
    # Existing rows are migrated here when the app's contact hash key is at hand (`flask db
    # upgrade` hands it over; migrations/env.py reads it from the settings otherwise). Without
    # it, the rehash is marked as owed: the app and the workers refuse until it has run.
    if context.is_offline_mode():
        # A SQL script cannot read the rows: the rehash is owed, whatever they hold.
        pending = sa.table("pending_upgrades", sa.column("name", sa.String), sa.column("created_at"))
        op.execute(pending.insert().values(name=CONTACT_REHASH, created_at=sa.func.current_timestamp()))
        return
    session = Session(bind=op.get_bind())
    try:
        if not holds_rehashable_contacts(session):
            return
        key = context.config.attributes.get("contact_hash_key")
        if key:
            report = rehash_in(session, ContactHasher(key))
            session.flush()
            log.info("contacts: %s", report.summary())
        else:
            session.execute(sa.insert(PendingUpgrade.__table__).values(name=CONTACT_REHASH, created_at=utcnow()))
            session.flush()
            log.warning("contacts: no CONTACT_HASH_KEY given; run `flask --app wsgi contacts rehash` before serving")
    finally:
        session.close()


def downgrade() -> None:
    # Rehashed rows stay rehashed: a keyed hash cannot be turned back into the old one.
    op.drop_table("pending_upgrades")
