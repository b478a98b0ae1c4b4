"""rewards: referrer rewards held for review, and each campaign's reward program

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 15:31:26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('reward_programs',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_reward_programs_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', name=op.f('pk_reward_programs'))
    )
    op.create_table('rewards',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('redemption_id', sa.Integer(), nullable=False),
    sa.Column('forward_id', sa.Integer(), nullable=False),
    sa.Column('referrer_key', sa.String(length=160), nullable=False),
    sa.Column('referrer_name', sa.String(length=80), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('flags', sa.JSON(), nullable=False),
    sa.Column('flagged', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('reviewed_by', sa.String(length=254), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_rewards_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['forward_id'], ['forwards.id'], name=op.f('fk_rewards_forward_id_forwards')),
    sa.ForeignKeyConstraint(['redemption_id'], ['redemptions.id'], name=op.f('fk_rewards_redemption_id_redemptions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rewards')),
    sa.UniqueConstraint('redemption_id', name=op.f('uq_rewards_redemption_id'))
    )
    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.create_index('ix_rewards_campaign_referrer', ['campaign_id', 'referrer_key'], unique=False)
        batch_op.create_index('ix_rewards_campaign_status', ['campaign_id', 'status', 'flagged'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.drop_index('ix_rewards_campaign_status')
        batch_op.drop_index('ix_rewards_campaign_referrer')

    op.drop_table('rewards')
    op.drop_table('reward_programs')
