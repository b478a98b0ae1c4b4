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
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import (
    ColumnElement,
    Date,
    Float,
    Integer,
    String,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import CTE

from engine.caps import CapSettings
from engine.db import Database, utcnow
from engine.models import (
    AmbassadorStats,
    Campaign,
    Click,
    DailyForwards,
    Forward,
    ForwardStats,
    Message,
    MessageStatus,
    MetricCell,
    Redemption,
    RollupState,
    Visit,
)
from engine.services.campaigns import SLUG
from engine.services.errors import CampaignNotFound
from engine.spreadsheet import safe_cell

log = logging.getLogger(__name__)

DIRECT = "direct"  # the arrival channel of a visitor who came without a forward
ALL_CHANNELS = "*"  # MetricCell.channel of a slice over every channel
ALL_GENERATIONS = 0  # MetricCell.generation of a slice over every generation

# A message counts as delivered once a provider accepted it and has not reported it lost:
# SMTP and the outbox never confirm delivery, so counting only `delivered` would show 0 there.
DELIVERED_STATUSES = (MessageStatus.SENT.value, MessageStatus.DELIVERED.value)

# Roll-ups older than this are recomputed when a dashboard is read, if the campaign is small
# enough for that to be quick; larger campaigns are refreshed by `flask analytics refresh`.
STALE_AFTER = timedelta(seconds=15)
REFRESH_ON_READ_UP_TO = 50_000  # forwards

# The projection's horizon for a campaign without an end date, and a bound on its cycles.
DEFAULT_HORIZON_DAYS = 30.0
MAX_PROJECTED_CYCLES = 100

TOP_AMBASSADORS = 20
TOP_CHAINS = 10
TREE_VIEW_ROOTS = 5
TREE_VIEW_CHILDREN = 3
TREE_VIEW_DEPTH = 4
MAX_TREE_NODES = 500


class ForwardNotFound(LookupError):
    pass


# -- formulas ---------------------------------------------------------------------------------


def ratio(part: float, whole: float) -> float | None:
    """part ÷ whole, or None when there is nothing to divide by (not 0: "no data" is not "none")."""
    return part / whole if whole else None


def viral_coefficient(invites: int, senders: int, became_senders: int, invitees: int) -> float | None:
    """K = (invites per sender) * (the share of invitees who became senders)."""
    per_sender = ratio(invites, senders)
    became_share = ratio(became_senders, invitees)
    if per_sender is None or became_share is None:
        return None
    return per_sender * became_share


@dataclass(frozen=True)
class Projection:
    """The reach a campaign may still get: the current wave, multiplied by K once per cycle.

    additional = wave * (K + K² + … + Kⁿ), n = ⌊horizon ÷ cycle⌋ (at most MAX_PROJECTED_CYCLES);
    for K ≥ 1 the series does not converge, and the additional reach is capped at `ceiling`
    (what the campaign's message caps let it send in the horizon), when there is one."""

    current: int
    wave: int
    k: float
    cycle_days: float
    horizon_days: float
    cycles: int
    additional: int
    ceiling: int | None
    capped: bool

    def __post_init__(self) -> None:
        if min(self.current, self.wave, self.cycles, self.additional) < 0 or self.k < 0:
            raise ValueError("a projection is made of non-negative numbers")
        if self.cycle_days <= 0 or self.horizon_days < 0:
            raise ValueError("a projection needs a positive cycle time and a horizon")

    @property
    def total(self) -> int:
        return self.current + self.additional


def project_reach(
    *, current: int, wave: int, k: float, cycle_days: float, horizon_days: float, ceiling: int | None
) -> Projection:
    cycles = min(MAX_PROJECTED_CYCLES, math.floor(horizon_days / cycle_days)) if horizon_days > 0 else 0
    if cycles == 0 or k == 0:
        series = 0.0
    elif k == 1:
        series = float(cycles)
    else:
        series = k * (1 - k**cycles) / (1 - k)
    additional = wave * series
    capped = k >= 1 and ceiling is not None and additional > ceiling
    if capped:
        assert ceiling is not None
        additional = float(ceiling)
    return Projection(
        current=current,
        wave=wave,
        k=k,
        cycle_days=cycle_days,
        horizon_days=horizon_days,
        cycles=cycles,
        additional=round(additional),
        ceiling=ceiling,
        capped=capped,
    )


def message_ceiling(caps: CapSettings, horizon_days: float, invites_so_far: int) -> int | None:
    """How many more invitations the campaign's own caps let it send within the horizon."""
    bounds = []
    if caps.campaign_messages_per_day is not None:
        bounds.append(math.ceil(caps.campaign_messages_per_day * horizon_days))
    if caps.campaign_messages_total is not None:
        bounds.append(max(0, caps.campaign_messages_total - invites_so_far))
    return min(bounds) if bounds else None


# -- value objects ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SliceMetrics:
    """The figures of a generation, a channel, or the whole campaign (None: every one)."""

    generation: int | None
    channel: str | None
    visitors: int
    senders: int
    invites: int
    became_senders: int
    delivered: int
    clicked: int
    clicks: int
    conversions: int
    cycle_time_seconds: float | None

    def __post_init__(self) -> None:
        counts = (self.visitors, self.senders, self.invites, self.became_senders, self.delivered, self.clicked)
        if min(*counts, self.clicks, self.conversions) < 0:
            raise ValueError("counts cannot be negative")
        if self.became_senders > self.invites or self.clicked > self.invites or self.delivered > self.invites:
            raise ValueError("became senders, clicked and delivered are counted among the invites")
        if self.generation is not None and self.generation < 1:
            raise ValueError("generations start at 1")

    @property
    def invitees(self) -> int:
        # Each friend is invited at most once per campaign (ForwardingService skips the rest).
        return self.invites

    @property
    def share_rate(self) -> float | None:
        return ratio(self.senders, self.visitors)

    @property
    def click_through(self) -> float | None:
        return ratio(self.clicked, self.delivered)

    @property
    def k(self) -> float | None:
        # Per channel, senders are counted by the channel they came through and invites by the
        # channel they went out on: their quotient is not a K.
        if self.channel is not None:
            return None
        return viral_coefficient(self.invites, self.senders, self.became_senders, self.invitees)

    def to_json(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "channel": self.channel,
            "visitors": self.visitors,
            "senders": self.senders,
            "share_rate": _rounded(self.share_rate),
            "invites": self.invites,
            "invitees": self.invitees,
            "became_senders": self.became_senders,
            "delivered": self.delivered,
            "clicked": self.clicked,
            "clicks": self.clicks,
            "click_through": _rounded(self.click_through),
            "conversions": self.conversions,
            "k": _rounded(self.k),
            "cycle_time_seconds": _rounded(self.cycle_time_seconds, 1),
        }


@dataclass(frozen=True)
class DayPoint:
    day: date
    generation: int
    forwards: int
    cumulative: int

    def __post_init__(self) -> None:
        if self.forwards < 0 or self.cumulative < self.forwards or self.generation < 1:
            raise ValueError("a day's forwards are non-negative and within the running total")


@dataclass(frozen=True)
class Ambassador:
    sender_name: str
    generation: int
    forwards: int
    reach: int
    conversions: int

    def __post_init__(self) -> None:
        if self.reach < self.forwards or self.forwards < 1 or self.conversions < 0:
            raise ValueError("an ambassador made at least one forward, and reaches at least those")


@dataclass(frozen=True)
class Chain:
    """The tree below one forward of generation 1: its size, levels and widest level."""

    root: str  # public id
    sender_name: str
    size: int
    depth: int
    breadth: int
    conversions: int

    def __post_init__(self) -> None:
        if self.size < 1 or self.depth < 1 or not 1 <= self.breadth <= self.size:
            raise ValueError("a chain holds at least its root")


@dataclass(frozen=True)
class TreeNode:
    public_id: str
    parent: str | None
    generation: int
    channel: str
    sender_name: str
    created_at: datetime
    descendants: int | None = None
    children: list[TreeNode] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "public_id": self.public_id,
            "parent": self.parent,
            "generation": self.generation,
            "channel": self.channel,
            "sender_name": self.sender_name,
            "created_at": self.created_at.isoformat(),
            "descendants": self.descendants,
        }


