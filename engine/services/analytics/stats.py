"""The pieces a full rebuild and an incremental refresh share, so that both compute every
figure with the same SQL: a forward's own figures (`forward_stats`), the figures below it
(`forward_reach`), a slice's median cycle time, a sender's ambassador row."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Integer,
    and_,
    any_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from engine.models import (
    AmbassadorStats,
    Click,
    Forward,
    ForwardReach,
    ForwardStats,
    Message,
    MessageStatus,
    Redemption,
)
from engine.services.analytics.figures import ALL_CHANNELS, ALL_GENERATIONS
from engine.services.analytics.sql import dialect, seconds_between, sender_key_expression, upsert, utc_day

# A message counts as delivered once a provider accepted it and has not reported it lost:
# SMTP and the outbox never confirm delivery, so counting only `delivered` would show 0 there.
DELIVERED_STATUSES = (MessageStatus.SENT.value, MessageStatus.DELIVERED.value)

# Ids per `IN (...)` on SQLite: well under its limit of bound parameters. PostgreSQL takes
# any number in one array parameter (`= ANY(...)`).
CHUNK = 500

FORWARD_STATS_COLUMNS = [
    "forward_id",
    "campaign_id",
    "parent_id",
    "root_id",
    "generation",
    "channel",
    "arrival_channel",
    "sender_key",
    "sender_name",
    "day",
    "delivered",
    "clicks",
    "prefetches",
    "children",
    "cycle_seconds",
    "conversions",
    # Kept for the release before (migration 0038): 0 here, what is below is `forward_reach`'s.
    "descendants",
    "downstream_conversions",
    "height",
]


def chunks(session: Session, ids: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """The ids in as few lists as `among` takes: one on PostgreSQL, CHUNK at a time on SQLite."""
    size = len(ids) if dialect(session) == "postgresql" else CHUNK
    for start in range(0, len(ids), max(size, 1)):
        yield ids[start : start + size]


def among(session: Session, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN values`: on PostgreSQL one array parameter (`= ANY`), whatever the number of
    values (no statement with thousands of parameters to compile); on SQLite a plain IN."""
    if dialect(session) == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def forward_rows(session: Session, campaign_id: int, tree: FromClause, ids: Sequence[int] | None = None) -> Any:
    """The `forward_stats` rows of the campaign's forwards (of `ids` only, when given): their
    own figures (what is below them is `forward_reach`'s: `add_downstream`). `tree` gives each forward's
    `root_id` and `arrival_channel` by `id`."""
    f = Forward.__table__
    person = Click.prefetch.is_(False)
    clicks = _per_forward(
        session,
        select(
            Click.forward_id,
            func.count().filter(person).label("n"),
            func.count().filter(Click.prefetch).label("prefetches"),
            # The cycle starts at a person's first click, not at a preview's fetch.
            func.min(Click.created_at).filter(person).label("first"),
        ),
        Click.forward_id,
        campaign_id,
        ids,
    ).subquery("click_counts")
    only_children = among(session, Forward.parent_id, ids) if ids is not None else Forward.parent_id.is_not(None)
    children = (
        select(Forward.parent_id, func.count().label("n"), func.min(Forward.created_at).label("first"))
        .where(Forward.campaign_id == campaign_id, only_children)
        .group_by(Forward.parent_id)
        .subquery("child_counts")
    )
    delivered = _per_forward(
        session,
        select(Message.forward_id, func.count().label("n")).where(Message.status.in_(DELIVERED_STATUSES)),
        Message.forward_id,
        campaign_id,
        ids,
    ).subquery("delivered_counts")
    only_redemptions = (
        among(session, Redemption.forward_id, ids) if ids is not None else Redemption.forward_id.is_not(None)
    )
    conversions = (
        select(Redemption.forward_id, func.count().label("n"))
        .where(Redemption.campaign_id == campaign_id, only_redemptions)
        .group_by(Redemption.forward_id)
        .subquery("conversion_counts")
    )
    cycle = seconds_between(session, children.c.first, clicks.c.first)
    query = (
        select(
            f.c.id,
            f.c.campaign_id,
            f.c.parent_id,
            tree.c.root_id,
            f.c.generation,
            f.c.channel,
            tree.c.arrival_channel,
            sender_key_expression(f.c),
            f.c.sender_name,
            utc_day(session, f.c.created_at),
            func.coalesce(delivered.c.n, 0),
            func.coalesce(clicks.c.n, 0),
            func.coalesce(clicks.c.prefetches, 0),
            func.coalesce(children.c.n, 0),
            # A forward made before its click (a link opened in another browser) is a cycle of 0.
            case((cycle < 0, 0.0), else_=cycle),
            func.coalesce(conversions.c.n, 0),
            literal(0, Integer),
            literal(0, Integer),
            literal(0, Integer),
        )
        .select_from(f)
        .join(tree, tree.c.id == f.c.id)
        .outerjoin(clicks, clicks.c.forward_id == f.c.id)
        .outerjoin(children, children.c.parent_id == f.c.id)
        .outerjoin(delivered, delivered.c.forward_id == f.c.id)
        .outerjoin(conversions, conversions.c.forward_id == f.c.id)
        .where(f.c.campaign_id == campaign_id)
    )
    return query.where(among(session, f.c.id, ids)) if ids is not None else query


