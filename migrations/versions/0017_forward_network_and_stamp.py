"""forwards: the sender's network (its hash) and the render stamp that sent them

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 02:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("forwards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_network_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("form_stamp", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_forwards_form_stamp", ["form_stamp"], unique=False)
    # The network of an older forward cannot be worked out from its address's hash: each
    # address stays a network of its own, as the pause rule counted it before.
    forwards = sa.table("forwards", sa.column("client_ip_hash"), sa.column("client_network_hash"))
    op.execute(forwards.update().values(client_network_hash=forwards.c.client_ip_hash))


def downgrade() -> None:
    with op.batch_alter_table("forwards", schema=None) as batch_op:
        batch_op.drop_index("ix_forwards_form_stamp")
        batch_op.drop_column("form_stamp")
        batch_op.drop_column("client_network_hash")
