"""The visit counter: landing views counted in Redis as they happen, and folded into the
`visits` roll-up by a refresh (or a read of a small campaign's figures).

A view is counted where it counts (`VisitSlice`): its UTC day, the visitor's generation (1 for
a direct visitor, n + 1 for one who came through a forward of generation n) and the arrival
channel. No visitor is identified, so a reload counts again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TypeVar

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db import Database
from engine.models import Forward, VideoPlay, Visit
from engine.services.analytics.figures import DIRECT
from engine.services.analytics.sql import campaign_id_of, find_campaign_id, upsert

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

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

    def __init__(self, connection: redis.Redis, key_prefix: str = "fluister:", name: str = VISIT_KEY_PREFIX) -> None:
        self._redis = connection
        # Every key under the installation's REDIS_KEY_PREFIX, so that two can share a Redis;
        # `name` sets one counter apart from another (the video's plays: engine...analytics.plays).
        self._key_prefix = f"{key_prefix}{name}:"
        self._take = connection.register_script(_TAKE_VISITS)
        # One warning per outage, not one per view: a busy landing page would flood the log.
        self._unreachable = False

    def count(self, campaign_id: int, where: VisitSlice) -> None:
        """Count one view. Never raises: when Redis is unreachable the view goes uncounted."""
        key = self._key_prefix + _day_key(campaign_id, where.day)
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
        for index, fields in self._take(keys=[self._key_prefix + _day_key(campaign_id, day) for day in days]):
            day = days[int(index) - 1]
            for name, value in zip(fields[::2], fields[1::2], strict=True):
                where = VisitSlice.from_field(day, _text(name))
                taken[where] = taken.get(where, 0) + int(value)
        return taken

    def give_back(self, campaign_id: int, counts: Mapping[VisitSlice, int]) -> None:
        """Return counts taken for a fold that did not commit, so that the next fold has them."""
        with self._redis.pipeline(transaction=True) as pipeline:
            for where, number in counts.items():
                key = self._key_prefix + _day_key(campaign_id, where.day)
                pipeline.hincrby(key, where.redis_field, number)
                pipeline.expire(key, int(VISIT_COUNTS_TTL.total_seconds()))
            pipeline.execute()


def _day_key(campaign_id: int, day: date) -> str:
    return f"{campaign_id}:{day.isoformat()}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def visit_slice(via_generation: int | None, via_channel: str | None, day: date) -> VisitSlice:
    """Where a view counts: a direct visitor is generation 1; one who came through a forward of
    generation n is generation n + 1, arriving on that forward's channel. `day` is the app's
    (its clock's), never the wall clock's: a fold takes the days around the app's today."""
    if via_generation is None or via_channel is None:
        return VisitSlice(day, 1, DIRECT)
    return VisitSlice(day, via_generation + 1, via_channel)


def count_visit(db: Database, slug: str, via_forward: str | None, at: datetime) -> None:
    """Count one view straight into the `visits` table, at a given time: for tools that
    replay history (the simulator). The landing page counts in Redis (`VisitCounter`)."""
    day = at.date()
    with db.transaction() as session:
        campaign_id = campaign_id_of(session, slug)
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
        add_visits(session, campaign_id, {where: 1})


def add_visits(
    session: Session, campaign_id: int, counts: Mapping[VisitSlice, int], table: type[Visit | VideoPlay] = Visit
) -> None:
    """Add view counts to the `visits` roll-up (or plays to `video_plays`), in the caller's transaction."""
    if not counts:
        return
    v = table.__table__.c
    statement = upsert(session, table.__table__)
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
def visits_taken(counter: VisitCounter | None, campaign_id: int, today: date) -> Iterator[dict[VisitSlice, int]]:
    """The counts waiting in Redis, for the caller's transaction to add to `visits`: given back
    when that transaction fails. (A process killed between the two loses them: a few views.)"""
    if counter is None:
        yield {}
        return
    with counts_taken(
        lambda: counter.take(campaign_id, today),
        lambda counts: counter.give_back(campaign_id, counts),
        f"landing views of campaign {campaign_id}",
    ) as counts:
        yield counts


@contextmanager
def counts_taken(
    take: Callable[[], dict[K, int]], give_back: Callable[[dict[K, int]], None], what: str
) -> Iterator[dict[K, int]]:
    """Counts taken out of Redis for the caller's transaction, given back when it fails; nothing
    when Redis is unreachable (logged: they wait for the next refresh)."""
    try:
        counts = take()
    except redis.RedisError as error:
        log.warning("%s not folded: Redis is unreachable (%s)", what, error)
        counts = {}
    try:
        yield counts
    except BaseException:
        if counts:
            try:
                give_back(counts)
            except redis.RedisError:
                log.exception("%s: %d lost", what, sum(counts.values()))
        raise


def fold_visits(
    db: Database, counter: VisitCounter, slug: str, today: date, table: type[Visit | VideoPlay] = Visit
) -> int:
    """Move the campaign's landing views counted in Redis into `visits` (a play counter's plays
    into `video_plays`); how many moved. `today` is the app's (the day views are counted on)."""
    with db.reading() as session:
        campaign_id = find_campaign_id(session, slug)
    with visits_taken(counter, campaign_id, today) as counts:
        if counts:
            with db.transaction() as session:
                add_visits(session, campaign_id, counts, table)
    return sum(counts.values())
