"""opt-out log and consents

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 14:29:58.991458
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('opt_out_log_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('entry_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_opt_out_log_head'))
    )
    op.create_table('consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_hash', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('given_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_consents_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consents'))
    )
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.create_index('ix_consents_contact_channel', ['contact_hash', 'channel'], unique=False)

    op.create_table('opt_out_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=8), nullable=False),
    sa.Column('contact_hash', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('entry_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_opt_out_log_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_opt_out_log_message_id_messages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_opt_out_log')),
    sa.UniqueConstraint('entry_hash', name=op.f('uq_opt_out_log_entry_hash')),
    sa.UniqueConstraint('seq', name=op.f('uq_opt_out_log_seq'))
    )
    with op.batch_alter_table('opt_out_log', schema=None) as batch_op:
        batch_op.create_index('ix_opt_out_log_contact', ['contact_hash'], unique=False)
        batch_op.create_index('ix_opt_out_log_created', ['created_at'], unique=False)

    # Append-only in the database too: no UPDATE or DELETE through the application's role.
    # (An owner can still drop the trigger; the hash chain is what makes that visible.)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(
            "CREATE FUNCTION opt_out_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'the opt-out log is append-only'; END $$"
        )
        op.execute(
            'CREATE TRIGGER opt_out_log_append_only BEFORE UPDATE OR DELETE ON opt_out_log '
            'FOR EACH ROW EXECUTE FUNCTION opt_out_log_append_only()'
        )
    else:
        for event in ('UPDATE', 'DELETE'):
            op.execute(
                f'CREATE TRIGGER opt_out_log_no_{event.lower()} BEFORE {event} ON opt_out_log '
                "BEGIN SELECT RAISE(ABORT, 'the opt-out log is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER opt_out_log_append_only ON opt_out_log')
        op.execute('DROP FUNCTION opt_out_log_append_only()')
    else:
        op.execute('DROP TRIGGER opt_out_log_no_update')
        op.execute('DROP TRIGGER opt_out_log_no_delete')
    with op.batch_alter_table('opt_out_log', schema=None) as batch_op:
        batch_op.drop_index('ix_opt_out_log_created')
        batch_op.drop_index('ix_opt_out_log_contact')

    op.drop_table('opt_out_log')
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_index('ix_consents_contact_channel')

    op.drop_table('consents')
    op.drop_table('opt_out_log_head')
