"""variant visits: an A/B variant's views and new visitors, folded in from Redis by every refresh

Revision ID: 0036_variant_visits
Revises: 0031_campaign_archive
Create Date: 2026-12-07 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0036_variant_visits"
down_revision: str | None = "0031_campaign_archive"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "variant_visits",
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("views", sa.BigInteger(), nullable=False),
        sa.Column("visitors", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_variant_visits_campaign_id_campaigns"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["campaign_variants.id"],
            name=op.f("fk_variant_visits_variant_id_campaign_variants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("variant_id", name=op.f("pk_variant_visits")),
    )
    op.create_index(op.f("ix_variant_visits_campaign_id"), "variant_visits", ["campaign_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_variant_visits_campaign_id"), table_name="variant_visits")
    op.drop_table("variant_visits")
