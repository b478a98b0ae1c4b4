"""staff: teams on accounts, keys and campaigns; API key scopes; revocable sessions; TOTP

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 01:30:00

Existing accounts, keys and campaigns go to the `default` team; existing keys get the scopes
their role allowed before scopes existed (admin and marketer: redemptions and metrics:read;
compliance: metrics:read, for the live cap usage every role could read).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLE_SCOPES = {
    'admin': 'redemptions metrics:read',
    'marketer': 'redemptions metrics:read',
    'compliance': 'metrics:read',
}


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('team', sa.String(length=64), server_default='default', nullable=False))
        batch_op.add_column(sa.Column('session_epoch', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('totp_secret', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('team', sa.String(length=64), server_default='default', nullable=False))
        batch_op.add_column(sa.Column('scopes', sa.String(length=200), server_default='', nullable=False))
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('team', sa.String(length=64), server_default='default', nullable=False))
        batch_op.create_index(batch_op.f('ix_campaigns_team'), ['team'], unique=False)
    api_keys = sa.table('api_keys', sa.column('role', sa.String), sa.column('scopes', sa.String))
    for role, scopes in _ROLE_SCOPES.items():
        op.execute(api_keys.update().where(api_keys.c.role == role).values(scopes=scopes))


def downgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaigns_team'))
        batch_op.drop_column('team')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('scopes')
        batch_op.drop_column('team')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_secret')
        batch_op.drop_column('session_epoch')
        batch_op.drop_column('team')
