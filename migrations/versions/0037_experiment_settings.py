"""experiment settings: the verdict's metric and autopilot per campaign; a variant's quiz and coupon

Revision ID: 0037_experiment_settings
Revises: 0036_variant_visits
Create Date: 2026-12-07 23:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0037_experiment_settings"
down_revision: str | None = "0036_variant_visits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs (a default for the rows there are): no table is copied on SQLite.
    op.add_column("campaigns", sa.Column("variant_metric", sa.String(24), nullable=False, server_default="k"))
    op.add_column("campaigns", sa.Column("variant_autopilot", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("campaign_variants", sa.Column("quiz", sa.JSON(), nullable=True))
    op.add_column(
        "campaign_variants", sa.Column("gives_coupon", sa.Boolean(), nullable=False, server_default=sa.true())
    )


def downgrade() -> None:
    with op.batch_alter_table("campaign_variants") as batch:
        batch.drop_column("gives_coupon")
        batch.drop_column("quiz")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("variant_autopilot")
        batch.drop_column("variant_metric")
