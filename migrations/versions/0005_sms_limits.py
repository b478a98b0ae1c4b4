"""sms limits

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 12:17:25.042548
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sms_segment_limit', sa.Integer(), server_default='3', nullable=False))
        batch_op.add_column(sa.Column('sms_smart_encoding', sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('sms_smart_encoding')
        batch_op.drop_column('sms_segment_limit')

