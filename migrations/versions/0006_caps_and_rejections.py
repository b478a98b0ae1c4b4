"""caps and rejections

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 12:46:16.429427
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('rejections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('client_ip_hash', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_rejections_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rejections'))
    )
    with op.batch_alter_table('rejections', schema=None) as batch_op:
        batch_op.create_index('ix_rejections_campaign_created', ['campaign_id', 'created_at'], unique=False)

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('caps', sa.JSON(), server_default='{}', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('caps')

    with op.batch_alter_table('rejections', schema=None) as batch_op:
        batch_op.drop_index('ix_rejections_campaign_created')

    op.drop_table('rejections')
