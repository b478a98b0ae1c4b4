"""prefetches: a tracked link fetched by a link preview or a mail scanner is kept apart from clicks

Revision ID: 0028_prefetches
Revises: 0029_forward_hot_path
Create Date: 2026-12-07 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028_prefetches"
down_revision: str | None = "0029_forward_hot_path"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prefetch", sa.Boolean(), server_default="0", nullable=False))
    # The roll-ups are recomputed by every refresh: existing rows start at 0 until then.
    with op.batch_alter_table("forward_stats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prefetches", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("metric_cells", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prefetches", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("metric_cells", schema=None) as batch_op:
        batch_op.drop_column("prefetches")
    with op.batch_alter_table("forward_stats", schema=None) as batch_op:
        batch_op.drop_column("prefetches")
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.drop_column("prefetch")
