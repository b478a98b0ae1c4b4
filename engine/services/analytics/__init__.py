"""Campaign analytics: how an offer spread, generation by generation, and who spread it.

Definitions (docs/analytics.md has them in full, with the reasons):

- a *visitor* is a view of the landing page, counted in Redis as it happens (`VisitCounter`)
  and folded into the `visits` roll-up by day, generation (1 for a direct visitor, n + 1 for
  one who came through a forward of generation n) and arrival channel; no visitor is
  identified, so a reload counts again;
- an *invite* is a forward; each friend is invited at most once per campaign, so the
  *invitees* of a generation are its invites;
- a *sender* of generation g is a distinct sender key among the forwards of generation g
  (`sender_key_expression`);
- an invitee *became a sender* when a forward of generation g + 1 has their forward as parent;
- K_g = (invites_g / senders_g) * (became_g / invitees_g), and the same over all generations;
- the *cycle time* is the median, over forwards that were clicked and forwarded on, of the
  time from the first click to the recipient's first own forward;
- *conversions* are redemptions, credited to the redeemed forward's generation and channel.

Every figure is a SQL aggregate. The expensive ones are computed by `refresh_rollups` into
small tables (engine.models.analytics), which the dashboard reads; landing visits are
counted in Redis as they happen (no database write on the landing page) and folded into
`visits` by each refresh. The forward tree of one forward is read live, with recursive CTEs.

The modules, each one part (this package's names below are the ones the rest of the code uses):

- `formulas`: K, the reach projection and the ceiling the caps put on it (pure arithmetic);
- `figures`: the value objects the dashboard shows, and their JSON;
- `export`: one figure as CSV;
- `sql`: the sender key, a campaign's id, and what differs between the databases;
- `visits`: the visit counter in Redis and its fold into `visits`;
- `rollups`: the refresh of the roll-ups (incremental) and their full rebuild;
- `incremental`: what an incremental refresh folds in, and how;
- `watermarks`: where an incremental refresh starts, safely under concurrent writers;
- `stats`: the SQL a rebuild and an incremental refresh share;
- `dashboard`: the read queries of a campaign's figures;
- `tree`: the tree of one forward, read live (the JSON API);
- `maturity`: K on mature cohorts (forwards old enough to have been forwarded on);
- `branches`: the console's tree of one forward, bounded, from the roll-ups.
"""

from engine.services.analytics.dashboard import campaign_metrics, ensure_fresh
from engine.services.analytics.export import CSV_FIGURES, metrics_csv
from engine.services.analytics.figures import (
    Ambassador,
    CampaignMetrics,
    Chain,
    DayPoint,
    FunnelStage,
    SliceMetrics,
    TreeNode,
)
from engine.services.analytics.formulas import Projection, message_ceiling, project_reach, viral_coefficient
from engine.services.analytics.rollups import RefreshReport, rebuild_rollups, refresh_rollups
from engine.services.analytics.sql import sender_key_expression
from engine.services.analytics.tree import ForwardNotFound, ForwardTree, downstream_reach, forward_tree
from engine.services.analytics.visits import VisitCounter, VisitSlice, count_visit, fold_visits, visit_slice

__all__ = [
    "CSV_FIGURES",
    "Ambassador",
    "CampaignMetrics",
    "Chain",
    "DayPoint",
    "ForwardNotFound",
    "ForwardTree",
    "FunnelStage",
    "Projection",
    "RefreshReport",
    "SliceMetrics",
    "TreeNode",
    "VisitCounter",
    "VisitSlice",
    "campaign_metrics",
    "count_visit",
    "downstream_reach",
    "ensure_fresh",
    "fold_visits",
    "forward_tree",
    "message_ceiling",
    "metrics_csv",
    "project_reach",
    "rebuild_rollups",
    "refresh_rollups",
    "sender_key_expression",
    "viral_coefficient",
    "visit_slice",
]
