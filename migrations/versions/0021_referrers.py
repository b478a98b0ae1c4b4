"""referrers: a referrer's own page and confirmed contact; consents get a purpose

Revision ID: 0021_referrers
Revises: 0020_i18n
Create Date: 2026-12-07 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_referrers"
down_revision: str | None = "0020_i18n"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every consent on record so far is one to a campaign's offers.
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purpose", sa.String(length=16), server_default="offers", nullable=False))
    op.create_table(
        "referrers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=24), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("referrer_key", sa.String(length=160), nullable=False),
        sa.Column("forward_id", sa.Integer(), nullable=False),
        sa.Column("link_forward_id", sa.Integer(), nullable=True),
        sa.Column("contact_channel", sa.String(length=16), nullable=True),
        sa.Column("contact", sa.String(length=254), nullable=True),
        sa.Column("contact_hash", sa.String(length=64), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consent_id", sa.Integer(), nullable=True),
        sa.Column("pending_channel", sa.String(length=16), nullable=True),
        sa.Column("pending_contact", sa.String(length=254), nullable=True),
        sa.Column("pending_contact_hash", sa.String(length=64), nullable=True),
        sa.Column("pending_secret_hash", sa.String(length=64), nullable=True),
        sa.Column("pending_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pending_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("pending_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["forward_id"], ["forwards.id"]),
        sa.ForeignKeyConstraint(["link_forward_id"], ["forwards.id"]),
        sa.ForeignKeyConstraint(["consent_id"], ["consents.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "referrer_key"),
        sa.UniqueConstraint("public_id"),
    )
    op.create_index("ix_referrers_contact_hash", "referrers", ["contact_hash"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_referrers_contact_hash", table_name="referrers")
    op.drop_table("referrers")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_column("purpose")