def _per_forward(session: Session, query: Any, forward_id: Any, campaign_id: int, ids: Sequence[int] | None) -> Any:
    """A count per forward: of the given forwards (already the campaign's) by their index, or of
    every forward of the campaign."""
    if ids is not None:
        return query.where(among(session, forward_id, ids)).group_by(forward_id)
    return query.join(Forward, Forward.id == forward_id).where(Forward.campaign_id == campaign_id).group_by(forward_id)


def insert_forward_rows(session: Session, rows: Any) -> None:
    s = ForwardStats.__table__.c
    session.execute(insert(ForwardStats.__table__).from_select([s[name] for name in FORWARD_STATS_COLUMNS], rows))


def replace_forward_rows(session: Session, rows: Any) -> None:
    """Write these rows over the forwards' rows: a new forward's inserted, an old one's updated
    only where a figure differs. A row the refresh looked at again unchanged (a rescan, a
    forward whose parent got a child) is not written at all, and one whose unindexed figures
    changed (clicks, delivered, conversions) can be rewritten in its own page, without new index
    entries, where a delete and insert would write all of them."""
    fs = ForwardStats.__table__
    statement = upsert(session, fs).from_select([fs.c[name] for name in FORWARD_STATS_COLUMNS], rows)
    changing = [name for name in FORWARD_STATS_COLUMNS if name != "forward_id"]
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["forward_id"],
            set_={name: statement.excluded[name] for name in changing},
            where=or_(*(fs.c[name].is_distinct_from(statement.excluded[name]) for name in changing)),
        )
    )


def insert_reach_rows(session: Session, campaign_id: int, ids: Sequence[int] | None = None) -> None:
    """Give the campaign's forwards (of `ids` only, when given) that have a `forward_stats` row
    but no `forward_reach` row one with nothing below them yet (`add_downstream` fills it in)."""
    s = ForwardStats.__table__.c
    r = ForwardReach.__table__
    rows = select(
        s.forward_id, s.campaign_id, s.generation, literal(0, Integer), literal(0, Integer), literal(0, Integer)
    ).where(s.campaign_id == campaign_id)
    if ids is not None:
        rows = rows.where(
            among(session, s.forward_id, ids), ~select(r.c.forward_id).where(r.c.forward_id == s.forward_id).exists()
        )
    columns = [r.c.forward_id, r.c.campaign_id, r.c.generation, r.c.descendants, r.c.downstream_conversions, r.c.height]
    session.execute(insert(r).from_select(columns, rows))


def reach_below(children: Any) -> Any:
    """Per parent, the figures below it from its children's rows (`children`: a filter on the
    children's `forward_reach` rows): each child, everything below each child, their
    conversions and those below them, one level more than the highest child."""
    s = ForwardStats.__table__.c
    r = ForwardReach.__table__.c
    return (
        select(
            s.parent_id.label("parent_id"),
            (func.count() + func.sum(r.descendants)).label("descendants"),
            func.sum(s.conversions + r.downstream_conversions).label("conversions"),
            (func.max(r.height) + 1).label("height"),
        )
        .select_from(ForwardReach.__table__.join(ForwardStats.__table__, s.forward_id == r.forward_id))
        .where(children)
        .group_by(s.parent_id)
        .subquery("below")
    )


