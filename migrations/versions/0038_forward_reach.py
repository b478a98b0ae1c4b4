"""forward reach: what is below a forward in a narrow table of its own; daily cohorts for mature K

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

K on mature cohorts counted distinct senders over every mature `forward_stats` row at each
read. `daily_cohorts` keeps, per day and generation (0: all), the invites, those that became
senders, and the senders whose first forward was made that day, filled here from
`forward_stats`: the dashboard sums a few hundred rows instead. Over a date range from a given
day it still counts the rows, through a new index on `forward_stats (campaign_id, day)`.

An incremental refresh now rewrites a re-derived `forward_stats` row only where a figure
changed, as an update rather than a delete and an insert; on PostgreSQL the table's pages are
left a tenth free from now on, so that such an update (clicks, delivered, conversions: no
indexed column) can stay in the row's page without new index entries.

Both fills read every `forward_stats` row, and the new indexes are built from them: about ten
seconds at a million forwards, on a table the app keeps busy. Run it in a quiet hour
(docs/operations.md).

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
        "ix_forward_reach_campaign_reach",
        "forward_reach",
        ["campaign_id", "generation", sa.column("descendants").desc(), "forward_id"],
        unique=False,
    )
    with op.batch_alter_table("forward_stats", schema=None) as batch_op:
        batch_op.drop_index("ix_forward_stats_campaign_reach")
        batch_op.create_index(
            "ix_forward_stats_day",
            ["campaign_id", "day"],
            unique=False,
            postgresql_include=["generation", "sender_key"],
        )
    op.create_table(
        "daily_cohorts",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("invites", sa.Integer(), nullable=False),
        sa.Column("became_senders", sa.Integer(), nullable=False),
        sa.Column("first_senders", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_daily_cohorts_campaign_id_campaigns"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("campaign_id", "day", "generation", name=op.f("pk_daily_cohorts")),
    )
    # What a rebuild counts (engine.services.analytics.cohorts), generation 0 being all of them.
    op.execute(
        "WITH days AS ("
        " SELECT campaign_id, day, generation, count(*) AS invites,"
        " sum(CASE WHEN children > 0 THEN 1 ELSE 0 END) AS became"
        " FROM forward_stats GROUP BY campaign_id, day, generation"
        " UNION ALL SELECT campaign_id, day, 0, count(*), sum(CASE WHEN children > 0 THEN 1 ELSE 0 END)"
        " FROM forward_stats GROUP BY campaign_id, day),"
        " firsts AS ("
        " SELECT campaign_id, generation, first, count(*) AS senders FROM ("
        " SELECT campaign_id, generation, min(day) AS first FROM forward_stats"
        " GROUP BY campaign_id, sender_key, generation) AS per_generation GROUP BY campaign_id, generation, first"
        " UNION ALL SELECT campaign_id, 0, first, count(*) FROM ("
        " SELECT campaign_id, min(day) AS first FROM forward_stats GROUP BY campaign_id, sender_key) AS overall"
        " GROUP BY campaign_id, first)"
        " INSERT INTO daily_cohorts (campaign_id, day, generation, invites, became_senders, first_senders)"
        " SELECT d.campaign_id, d.day, d.generation, d.invites, d.became, coalesce(f.senders, 0) FROM days AS d"
        " LEFT JOIN firsts AS f ON f.campaign_id = d.campaign_id AND f.generation = d.generation AND f.first = d.day"
    )
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE forward_stats SET (fillfactor = 90)")
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
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE forward_stats RESET (fillfactor)")
    op.drop_table("daily_cohorts")
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
