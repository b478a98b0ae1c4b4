"""campaigns: languages, address form and phone regions; forwards: the sender's language;
users: the console's language and time zone

Revision ID: 0020_i18n
Revises: 0019_whatsapp
Create Date: 2026-12-07 14:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_i18n"
down_revision: str | None = "0019_whatsapp"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing campaigns keep speaking English, and their phone numbers keep being read in the
    # installation's DEFAULT_PHONE_REGION (a NULL phone_region).
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locales", sa.JSON(), server_default='["en"]', nullable=False))
        batch_op.add_column(sa.Column("address_form", sa.String(length=16), server_default="informal", nullable=False))
        batch_op.add_column(sa.Column("phone_region", sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column("extra_phone_regions", sa.JSON(), server_default="[]", nullable=False))
    with op.batch_alter_table("forwards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locale", sa.String(length=16), nullable=True))
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locale", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("time_zone", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("time_zone")
        batch_op.drop_column("locale")
    with op.batch_alter_table("forwards", schema=None) as batch_op:
        batch_op.drop_column("locale")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("extra_phone_regions")
        batch_op.drop_column("phone_region")
        batch_op.drop_column("address_form")
        batch_op.drop_column("locales")
