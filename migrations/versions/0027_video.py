"""a landing page's hero video: the campaign's media hosts and video settings, and the plays
of its video counted per day, generation and arrival channel (like its visits)

Revision ID: 0027_video
Revises: 0024_programme
Create Date: 2026-12-07 17:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027_video"
down_revision: str | None = "0026_share_cards"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("media_hosts", sa.JSON(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("landing_video", sa.JSON(), server_default="{}", nullable=False))
    op.create_table(
        "video_plays",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_video_plays_campaign_id_campaigns"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("campaign_id", "day", "generation", "channel", name=op.f("pk_video_plays")),
    )


def downgrade() -> None:
    op.drop_table("video_plays")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("landing_video")
        batch_op.drop_column("media_hosts")
