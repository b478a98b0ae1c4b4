"""messages: `unknown` ones from before hand-overs were recorded count as handed over

An `unknown` message written before `handed_at` existed may have reached its provider (that is
why it is unknown), but has no `handed_at`: without this it would look never handed over, and
`messages requeue --never-handed-over` could send it a second time.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 02:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    messages = sa.table(
        "messages", sa.column("status"), sa.column("claimed_at"), sa.column("updated_at"), sa.column("handed_at")
    )
    op.execute(
        messages.update()
        .where(messages.c.status == "unknown", messages.c.handed_at.is_(None))
        .values(handed_at=sa.func.coalesce(messages.c.claimed_at, messages.c.updated_at))
    )


def downgrade() -> None:
    # Nothing to undo: the column stays, and which of these rows were given a time is not kept.
    pass