@dataclass(frozen=True)
class FunnelStage:
    stage: str
    count: int


@dataclass(frozen=True)
class CampaignMetrics:
    slug: str
    name: str
    as_of: datetime
    refreshed_at: datetime
    overall: SliceMetrics
    generations: list[SliceMetrics]
    channels: list[SliceMetrics]
    reach_over_time: list[DayPoint]
    ambassadors_by_reach: list[Ambassador]
    ambassadors_by_conversions: list[Ambassador]
    chains: list[Chain]
    tree_view: list[TreeNode]
    projection: Projection | None

    @property
    def funnel(self) -> list[FunnelStage]:
        o = self.overall
        stages = [
            ("visitors", o.visitors),
            ("senders", o.senders),
            ("invites", o.invites),
            ("delivered", o.delivered),
            ("clicked", o.clicked),
            ("became senders", o.became_senders),
            ("conversions", o.conversions),
        ]
        return [FunnelStage(name, value) for name, value in stages]

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign": self.slug,
            "name": self.name,
            "as_of": self.as_of.isoformat(),
            "refreshed_at": self.refreshed_at.isoformat(),
            "overall": self.overall.to_json(),
            "generations": [g.to_json() for g in self.generations],
            "channels": [c.to_json() for c in self.channels],
            "funnel": [asdict(s) for s in self.funnel],
            "reach_over_time": [{**asdict(p), "day": p.day.isoformat()} for p in self.reach_over_time],
            "ambassadors": {
                "by_reach": [asdict(a) for a in self.ambassadors_by_reach],
                "by_conversions": [asdict(a) for a in self.ambassadors_by_conversions],
            },
            "chains": [asdict(c) for c in self.chains],
            "projection": _projection_json(self.projection),
        }


def _projection_json(projection: Projection | None) -> dict[str, Any] | None:
    if projection is None:
        return None
    return {**asdict(projection), "k": _rounded(projection.k), "total": projection.total}


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


# -- CSV: one figure a file ------------------------------------------------------------------

CSV_FIGURES = ("slices", "reach", "funnel", "ambassadors", "chains", "projection")


