"""analytics roll-ups: landing visits, per-forward and per-sender stats, metric cells

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ambassador_stats',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('sender_key', sa.String(length=160), nullable=False),
    sa.Column('sender_name', sa.String(length=80), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('forwards', sa.Integer(), nullable=False),
    sa.Column('reach', sa.Integer(), nullable=False),
    sa.Column('conversions', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_ambassador_stats_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'sender_key', name=op.f('pk_ambassador_stats'))
    )
    with op.batch_alter_table('ambassador_stats', schema=None) as batch_op:
        batch_op.create_index('ix_ambassador_stats_conversions', ['campaign_id', 'conversions'], unique=False)
        batch_op.create_index('ix_ambassador_stats_reach', ['campaign_id', 'reach'], unique=False)

    op.create_table('daily_forwards',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('forwards', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_daily_forwards_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'day', 'generation', name=op.f('pk_daily_forwards'))
    )
    op.create_table('metric_cells',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('invites', sa.Integer(), nullable=False),
    sa.Column('senders', sa.Integer(), nullable=False),
    sa.Column('became_senders', sa.Integer(), nullable=False),
    sa.Column('delivered', sa.Integer(), nullable=False),
    sa.Column('clicked', sa.Integer(), nullable=False),
    sa.Column('clicks', sa.Integer(), nullable=False),
    sa.Column('conversions', sa.Integer(), nullable=False),
    sa.Column('cycle_median_seconds', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_metric_cells_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'generation', 'channel', name=op.f('pk_metric_cells'))
    )
    op.create_table('rollup_state',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('forwards', sa.Integer(), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_rollup_state_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', name=op.f('pk_rollup_state'))
    )
    op.create_table('visits',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_visits_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'day', 'generation', 'channel', name=op.f('pk_visits'))
    )
    op.create_table('forward_stats',
    sa.Column('forward_id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('root_id', sa.Integer(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('arrival_channel', sa.String(length=16), nullable=False),
    sa.Column('sender_key', sa.String(length=160), nullable=False),
    sa.Column('sender_name', sa.String(length=80), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('delivered', sa.Integer(), nullable=False),
    sa.Column('clicks', sa.Integer(), nullable=False),
    sa.Column('children', sa.Integer(), nullable=False),
    sa.Column('cycle_seconds', sa.Float(), nullable=True),
    sa.Column('conversions', sa.Integer(), nullable=False),
    sa.Column('descendants', sa.Integer(), nullable=False),
    sa.Column('downstream_conversions', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_forward_stats_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['forward_id'], ['forwards.id'], name=op.f('fk_forward_stats_forward_id_forwards'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('forward_id', name=op.f('pk_forward_stats'))
    )
    with op.batch_alter_table('forward_stats', schema=None) as batch_op:
        batch_op.create_index('ix_forward_stats_campaign_reach', ['campaign_id', 'generation', 'descendants'], unique=False)
        batch_op.create_index('ix_forward_stats_parent', ['parent_id'], unique=False)
        batch_op.create_index('ix_forward_stats_root', ['root_id', 'generation'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('forward_stats', schema=None) as batch_op:
        batch_op.drop_index('ix_forward_stats_root')
        batch_op.drop_index('ix_forward_stats_parent')
        batch_op.drop_index('ix_forward_stats_campaign_reach')

    op.drop_table('forward_stats')
    op.drop_table('visits')
    op.drop_table('rollup_state')
    op.drop_table('metric_cells')
    op.drop_table('daily_forwards')
    with op.batch_alter_table('ambassador_stats', schema=None) as batch_op:
        batch_op.drop_index('ix_ambassador_stats_reach')
        batch_op.drop_index('ix_ambassador_stats_conversions')

    op.drop_table('ambassador_stats')
