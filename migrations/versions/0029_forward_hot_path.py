"""campaign snapshot version: one number every change to a campaign, its templates or a
webhook endpoint moves on, so that each process may keep campaigns as it last read them

Revision ID: 0029_forward_hot_path
Revises: 0024_programme
Create Date: 2026-12-07 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029_forward_hot_path"
down_revision: str | None = "0024_programme"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "campaign_snapshot_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_snapshot_version")),
    )
    # The one row the hook moves on (an UPDATE of every row: there is this one).
    op.bulk_insert(table, [{"id": 1, "version": 0}])


def downgrade() -> None:
    op.drop_table("campaign_snapshot_version")
