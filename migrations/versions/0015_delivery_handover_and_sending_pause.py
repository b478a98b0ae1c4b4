"""delivery: when a message was handed to the provider, in which request; automatic pauses

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 01:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handed_at", UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column("request_ref", sa.String(length=32), nullable=True))
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paused_automatically", sa.Boolean(), server_default=sa.false(), nullable=False))
    # Campaigns the send loop paused before this column existed (their reason says so): their
    # page comes back up, sending still held.
    campaigns = sa.table(
        "campaigns", sa.column("status"), sa.column("status_reason"), sa.column("paused_automatically")
    )
    op.execute(
        campaigns.update()
        .where(campaigns.c.status == "paused", campaigns.c.status_reason.like("paused automatically:%"))
        .values(paused_automatically=sa.true())
    )
    # Messages left `sending` by an older worker may have been handed over: the sweeper's old
    # rule (`unknown`) still applies to them.
    messages = sa.table("messages", sa.column("status"), sa.column("claimed_at"), sa.column("handed_at"))
    op.execute(messages.update().where(messages.c.status == "sending").values(handed_at=messages.c.claimed_at))


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("paused_automatically")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("request_ref")
        batch_op.drop_column("handed_at")
