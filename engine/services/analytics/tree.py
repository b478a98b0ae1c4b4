"""The tree of one forward, read live: the chain above it and the forwards below it, with
recursive CTEs (the same on SQLite and PostgreSQL); the walk down stops after `limit` forwards."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import CTE

from engine.db import Database
from engine.models import Forward
from engine.services.analytics.figures import TreeNode
from engine.services.analytics.sql import find_campaign_id

MAX_TREE_NODES = 500


class ForwardNotFound(LookupError):
    pass


def ancestors_cte(forward_id: int) -> CTE:
    """The forward and every forward above it, with its distance (0 for the forward itself)."""
    f = Forward.__table__
    start = select(f.c.id, f.c.parent_id, literal(0, Integer).label("distance")).where(f.c.id == forward_id)
    up = start.cte("ancestors", recursive=True)
    parent = f.alias("parent")
    return up.union_all(select(parent.c.id, parent.c.parent_id, up.c.distance + 1).where(parent.c.id == up.c.parent_id))


def descendants_cte(forward_id: int) -> CTE:
    """Every forward below the forward, with its depth below it (1 for its children)."""
    f = Forward.__table__
    start = select(f.c.id, f.c.parent_id, literal(1, Integer).label("depth")).where(f.c.parent_id == forward_id)
    down = start.cte("descendants", recursive=True)
    child = f.alias("child")
    return down.union_all(select(child.c.id, child.c.parent_id, down.c.depth + 1).where(child.c.parent_id == down.c.id))


def downstream_reach(session: Session, forward_id: int) -> int:
    """How many forwards descend from this one, counted live (the roll-up keeps it for all)."""
    down = descendants_cte(forward_id)
    return session.scalar(select(func.count()).select_from(down)) or 0


@dataclass(frozen=True)
class ForwardTree:
    forward: TreeNode
    ancestors: list[TreeNode]  # the root first
    descendants: list[TreeNode]  # level by level
    truncated: bool

    @property
    def depth(self) -> int:
        """Levels below the forward (among the descendants read)."""
        return max((d.generation - self.forward.generation for d in self.descendants), default=0)

    @property
    def breadth(self) -> int:
        """The most descendants on one level (among those read)."""
        levels: dict[int, int] = defaultdict(int)
        for node in self.descendants:
            levels[node.generation] += 1
        return max(levels.values(), default=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "forward": self.forward.to_json(),
            "ancestors": [a.to_json() for a in self.ancestors],
            "descendants": [d.to_json() for d in self.descendants],
            "descendant_count": None if self.truncated else len(self.descendants),
            "depth": self.depth,
            "breadth": self.breadth,
            "truncated": self.truncated,
        }


def forward_tree(db: Database, slug: str, public_id: str, limit: int = MAX_TREE_NODES) -> ForwardTree:
    """A forward with its ancestors and (up to `limit` of) its descendants."""
    with db.reading() as session:
        campaign_id = find_campaign_id(session, slug)
        forward = session.scalar(
            select(Forward).where(Forward.public_id == public_id, Forward.campaign_id == campaign_id)
        )
        if forward is None:
            raise ForwardNotFound(f"no forward {public_id!r} in {slug!r}")
        up = ancestors_cte(forward.id)
        ancestors = list(
            session.scalars(
                select(Forward).join(up, up.c.id == Forward.id).where(up.c.distance > 0).order_by(up.c.distance.desc())
            )
        )
        down = descendants_cte(forward.id)
        # No ORDER BY: both databases hand rows out level by level as the walk goes, so the
        # LIMIT stops a walk through a huge subtree early instead of after the whole of it.
        below = list(session.scalars(select(Forward).join(down, down.c.id == Forward.id).limit(limit + 1)))
        truncated = len(below) > limit
        below = sorted(below[:limit], key=lambda f: (f.generation, f.id))
        public_ids = {f.id: f.public_id for f in [*ancestors, forward, *below]}
        return ForwardTree(
            forward=_node(forward, public_ids),
            ancestors=[_node(a, public_ids) for a in ancestors],
            descendants=[_node(d, public_ids) for d in below],
            truncated=truncated,
        )


def _node(forward: Forward, public_ids: Mapping[int, str]) -> TreeNode:
    return TreeNode(
        public_id=forward.public_id,
        parent=public_ids.get(forward.parent_id) if forward.parent_id else None,
        generation=forward.generation,
        channel=forward.channel,
        sender_name=forward.sender_name,
        created_at=forward.created_at,
    )
