"""The console's forward tree: one forward and the branches below it, largest first, bounded.

Read from the roll-ups (each forward's clicks, conversions and children are in `forward_stats`,
its descendants in `forward_reach`), one query per level shown: a tree of a million forwards shows
at most `SHOWN_LEVELS` levels, `SHOWN_CHILDREN` children of a node and `SHOWN_NODES` nodes in
all. What is left out is said: "and N more" under a node, and a link to open a branch cut at
the last level on a page of its own. (The JSON API's `forward_tree` reads the forwards live.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.db import Database
from engine.models import Forward, ForwardReach, ForwardStats
from engine.services.analytics.sql import find_campaign_id
from engine.services.analytics.tree import ForwardNotFound, ancestors_cte

SHOWN_LEVELS = 6  # the forward and 5 levels below it
SHOWN_CHILDREN = 8  # per node, the largest
SHOWN_NODES = 250  # in all


@dataclass(frozen=True)
class NodeRow:
    """A forward's figures as the roll-up keeps them."""

    forward_id: int
    parent_id: int | None
    public_id: str
    generation: int
    channel: str
    sender_name: str
    clicks: int
    conversions: int
    children: int
    descendants: int


@dataclass
class Branch:
    row: NodeRow
    shown: list[Branch] = field(default_factory=list)

    @property
    def more(self) -> int:
        """Children of this forward that are not shown."""
        return self.row.children - len(self.shown)

    @property
    def cut(self) -> bool:
        """Whether its children were left out entirely (the last level shown, or the budget spent)."""
        return self.row.children > 0 and not self.shown


@dataclass(frozen=True)
class Ancestor:
    public_id: str
    generation: int
    sender_name: str


@dataclass(frozen=True)
class BranchTree:
    root: Branch
    ancestors: list[Ancestor]  # the chain's first forward first
    nodes_shown: int


def largest_first(rows: Iterable[NodeRow]) -> list[NodeRow]:
    """Siblings in the order the tree shows them: most forwards below first, then the oldest."""
    return sorted(rows, key=lambda r: (-r.descendants, r.forward_id))


def assemble(root: NodeRow, levels: list[list[NodeRow]], *, children: int, budget: int) -> tuple[Branch, int]:
    """The tree below `root` from its rows read level by level: each node's largest `children`
    children, level after level until `budget` nodes are shown (the root included), so that a
    wide level never crowds out the levels above it. Returns the tree and the nodes shown."""
    top = Branch(root)
    placed = {root.forward_id: top}
    shown = 1
    for level in levels:
        by_parent: dict[int, list[NodeRow]] = {}
        for row in level:
            if row.parent_id in placed:
                by_parent.setdefault(row.parent_id, []).append(row)
        parents = [placed[p] for p in by_parent]
        for parent in sorted(parents, key=lambda b: (-b.row.descendants, b.row.forward_id)):
            for row in largest_first(by_parent[parent.row.forward_id])[:children]:
                if shown >= budget:
                    return top, shown
                node = Branch(row)
                parent.shown.append(node)
                placed[row.forward_id] = node
                shown += 1
    return top, shown


def branch_tree(db: Database, slug: str, public_id: str) -> BranchTree:
    """The forward `public_id` of the campaign, the chain above it and its largest branches."""
    with db.reading() as session:
        campaign_id = find_campaign_id(session, slug)
        root = _rows(session, ForwardStats.campaign_id == campaign_id, Forward.public_id == public_id)
        if not root:
            raise ForwardNotFound(f"no forward {public_id!r} in {slug!r}")
        levels: list[list[NodeRow]] = []
        parents = [root[0]]
        for _level in range(SHOWN_LEVELS - 1):
            parents = [p for p in parents if p.children > 0][:SHOWN_NODES]
            if not parents:
                break
            level = _children(session, [p.forward_id for p in parents])
            levels.append(level)
            parents = level
        tree, shown = assemble(root[0], levels, children=SHOWN_CHILDREN, budget=SHOWN_NODES)
        return BranchTree(tree, _ancestors(session, root[0].forward_id), shown)


def _columns() -> tuple[object, ...]:
    s = ForwardStats.__table__.c
    return (
        s.forward_id,
        s.parent_id,
        Forward.public_id,
        s.generation,
        s.channel,
        s.sender_name,
        s.clicks,
        s.conversions,
        s.children,
        ForwardReach.__table__.c.descendants,
    )


def _rows(session: Session, *where: object) -> list[NodeRow]:
    s = ForwardStats.__table__.c
    r = ForwardReach.__table__.c
    query = (
        select(*_columns())  # type: ignore[call-overload]
        .join(ForwardReach, r.forward_id == s.forward_id)
        .join(Forward, Forward.id == s.forward_id)
        .where(*where)
    )
    return [NodeRow(*row) for row in session.execute(query)]


def _children(session: Session, parent_ids: list[int]) -> list[NodeRow]:
    """The largest SHOWN_CHILDREN children of each parent, in one query."""
    s = ForwardStats.__table__.c
    r = ForwardReach.__table__.c
    rank = func.row_number().over(partition_by=s.parent_id, order_by=(r.descendants.desc(), s.forward_id))
    ranked = (
        select(*_columns(), rank.label("rank"))  # type: ignore[call-overload]
        .join(ForwardReach, r.forward_id == s.forward_id)
        .join(Forward, Forward.id == s.forward_id)
        .where(s.parent_id.in_(parent_ids))
        .subquery()
    )
    names = [c.key for c in ranked.c if c.key != "rank"]
    query = select(*(ranked.c[n] for n in names)).where(ranked.c.rank <= SHOWN_CHILDREN)
    return [NodeRow(*row) for row in session.execute(query)]


def _ancestors(session: Session, forward_id: int) -> list[Ancestor]:
    up = ancestors_cte(forward_id)
    rows = session.execute(
        select(Forward.public_id, Forward.generation, Forward.sender_name)
        .join(up, up.c.id == Forward.id)
        .where(up.c.distance > 0)
        .order_by(up.c.distance.desc())
    )
    return [Ancestor(*row) for row in rows]
