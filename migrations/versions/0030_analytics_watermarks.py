"""analytics: incremental refreshes (each campaign's watermarks, a rebuild flag) and the
indexes they read forward_stats through (sender keys, cycle times)

Revision ID: 0030_analytics_watermarks
Revises: 0024_programme
Create Date: 2026-12-07 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030_analytics_watermarks"
down_revision: str | None = "0027_video"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CYCLE_INDEXES = (
    ("ix_forward_stats_cycle", ["campaign_id", "cycle_seconds"]),
    ("ix_forward_stats_cycle_generation", ["campaign_id", "generation", "cycle_seconds"]),
    ("ix_forward_stats_cycle_channel", ["campaign_id", "channel", "cycle_seconds"]),
)


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN and CREATE INDEX: both databases take them as they are,
    # and an offline (--sql) upgrade needs no table reflected.
    op.add_column("rollup_state", sa.Column("watermarks", sa.JSON(), nullable=True))
    op.add_column("rollup_state", sa.Column("rebuild_due", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index("ix_forward_stats_sender", "forward_stats", ["campaign_id", "sender_key"], unique=False)
    for name, columns in CYCLE_INDEXES:
        op.create_index(
            name,
            "forward_stats",
            columns,
            unique=False,
            postgresql_where=sa.text("cycle_seconds IS NOT NULL"),
            sqlite_where=sa.text("cycle_seconds IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("forward_stats", schema=None) as batch_op:
        for name, _ in reversed(CYCLE_INDEXES):
            batch_op.drop_index(name)
        batch_op.drop_index("ix_forward_stats_sender")
    with op.batch_alter_table("rollup_state", schema=None) as batch_op:
        batch_op.drop_column("rebuild_due")
        batch_op.drop_column("watermarks")
