"""contests: a period, a metric, prizes by rank and official rules; the final leaderboard frozen

Revision ID: 0035_contests
Revises: 0028_prefetches
Create Date: 2026-12-07 20:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0035_contests"
down_revision: str | None = "0028_prefetches"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("metric", sa.String(length=24), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("prizes", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column("finalised_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_contests_campaign_id_campaigns"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contests")),
    )
    op.create_index("ix_contests_campaign_period", "contests", ["campaign_id", "starts_at"])
    op.create_table(
        "contest_winners",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contest_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("referrer_key", sa.String(length=160), nullable=False),
        sa.Column("sender_name", sa.String(length=80), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("reached_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prize", sa.String(length=200), nullable=True),
        sa.Column("notice_state", sa.String(length=16), nullable=True),
        sa.Column("notice_channel", sa.String(length=16), nullable=True),
        sa.Column("notice_error", sa.Text(), nullable=True),
        sa.Column("notice_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["contest_id"], ["contests.id"], name=op.f("fk_contest_winners_contest_id_contests"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contest_winners")),
        sa.UniqueConstraint("contest_id", "rank", name="uq_contest_winners_rank"),
        sa.UniqueConstraint("contest_id", "referrer_key", name="uq_contest_winners_referrer"),
    )


def downgrade() -> None:
    op.drop_table("contest_winners")
    op.drop_index("ix_contests_campaign_period", table_name="contests")
    op.drop_table("contests")
