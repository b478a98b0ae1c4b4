"""forward reach: what is below a forward in a narrow table of its own; an index for mature K

An incremental refresh rewrites `descendants`, `downstream_conversions` and `height` of every
ancestor of the forwards it folds in: thousands of rows. In `forward_stats` each of those
rewrites was a new version of a wide row with new entries in all eight of its indexes
(`descendants` is indexed, so PostgreSQL could not update in place). The three figures move to
`forward_reach` (one narrow row per forward, two indexes, pages left 20% free), filled here
from the old columns.

Expand, then contract (docs/operations.md): the old columns stay, for the release before this
one, which reads and writes them until a rolling deploy has replaced it. This release no longer
reads them and writes 0 in its new rows; a later migration drops them.
Their index goes now (it only made the old release's largest-chains query quicker). So that a
refresh made by the old release after this migration (which changed the old columns, not
`forward_reach`) is never carried on from, this release marks the watermarks of the campaigns
it refreshed (`forward_reach` in `rollup_state.watermarks`); the old release writes them
without the mark, and a campaign without it is rebuilt. The rows filled here are marked.

Also an index on `forward_stats (campaign_id, day)` with what K on mature cohorts counts
(generation, sender key, children), which the dashboard reads from the index alone.

Revision ID: 0038_forward_reach
Revises: 0037_experiment_settings
Create Date: 2026-12-07 23:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0038_forward_reach"
down_revision: str | None = "0037_experiment_settings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "forward_reach",
        sa.Column("forward_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("descendants", sa.Integer(), nullable=False),
        sa.Column("downstream_conversions", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_forward_reach_campaign_id_campaigns"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["forward_id"], ["forwards.id"], name=op.f("fk_forward_reach_forward_id_forwards"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("forward_id", name=op.f("pk_forward_reach")),
        postgresql_with={"fillfactor": 80},
    )
    op.execute(
        "INSERT INTO forward_reach (forward_id, campaign_id, generation, descendants, downstream_conversions, height)"
        " SELECT forward_id, campaign_id, generation, descendants, downstream_conversions, height FROM forward_stats"
    )
    # After the fill: one sort, instead of an index kept up row by row.
    op.create_index(
        "ix_forward_reach_campaign_reach", "forward_reach", ["campaign_id", "generation", "descendants"], unique=False
    )
    with op.batch_alter_table("forward_stats", schema=None) as batch_op:
        batch_op.drop_index("ix_forward_stats_campaign_reach")
        batch_op.create_index(
            "ix_forward_stats_day",
            ["campaign_id", "day"],
            unique=False,
            postgresql_include=["generation", "sender_key", "children"],
        )
    # The rows filled above are this release's: mark them (see the docstring).
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "UPDATE rollup_state SET watermarks = (watermarks::jsonb || '{\"forward_reach\": true}'::jsonb)::json"
            " WHERE json_typeof(watermarks) = 'object'"
        )
    else:
        op.execute(
            "UPDATE rollup_state SET watermarks = json_set(watermarks, '$.forward_reach', json('true'))"
            " WHERE json_type(watermarks) = 'object'"
        )


def downgrade() -> None:
    # The figures go back where the release before reads them.
    op.execute(
        "UPDATE forward_stats SET"
        " descendants = (SELECT r.descendants FROM forward_reach r WHERE r.forward_id = forward_stats.forward_id),"
        " downstream_conversions ="
        " (SELECT r.downstream_conversions FROM forward_reach r WHERE r.forward_id = forward_stats.forward_id),"
        " height = (SELECT r.height FROM forward_reach r WHERE r.forward_id = forward_stats.forward_id)"
        " WHERE EXISTS (SELECT 1 FROM forward_reach r WHERE r.forward_id = forward_stats.forward_id)"
    )
    with op.batch_alter_table("forward_stats", schema=None) as batch_op:
        batch_op.drop_index("ix_forward_stats_day")
        batch_op.create_index(
            "ix_forward_stats_campaign_reach", ["campaign_id", "generation", "descendants"], unique=False
        )
    op.drop_index("ix_forward_reach_campaign_reach", table_name="forward_reach")
    op.drop_table("forward_reach")