def write_reach(session: Session, below: Any) -> list[int]:
    """Set the `forward_reach` rows of the parents in `below` to its figures, only where they
    differ (an unchanged row is not written at all: no new row version, no index entries).
    Returns the forwards whose rows changed."""
    r = ForwardReach.__table__
    statement = (
        update(r)
        .where(
            r.c.forward_id == below.c.parent_id,
            or_(
                r.c.descendants != below.c.descendants,
                r.c.downstream_conversions != below.c.conversions,
                r.c.height != below.c.height,
            ),
        )
        .values(descendants=below.c.descendants, downstream_conversions=below.c.conversions, height=below.c.height)
        .returning(r.c.forward_id)
    )
    return list(session.scalars(statement))


def add_downstream(session: Session, forward_ids: Sequence[int]) -> list[int]:
    """Set descendants, conversions below and height of these forwards from their children's
    rows, which must be up to date: callers go one generation at a time, from the deepest up.
    Only forwards with children are written (a forward without any has nothing below it), and
    only those whose figures change. Returns those."""
    s = ForwardStats.__table__.c
    changed: list[int] = []
    for ids in chunks(session, forward_ids):
        changed += write_reach(session, reach_below(among(session, s.parent_id, ids)))
    return changed


def cell_filter(campaign_id: int, generation: int, channel: str) -> ColumnElement[bool]:
    """The forward_stats rows of a metric cell (for every figure but senders, which a
    channel's cell counts by the channel that brought them)."""
    s = ForwardStats.__table__.c
    where = [s.campaign_id == campaign_id]
    if generation != ALL_GENERATIONS:
        where.append(s.generation == generation)
    if channel != ALL_CHANNELS:
        where.append(s.channel == channel)
    return and_(*where)


def median_cycle(session: Session, campaign_id: int, generation: int, channel: str) -> float | None:
    """The median cycle time of a slice, read through a partial index on the cycle times: the
    middle one or two of them (averaged as `statistics.median` does). The same on PostgreSQL and
    SQLite, and the same whether a full rebuild or an incremental refresh asks."""
    s = ForwardStats.__table__.c
    where = and_(cell_filter(campaign_id, generation, channel), s.cycle_seconds.is_not(None))
    count = session.scalar(select(func.count()).select_from(ForwardStats.__table__).where(where)) or 0
    if count == 0:
        return None
    middle = session.scalars(
        select(s.cycle_seconds).where(where).order_by(s.cycle_seconds).offset((count - 1) // 2).limit(2 - count % 2)
    ).all()
    return float(middle[0]) if len(middle) == 1 else (float(middle[0]) + float(middle[1])) / 2


def ambassador_rows(session: Session, campaign_id: int, sender_keys: Sequence[str] | None = None) -> Any:
    s = ForwardStats.__table__.c
    r = ForwardReach.__table__.c
    rows = (
        select(
            s.campaign_id,
            s.sender_key,
            func.max(s.sender_name),
            func.min(s.generation),
            func.count(),
            func.sum(1 + r.descendants),
            func.sum(s.conversions + r.downstream_conversions),
        )
        .select_from(ForwardStats.__table__.join(ForwardReach.__table__, r.forward_id == s.forward_id))
        .where(s.campaign_id == campaign_id)
        .group_by(s.campaign_id, s.sender_key)
    )
    return rows.where(among(session, s.sender_key, sender_keys)) if sender_keys is not None else rows


def insert_ambassadors(session: Session, campaign_id: int, sender_keys: Sequence[str] | None = None) -> None:
    """Write the ambassador rows of the campaign (of these sender keys only, replacing theirs)."""
    a = AmbassadorStats.__table__.c
    columns = [a.campaign_id, a.sender_key, a.sender_name, a.generation, a.forwards, a.reach, a.conversions]
    if sender_keys is None:
        session.execute(insert(AmbassadorStats.__table__).from_select(columns, ambassador_rows(session, campaign_id)))
        return
    for keys in chunks(session, sorted(sender_keys)):
        session.execute(
            delete(AmbassadorStats.__table__).where(a.campaign_id == campaign_id, among(session, a.sender_key, keys))
        )
        session.execute(
            insert(AmbassadorStats.__table__).from_select(columns, ambassador_rows(session, campaign_id, keys))
        )
