"""variants: a campaign's A/B variants, how a referred friend gets one, and the variant of each forward

Revision ID: 0033_variants
Revises: 0035_contests
Create Date: 2026-12-07 20:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0033_variants"
down_revision: str | None = "0035_contests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign_variants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("wrapper", sa.String(length=16), server_default="plain", nullable=False),
        sa.Column("offer_title", sa.String(length=200), nullable=True),
        sa.Column("offer_description", sa.Text(), nullable=True),
        sa.Column("share_text", sa.String(length=280), nullable=True),
        sa.Column("stopped", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_variants_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_variants")),
        sa.UniqueConstraint("campaign_id", "key", name=op.f("uq_campaign_variants_campaign_id")),
    )
    # Every campaign so far has no variants: the mode only matters once it has some.
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("variant_inheritance", sa.String(length=16), server_default="inherit", nullable=False)
        )
    # The forward's variant, with its foreign key: SQLite copies the table to add one (a batch).
    # A script written out for a DBA cannot read the table to copy it: there, SQLite adds the
    # column with its REFERENCES clause as it is.
    name = op.f("fk_forwards_variant_id_campaign_variants")
    if op.get_bind().dialect.name == "sqlite" and context.is_offline_mode():
        op.execute(
            "ALTER TABLE forwards ADD COLUMN variant_id INTEGER"
            f" CONSTRAINT {name} REFERENCES campaign_variants (id) ON DELETE SET NULL"
        )
        return
    with op.batch_alter_table("forwards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("variant_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(name, "campaign_variants", ["variant_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("forwards", schema=None) as batch_op:
        batch_op.drop_column("variant_id")  # its foreign key goes with it
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("variant_inheritance")
    op.drop_table("campaign_variants")