def metrics_csv(metrics: CampaignMetrics, figure: str) -> str:
    """One figure of the dashboard as CSV (`CSV_FIGURES`); ValueError for another name."""
    rows: list[dict[str, Any]]
    if figure == "slices":
        slices = [metrics.overall, *metrics.generations, *metrics.channels]
        rows = [{"slice": _slice_name(s), **s.to_json()} for s in slices]
    elif figure == "reach":
        rows = [{**asdict(p), "day": p.day.isoformat()} for p in metrics.reach_over_time]
    elif figure == "funnel":
        rows = [asdict(s) for s in metrics.funnel]
    elif figure == "ambassadors":
        rows = [{"ranking": "reach", "rank": i, **asdict(a)} for i, a in enumerate(metrics.ambassadors_by_reach, 1)]
        rows += [
            {"ranking": "conversions", "rank": i, **asdict(a)}
            for i, a in enumerate(metrics.ambassadors_by_conversions, 1)
        ]
    elif figure == "chains":
        rows = [asdict(c) for c in metrics.chains]
    elif figure == "projection":
        rows = [_projection_json(metrics.projection)] if metrics.projection else []
    else:
        raise ValueError(f"no figure {figure!r}; one of {', '.join(CSV_FIGURES)}")
    return _csv(rows, _csv_header(figure))


def _slice_name(metrics: SliceMetrics) -> str:
    if metrics.generation is not None:
        return f"generation {metrics.generation}"
    if metrics.channel is not None:
        return f"channel {metrics.channel}"
    return "campaign"


def _csv_header(figure: str) -> list[str]:
    # The header is written even when there are no rows, so that a client can always parse it.
    probe = SliceMetrics(1, None, 0, 0, 0, 0, 0, 0, 0, 0, None)
    headers = {
        "slices": ["slice", *probe.to_json()],
        "reach": ["day", "generation", "forwards", "cumulative"],
        "funnel": ["stage", "count"],
        "ambassadors": ["ranking", "rank", "sender_name", "generation", "forwards", "reach", "conversions"],
        "chains": ["root", "sender_name", "size", "depth", "breadth", "conversions"],
        "projection": [
            "current",
            "wave",
            "k",
            "cycle_days",
            "horizon_days",
            "cycles",
            "additional",
            "ceiling",
            "capped",
            "total",
        ],
    }
    return headers[figure]


def _csv(rows: Iterable[Mapping[str, Any]], header: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: _csv_value(row.get(name)) for name in header})
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    # A sender's name opened in a spreadsheet must not run as a formula.
    return "" if value is None else safe_cell(value)


# -- SQL building blocks that differ by database ------------------------------------------------


def sender_key_expression(forwards: Any = Forward.__table__.c) -> ColumnElement[str]:
    """Who sent a forward: the sender's own contact hash when they gave one; else the forward
    they came through (each friend gets one forward per campaign, so it names one person);
    else, for a direct visitor who gave no contact, their address hash and the name typed."""
    return case(
        (forwards.sender_contact_hash.is_not(None), literal("c:") + forwards.sender_contact_hash),
        (forwards.parent_id.is_not(None), literal("p:") + cast(forwards.parent_id, String)),
        else_=literal("a:") + func.coalesce(forwards.client_ip_hash, "") + literal(":") + forwards.sender_name,
    )


def _utc_day(session: Session, column: Any) -> ColumnElement[date]:
    if _dialect(session) == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def _seconds_between(session: Session, later: Any, earlier: Any) -> ColumnElement[float]:
    if _dialect(session) == "postgresql":
        return cast(func.extract("epoch", later - earlier), Float)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _lock_campaign(session: Session, campaign_id: int) -> None:
    """Two refreshes of one campaign at once would both delete and insert: on PostgreSQL the
    second waits for the first (SQLite already runs one writer at a time)."""
    if _dialect(session) == "postgresql":
        digest = hashlib.blake2b(f"analytics:{campaign_id}".encode(), digest_size=8).digest()
        session.execute(select(func.pg_advisory_xact_lock(int.from_bytes(digest, "big", signed=True))))


def _upsert(session: Session, table: Any) -> Any:
    return postgresql_insert(table) if _dialect(session) == "postgresql" else sqlite_insert(table)


# -- visits ---------------------------------------------------------------------------------------

# Landing views are counted in Redis, not in the database: a view would otherwise be a write
# transaction on one hot row (SQLite's single writer lock; on PostgreSQL, the row lock every
# direct view of a campaign queues on, in the way of the forward POSTs). A hash per campaign
# and UTC day, a field per "generation:channel"; each refresh folds the counts into `visits`.
VISIT_KEY_PREFIX = "analytics:visits"
# A day's counts wait this long for a refresh (`flask analytics refresh` from cron, or a read
# of a small campaign's figures) before Redis drops them.
VISIT_COUNTS_TTL = timedelta(days=7)

# Take every count of these hashes and delete them, in one step: a view counted meanwhile
# lands before (taken) or after (left for the next fold), and two folds never take one count
# twice. Returns [key index, [field, count, ...]] pairs for the hashes that had counts.
_TAKE_VISITS = """
local taken = {}
for i, key in ipairs(KEYS) do
  local fields = redis.call('HGETALL', key)
  if #fields > 0 then
    redis.call('DEL', key)
    table.insert(taken, {i, fields})
  end
end
return taken
"""


