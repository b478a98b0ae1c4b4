"""reward programme: rules (single or tiered, minimum order, new customers, cap, hold, payout
method), orders on redemptions (unique per campaign), payouts and each reward's history

Revision ID: 0024_programme
Revises: 0023_webhooks
Create Date: 2026-12-07 13:54:27.207994
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024_programme"
down_revision: str | None = "0023_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reward_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("reward_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_reward_codes_campaign_id_campaigns"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["reward_id"], ["rewards.id"], name=op.f("fk_reward_codes_reward_id_rewards")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_codes")),
        sa.UniqueConstraint("campaign_id", "code", name=op.f("uq_reward_codes_campaign_id")),
        sa.UniqueConstraint("reward_id", name=op.f("uq_reward_codes_reward_id")),
    )
    with op.batch_alter_table("reward_codes", schema=None) as batch_op:
        batch_op.create_index("ix_reward_codes_free", ["campaign_id", "reward_id", "id"], unique=False)

    op.create_table(
        "reward_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reward_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["reward_id"], ["rewards.id"], name=op.f("fk_reward_events_reward_id_rewards"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_events")),
    )
    with op.batch_alter_table("reward_events", schema=None) as batch_op:
        batch_op.create_index("ix_reward_events_reward", ["reward_id", "id"], unique=False)

    with op.batch_alter_table("redemptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("order_id", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("order_total_minor", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("currency", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("customer_ref", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("new_customer", sa.Boolean(), nullable=True))
        # A literal default ('0' is false on both databases): SQLite then adds the column in place,
        # which a script for a DBA (alembic --sql) can do without reading the table first.
        batch_op.add_column(sa.Column("qualifies", sa.Boolean(), server_default="0", nullable=False))
    op.create_index("uq_redemptions_campaign_order", "redemptions", ["campaign_id", "order_id"], unique=True)

    with op.batch_alter_table("reward_programs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rules", sa.JSON(), server_default="{}", nullable=False))

    with op.batch_alter_table("rewards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("description", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("milestone", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("payable_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("payout_method", sa.String(length=16), server_default="webhook", nullable=False))
        batch_op.add_column(sa.Column("payout_state", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("payout_code", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("payout_channel", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("payout_not_before", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("payout_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("payout_reference", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("paid_by", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rewards", schema=None) as batch_op:
        batch_op.drop_column("paid_at")
        batch_op.drop_column("paid_by")
        batch_op.drop_column("payout_reference")
        batch_op.drop_column("payout_error")
        batch_op.drop_column("payout_not_before")
        batch_op.drop_column("payout_channel")
        batch_op.drop_column("payout_code")
        batch_op.drop_column("payout_state")
        batch_op.drop_column("payout_method")
        batch_op.drop_column("payable_at")
        batch_op.drop_column("milestone")
        batch_op.drop_column("description")

    with op.batch_alter_table("reward_programs", schema=None) as batch_op:
        batch_op.drop_column("rules")

    op.drop_index("uq_redemptions_campaign_order", table_name="redemptions")
    with op.batch_alter_table("redemptions", schema=None) as batch_op:
        batch_op.drop_column("qualifies")
        batch_op.drop_column("new_customer")
        batch_op.drop_column("customer_ref")
        batch_op.drop_column("currency")
        batch_op.drop_column("order_total_minor")
        batch_op.drop_column("order_id")

    with op.batch_alter_table("reward_events", schema=None) as batch_op:
        batch_op.drop_index("ix_reward_events_reward")

    op.drop_table("reward_events")
    with op.batch_alter_table("reward_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_reward_codes_free")

    op.drop_table("reward_codes")