@dataclass(frozen=True)
class VisitSlice:
    """Where landing views are counted: a UTC day, the visitor generation, the arrival channel."""

    day: date
    generation: int
    channel: str

    def __post_init__(self) -> None:
        if self.generation < 1:
            raise ValueError("visitor generations start at 1")
        if not self.channel or ":" in self.channel or len(self.channel) > 16:
            raise ValueError(f"not an arrival channel: {self.channel!r}")

    @property
    def redis_field(self) -> str:
        return f"{self.generation}:{self.channel}"

    @classmethod
    def from_field(cls, day: date, field_name: str) -> VisitSlice:
        generation, _, channel = field_name.partition(":")
        return cls(day, int(generation), channel)


class VisitCounter:
    """Landing views counted in Redis (the runtime's queue connection: fakeredis when embedded)."""

    def __init__(self, connection: redis.Redis) -> None:
        self._redis = connection
        self._take = connection.register_script(_TAKE_VISITS)
        # One warning per outage, not one per view: a busy landing page would flood the log.
        self._unreachable = False

    def count(self, campaign_id: int, where: VisitSlice) -> None:
        """Count one view. Never raises: when Redis is unreachable the view goes uncounted."""
        key = _visit_key(campaign_id, where.day)
        try:
            with self._redis.pipeline(transaction=True) as pipeline:
                pipeline.hincrby(key, where.redis_field, 1)
                pipeline.expire(key, int(VISIT_COUNTS_TTL.total_seconds()))
                pipeline.execute()
        except redis.RedisError as error:
            if not self._unreachable:
                self._unreachable = True
                log.warning("landing views are not being counted: Redis is unreachable (%s)", error)
            return
        if self._unreachable:
            self._unreachable = False
            log.info("landing views are counted again")

    def take(self, campaign_id: int, today: date) -> dict[VisitSlice, int]:
        """Remove and return the campaign's counts of every day Redis may still hold."""
        days = [today + timedelta(days=1) - timedelta(days=n) for n in range(VISIT_COUNTS_TTL.days + 2)]
        taken: dict[VisitSlice, int] = {}
        for index, fields in self._take(keys=[_visit_key(campaign_id, day) for day in days]):
            day = days[int(index) - 1]
            for name, value in zip(fields[::2], fields[1::2], strict=True):
                where = VisitSlice.from_field(day, _text(name))
                taken[where] = taken.get(where, 0) + int(value)
        return taken

    def give_back(self, campaign_id: int, counts: Mapping[VisitSlice, int]) -> None:
        """Return counts taken for a fold that did not commit, so that the next fold has them."""
        with self._redis.pipeline(transaction=True) as pipeline:
            for where, number in counts.items():
                key = _visit_key(campaign_id, where.day)
                pipeline.hincrby(key, where.redis_field, number)
                pipeline.expire(key, int(VISIT_COUNTS_TTL.total_seconds()))
            pipeline.execute()


def _visit_key(campaign_id: int, day: date) -> str:
    return f"{VISIT_KEY_PREFIX}:{campaign_id}:{day.isoformat()}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def visit_slice(via_generation: int | None, via_channel: str | None, day: date | None = None) -> VisitSlice:
    """Where a view counts: a direct visitor is generation 1; one who came through a forward of
    generation n is generation n + 1, arriving on that forward's channel."""
    day = day or utcnow().date()
    if via_generation is None or via_channel is None:
        return VisitSlice(day, 1, DIRECT)
    return VisitSlice(day, via_generation + 1, via_channel)


def count_visit(db: Database, slug: str, via_forward: str | None, at: datetime | None = None) -> None:
    """Count one view straight into the `visits` table, at a given time: for tools that
    replay history (the simulator). The landing page counts in Redis (`VisitCounter`)."""
    if not SLUG.fullmatch(slug):
        return
    day = (at or utcnow()).date()
    with db.transaction() as session:
        campaign_id = session.scalar(select(Campaign.id).where(Campaign.slug == slug))
        if campaign_id is None:
            return
        row = (
            session.execute(
                select(Forward.generation, Forward.channel).where(
                    Forward.public_id == via_forward, Forward.campaign_id == campaign_id
                )
            ).first()
            if via_forward
            else None
        )
        where = visit_slice(row.generation, row.channel, day) if row else visit_slice(None, None, day)
        _add_visits(session, campaign_id, {where: 1})


def _add_visits(session: Session, campaign_id: int, counts: Mapping[VisitSlice, int]) -> None:
    if not counts:
        return
    v = Visit.__table__.c
    statement = _upsert(session, Visit.__table__)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["campaign_id", "day", "generation", "channel"],
            set_={"count": v.count + statement.excluded.count},
        ),
        [
            {"campaign_id": campaign_id, "day": w.day, "generation": w.generation, "channel": w.channel, "count": n}
            for w, n in sorted(counts.items(), key=lambda item: (item[0].day, item[0].generation, item[0].channel))
        ],
    )


@contextmanager
def _visits_taken(counter: VisitCounter | None, campaign_id: int, today: date) -> Iterator[dict[VisitSlice, int]]:
    """The counts waiting in Redis, for the caller's transaction to add to `visits`: given back
    when that transaction fails. (A process killed between the two loses them: a few views.)"""
    if counter is None:
        yield {}
        return
    try:
        counts = counter.take(campaign_id, today)
    except redis.RedisError as error:
        log.warning("landing views of campaign %d not folded: Redis is unreachable (%s)", campaign_id, error)
        counts = {}
    try:
        yield counts
    except BaseException:
        if counts:
            try:
                counter.give_back(campaign_id, counts)
            except redis.RedisError:
                log.exception("campaign %d: %d landing views lost", campaign_id, sum(counts.values()))
        raise


def fold_visits(db: Database, counter: VisitCounter, slug: str, today: date | None = None) -> int:
    """Move the campaign's landing views counted in Redis into `visits`; how many moved.
    `today` is the app's (the day the landing page counts views on), the wall clock's when not given."""
    with db.reading() as session:
        campaign_id = _campaign_id(session, slug)
    with _visits_taken(counter, campaign_id, today or utcnow().date()) as counts:
        if counts:
            with db.transaction() as session:
                _add_visits(session, campaign_id, counts)
    return sum(counts.values())


# -- the roll-up refresh ------------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshReport:
    slug: str
    forwards: int
    seconds: float


def refresh_rollups(
    db: Database, slug: str, now: datetime | None = None, *, visits: VisitCounter | None = None
) -> RefreshReport:
    """Recompute every roll-up of the campaign from its forwards, clicks, messages and
    redemptions, in one transaction: readers see the old figures until it commits. With a
    `VisitCounter`, the landing views counted in Redis are folded into `visits` in it too."""
    started = time.perf_counter()
    with db.reading() as session:
        campaign_id = _campaign_id(session, slug)
    with _visits_taken(visits, campaign_id, (now or utcnow()).date()) as counted, db.transaction() as session:
        _lock_campaign(session, campaign_id)
        _add_visits(session, campaign_id, counted)
        for table in (ForwardStats, AmbassadorStats, MetricCell, DailyForwards, RollupState):
            session.execute(delete(table).where(table.campaign_id == campaign_id))
        forwards = _insert_forward_stats(session, campaign_id)
        _add_downstream_figures(session, campaign_id)
        _insert_metric_cells(session, campaign_id)
        _insert_daily_forwards(session, campaign_id)
        _insert_ambassadors(session, campaign_id)
        seconds = time.perf_counter() - started
        session.add(
            RollupState(
                campaign_id=campaign_id,
                refreshed_at=now or utcnow(),
                forwards=forwards,
                duration_ms=round(seconds * 1000),
            )
        )
    log.info("analytics of %s refreshed: %d forwards in %.2f s", slug, forwards, seconds)
    return RefreshReport(slug, forwards, time.perf_counter() - started)


def _campaign_id(session: Session, slug: str) -> int:
    campaign_id = session.scalar(select(Campaign.id).where(Campaign.slug == slug)) if SLUG.fullmatch(slug) else None
    if campaign_id is None:
        raise CampaignNotFound(f"no campaign {slug!r}")
    return campaign_id


def _spread_tree(campaign_id: int) -> CTE:
    """Every forward of the campaign with the generation-1 forward its chain started from and
    the channel its sender came through: a walk down from the roots (a recursive CTE)."""
    f = Forward.__table__.alias("f")
    roots = select(
        f.c.id.label("id"),
        f.c.id.label("root_id"),
        f.c.channel.label("channel"),
        literal(DIRECT, String).label("arrival_channel"),
    ).where(f.c.campaign_id == campaign_id, f.c.parent_id.is_(None))
    tree = roots.cte("spread", recursive=True)
    child = Forward.__table__.alias("child")
    return tree.union_all(
        select(child.c.id, tree.c.root_id, child.c.channel, tree.c.channel).where(child.c.parent_id == tree.c.id)
    )


def _insert_forward_stats(session: Session, campaign_id: int) -> int:
    f = Forward.__table__
    clicks = (
        select(Click.forward_id, func.count().label("n"), func.min(Click.created_at).label("first"))
        .join(Forward, Forward.id == Click.forward_id)
        .where(Forward.campaign_id == campaign_id)
        .group_by(Click.forward_id)
        .subquery("click_counts")
    )
    children = (
        select(Forward.parent_id, func.count().label("n"), func.min(Forward.created_at).label("first"))
        .where(Forward.campaign_id == campaign_id, Forward.parent_id.is_not(None))
        .group_by(Forward.parent_id)
        .subquery("child_counts")
    )
    delivered = (
        select(Message.forward_id, func.count().label("n"))
        .join(Forward, Forward.id == Message.forward_id)
        .where(Forward.campaign_id == campaign_id, Message.status.in_(DELIVERED_STATUSES))
        .group_by(Message.forward_id)
        .subquery("delivered_counts")
    )
    conversions = (
        select(Redemption.forward_id, func.count().label("n"))
        .where(Redemption.campaign_id == campaign_id, Redemption.forward_id.is_not(None))
        .group_by(Redemption.forward_id)
        .subquery("conversion_counts")
    )
    tree = _spread_tree(campaign_id)
    cycle = _seconds_between(session, children.c.first, clicks.c.first)
    rows = (
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
            _utc_day(session, f.c.created_at),
            func.coalesce(delivered.c.n, 0),
            func.coalesce(clicks.c.n, 0),
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
    s = ForwardStats.__table__.c
    columns = [
        s.forward_id,
        s.campaign_id,
        s.parent_id,
        s.root_id,
        s.generation,
        s.channel,
        s.arrival_channel,
        s.sender_key,
        s.sender_name,
        s.day,
        s.delivered,
        s.clicks,
        s.children,
        s.cycle_seconds,
        s.conversions,
        s.descendants,
        s.downstream_conversions,
        s.height,
    ]
    session.execute(insert(ForwardStats.__table__).from_select(columns, rows))
    return session.scalar(select(func.count()).select_from(ForwardStats).where(s.campaign_id == campaign_id)) or 0


def _add_downstream_figures(session: Session, campaign_id: int) -> None:
    """Descendants, conversions below and height of every forward, one generation at a time
    from the deepest up: each forward's figures are its children's, so every row is read once
    as a child and written once as a parent (O(forwards), where a recursive CTE per forward
    would walk each chain once per ancestor)."""
    s = ForwardStats.__table__.c
    deepest = session.scalar(select(func.max(s.generation)).where(s.campaign_id == campaign_id)) or 0
    for generation in range(deepest, 1, -1):
        below = (
            select(
                s.parent_id.label("parent_id"),
                (func.count() + func.sum(s.descendants)).label("descendants"),
                func.sum(s.conversions + s.downstream_conversions).label("conversions"),
                (func.max(s.height) + 1).label("height"),
            )
            .where(s.campaign_id == campaign_id, s.generation == generation)
            .group_by(s.parent_id)
            .subquery("below")
        )
        session.execute(
            update(ForwardStats.__table__)
            .where(s.forward_id == below.c.parent_id)
            .values(
                descendants=below.c.descendants,
                downstream_conversions=below.c.conversions,
                height=below.c.height,
            )
        )


def _cell_figures(s: Any) -> list[Any]:
    return [
        func.count().label("invites"),
        func.count(s.sender_key.distinct()).label("senders"),
        func.sum(case((s.children > 0, 1), else_=0)).label("became_senders"),
        func.sum(case((s.delivered > 0, 1), else_=0)).label("delivered"),
        func.sum(case((s.clicks > 0, 1), else_=0)).label("clicked"),
        func.sum(s.clicks).label("clicks"),
        func.sum(s.conversions).label("conversions"),
    ]


def _insert_metric_cells(session: Session, campaign_id: int) -> None:
    s = ForwardStats.__table__.c
    mine = s.campaign_id == campaign_id
    cells: dict[tuple[int, str], dict[str, Any]] = {}

    def collect(key_columns: Sequence[Any], keys: tuple[str, str]) -> None:
        query = select(*key_columns, *_cell_figures(s)).where(mine)
        for row in session.execute(query.group_by(*key_columns) if key_columns else query).mappings():
            if row["invites"] == 0:
                continue
            key = (
                row[keys[0]] if keys[0] in row else ALL_GENERATIONS,
                row[keys[1]] if keys[1] in row else ALL_CHANNELS,
            )
            cells[key] = {name: int(row[name] or 0) for name in _COUNT_COLUMNS}

    collect([s.generation], ("generation", ""))
    collect([s.channel], ("", "channel"))
    collect([], ("", ""))
    # Per channel, senders are counted by the channel that brought them (their visits too).
    for (generation, channel), cell in cells.items():
        if generation == ALL_GENERATIONS and channel != ALL_CHANNELS:
            cell["senders"] = 0
    arrivals = session.execute(
        select(s.arrival_channel, func.count(s.sender_key.distinct())).where(mine).group_by(s.arrival_channel)
    )
    for channel, senders in arrivals:
        cell = cells.setdefault((ALL_GENERATIONS, channel), dict.fromkeys(_COUNT_COLUMNS, 0))
        cell["senders"] = int(senders)
    if not cells:
        return
    medians = _cycle_medians(session, campaign_id)
    session.execute(
        insert(MetricCell.__table__),
        [
            {
                "campaign_id": campaign_id,
                "generation": generation,
                "channel": channel,
                **figures,
                "cycle_median_seconds": medians.get((generation, channel)),
            }
            for (generation, channel), figures in cells.items()
        ],
    )


_COUNT_COLUMNS = ("invites", "senders", "became_senders", "delivered", "clicked", "clicks", "conversions")


def _cycle_medians(session: Session, campaign_id: int) -> dict[tuple[int, str], float]:
    """The median cycle time of every slice. PostgreSQL computes it (percentile_cont); SQLite
    has no percentile, and its campaigns are small: the durations are read and sorted here."""
    s = ForwardStats.__table__.c
    where = and_(s.campaign_id == campaign_id, s.cycle_seconds.is_not(None))
    medians: dict[tuple[int, str], float] = {}
    if _dialect(session) == "postgresql":
        median = func.percentile_cont(0.5).within_group(s.cycle_seconds)
        for generation, value in session.execute(select(s.generation, median).where(where).group_by(s.generation)):
            medians[(generation, ALL_CHANNELS)] = float(value)
        for channel, value in session.execute(select(s.channel, median).where(where).group_by(s.channel)):
            medians[(ALL_GENERATIONS, channel)] = float(value)
        overall = session.scalar(select(median).where(where))
        if overall is not None:
            medians[(ALL_GENERATIONS, ALL_CHANNELS)] = float(overall)
        return medians
    durations: dict[tuple[int, str], list[float]] = defaultdict(list)
    for generation, channel, seconds in session.execute(select(s.generation, s.channel, s.cycle_seconds).where(where)):
        for key in ((generation, ALL_CHANNELS), (ALL_GENERATIONS, channel), (ALL_GENERATIONS, ALL_CHANNELS)):
            durations[key].append(float(seconds))
    return {key: statistics.median(values) for key, values in durations.items()}


def _insert_daily_forwards(session: Session, campaign_id: int) -> None:
    s = ForwardStats.__table__.c
    rows = (
        select(s.campaign_id, s.day, s.generation, func.count())
        .where(s.campaign_id == campaign_id)
        .group_by(s.campaign_id, s.day, s.generation)
    )
    d = DailyForwards.__table__.c
    session.execute(insert(DailyForwards.__table__).from_select([d.campaign_id, d.day, d.generation, d.forwards], rows))


def _insert_ambassadors(session: Session, campaign_id: int) -> None:
    s = ForwardStats.__table__.c
    rows = (
        select(
            s.campaign_id,
            s.sender_key,
            func.max(s.sender_name),
            func.min(s.generation),
            func.count(),
            func.sum(1 + s.descendants),
            func.sum(s.conversions + s.downstream_conversions),
        )
        .where(s.campaign_id == campaign_id)
        .group_by(s.campaign_id, s.sender_key)
    )
    a = AmbassadorStats.__table__.c
    columns = [a.campaign_id, a.sender_key, a.sender_name, a.generation, a.forwards, a.reach, a.conversions]
    session.execute(insert(AmbassadorStats.__table__).from_select(columns, rows))


# -- reading the dashboard ------------------------------------------------------------------------


def campaign_metrics(
    db: Database, slug: str, now: datetime | None = None, *, visits: VisitCounter | None = None
) -> CampaignMetrics:
    """The dashboard's figures. Roll-ups that are missing, or stale and quick to redo, are
    refreshed first, and a small campaign's landing views waiting in Redis (`visits`) are
    folded in at every read; a large campaign's are read as its last refresh left them."""
    now = now or utcnow()
    with db.reading() as session:
        campaign_id = _campaign_id(session, slug)
        state = session.get(RollupState, campaign_id)
    small = state is None or state.forwards <= REFRESH_ON_READ_UP_TO
    if state is None or (small and now - state.refreshed_at > STALE_AFTER):
        refresh_rollups(db, slug, now, visits=visits)
    elif small and visits is not None:
        fold_visits(db, visits, slug, now.date())
    with db.reading() as session:
        campaign = session.get(Campaign, campaign_id)
        state = session.get(RollupState, campaign_id)
        assert campaign is not None and state is not None
        overall, generations, channels = _slices(session, campaign_id)
        return CampaignMetrics(
            slug=campaign.slug,
            name=campaign.name,
            as_of=now,
            refreshed_at=state.refreshed_at,
            overall=overall,
            generations=generations,
            channels=channels,
            reach_over_time=_reach_over_time(session, campaign_id),
            ambassadors_by_reach=_ambassadors(session, campaign_id, AmbassadorStats.reach),
            ambassadors_by_conversions=_ambassadors(session, campaign_id, AmbassadorStats.conversions),
            chains=_chains(session, campaign_id),
            tree_view=_tree_view(session, campaign_id),
            projection=_projection(session, campaign, overall, now),
        )


def _visits(session: Session, campaign_id: int) -> tuple[dict[int, int], dict[str, int]]:
    by_generation: dict[int, int] = {}
    by_channel: dict[str, int] = {}
    rows = session.execute(
        select(Visit.generation, Visit.channel, func.sum(Visit.count))
        .where(Visit.campaign_id == campaign_id)
        .group_by(Visit.generation, Visit.channel)
    )
    for generation, channel, count in rows:
        by_generation[generation] = by_generation.get(generation, 0) + int(count)
        by_channel[channel] = by_channel.get(channel, 0) + int(count)
    return by_generation, by_channel


def _slices(session: Session, campaign_id: int) -> tuple[SliceMetrics, list[SliceMetrics], list[SliceMetrics]]:
    visits_by_generation, visits_by_channel = _visits(session, campaign_id)
    cells = {
        (c.generation, c.channel): c
        for c in session.scalars(select(MetricCell).where(MetricCell.campaign_id == campaign_id))
    }
    overall = _slice(cells.get((ALL_GENERATIONS, ALL_CHANNELS)), None, None, sum(visits_by_generation.values()))
    generation_numbers = sorted(
        {g for g, c in cells if g != ALL_GENERATIONS and c == ALL_CHANNELS} | set(visits_by_generation)
    )
    generations = [
        _slice(cells.get((g, ALL_CHANNELS)), g, None, visits_by_generation.get(g, 0)) for g in generation_numbers
    ]
    channel_names = sorted(
        {c for g, c in cells if g == ALL_GENERATIONS and c != ALL_CHANNELS} | set(visits_by_channel),
        key=lambda name: (name == DIRECT, name),
    )
    channels = [_slice(cells.get((ALL_GENERATIONS, c)), None, c, visits_by_channel.get(c, 0)) for c in channel_names]
    return overall, generations, channels


def _slice(cell: MetricCell | None, generation: int | None, channel: str | None, visitors: int) -> SliceMetrics:
    figures = {name: getattr(cell, name) if cell else 0 for name in _COUNT_COLUMNS}
    return SliceMetrics(
        generation=generation,
        channel=channel,
        visitors=visitors,
        cycle_time_seconds=cell.cycle_median_seconds if cell else None,
        **figures,
    )


def _reach_over_time(session: Session, campaign_id: int) -> list[DayPoint]:
    rows = session.execute(
        select(DailyForwards.day, DailyForwards.generation, DailyForwards.forwards)
        .where(DailyForwards.campaign_id == campaign_id)
        .order_by(DailyForwards.generation, DailyForwards.day)
    )
    running: dict[int, int] = defaultdict(int)
    points = []
    for day, generation, forwards in rows:
        running[generation] += forwards
        points.append(DayPoint(day, generation, forwards, running[generation]))
    return sorted(points, key=lambda p: (p.day, p.generation))


def _ambassadors(session: Session, campaign_id: int, order: Any) -> list[Ambassador]:
    rows = session.scalars(
        select(AmbassadorStats)
        .where(AmbassadorStats.campaign_id == campaign_id)
        .order_by(order.desc(), AmbassadorStats.sender_key)
        .limit(TOP_AMBASSADORS)
    )
    return [Ambassador(a.sender_name, a.generation, a.forwards, a.reach, a.conversions) for a in rows]


def _chains(session: Session, campaign_id: int) -> list[Chain]:
    s = ForwardStats.__table__.c
    roots = session.execute(
        select(s.forward_id, Forward.public_id, s.sender_name, s.descendants, s.height, s.conversions)
        .add_columns(s.downstream_conversions)
        .join(Forward, Forward.id == s.forward_id)
        .where(s.campaign_id == campaign_id, s.generation == 1)
        .order_by(s.descendants.desc(), s.forward_id)
        .limit(TOP_CHAINS)
    ).all()
    if not roots:
        return []
    widths: dict[int, int] = defaultdict(int)
    levels = session.execute(
        select(s.root_id, s.generation, func.count())
        .where(s.root_id.in_([r.forward_id for r in roots]))
        .group_by(s.root_id, s.generation)
    )
    for root_id, _generation, count in levels:
        widths[root_id] = max(widths[root_id], int(count))
    return [
        Chain(
            root=r.public_id,
            sender_name=r.sender_name,
            size=1 + r.descendants,
            depth=1 + r.height,
            breadth=widths[r.forward_id],
            conversions=r.conversions + r.downstream_conversions,
        )
        for r in roots
    ]


def _tree_view(session: Session, campaign_id: int) -> list[TreeNode]:
    """The largest chains, a few levels deep, each node's largest branches first."""
    s = ForwardStats.__table__.c
    node_columns = (
        s.forward_id,
        s.parent_id,
        Forward.public_id,
        s.generation,
        s.channel,
        s.sender_name,
        Forward.created_at,
        s.descendants,
    )
    level = session.execute(
        select(*node_columns)
        .join(Forward, Forward.id == s.forward_id)
        .where(s.campaign_id == campaign_id, s.generation == 1)
        .order_by(s.descendants.desc(), s.forward_id)
        .limit(TREE_VIEW_ROOTS)
    ).all()
    nodes: dict[int, TreeNode] = {}
    roots: list[TreeNode] = []
    for depth in range(TREE_VIEW_DEPTH):
        for row in level:
            parent = nodes.get(row.parent_id) if row.parent_id else None
            node = TreeNode(
                row.public_id,
                parent.public_id if parent else None,
                row.generation,
                row.channel,
                row.sender_name,
                row.created_at,
                row.descendants,
            )
            nodes[row.forward_id] = node
            (parent.children if parent else roots).append(node)
        parents = [row.forward_id for row in level if row.descendants > 0]
        if not parents or depth == TREE_VIEW_DEPTH - 1:
            break
        ranked = (
            select(
                *node_columns,
                func.row_number()
                .over(partition_by=s.parent_id, order_by=(s.descendants.desc(), s.forward_id))
                .label("rank"),
            )
            .join(Forward, Forward.id == s.forward_id)
            .where(s.parent_id.in_(parents))
            .subquery()
        )
        level = session.execute(
            select(ranked).where(ranked.c.rank <= TREE_VIEW_CHILDREN).order_by(ranked.c.parent_id, ranked.c.rank)
        ).all()
    return roots


def _projection(session: Session, campaign: Campaign, overall: SliceMetrics, now: datetime) -> Projection | None:
    k = overall.k
    cycle = overall.cycle_time_seconds
    if k is None or not cycle:
        return None
    cycle_days = cycle / 86400
    if campaign.ends_at is not None:
        horizon_days = max(0.0, (campaign.ends_at - now).total_seconds() / 86400)
    else:
        horizon_days = DEFAULT_HORIZON_DAYS
    # The current wave: invitations of the last cycle, whose friends may still forward them.
    wave = (
        session.scalar(
            select(func.count())
            .select_from(Forward)
            .where(Forward.campaign_id == campaign.id, Forward.created_at >= now - timedelta(seconds=cycle))
        )
        or 0
    )
    ceiling = message_ceiling(CapSettings.from_overrides(campaign.caps), horizon_days, overall.invites)
    return project_reach(
        current=overall.invites, wave=wave, k=k, cycle_days=cycle_days, horizon_days=horizon_days, ceiling=ceiling
    )


# -- the tree of one forward, read live ------------------------------------------------------------


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
        campaign_id = _campaign_id(session, slug)
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
