"""The scheduler: the housekeeping that would otherwise need a cron, in a process of its own.

`flask --app wsgi scheduler` runs on as many machines as you like; one at a time is active. It
holds a lease in Redis (a key that expires, renewed every tick), and the others wait for it to
lapse: a scheduler that dies hands over within the lease's length. The active one runs each
periodic task at its interval (settings: SWEEP_EVERY_SECONDS, ANALYTICS_REFRESH_EVERY_SECONDS,
COUPON_CLEANUP_EVERY_SECONDS):

- the sweep (engine.services.delivery): due messages whose job was lost get one again, stuck
  ones go back to the queue or are marked `unknown`, and contacts past their retention are
  erased;
- the analytics refresh of every campaign that is not a draft (its roll-ups, and the landing
  views counted in Redis folded into the database);
- the coupon-import clean-up: spooled uploads left behind by an import whose process died;
- the webhook retries (WEBHOOK_SWEEP_EVERY_SECONDS): deliveries whose next attempt is due, or
  whose job was lost, get a job (engine.services.webhook_delivery); and, hourly, the webhook
  delivery log's clean-up (settled deliveries older than 30 days).

Every task may run twice (a lease that lapsed during a long task lets another scheduler start
it too): each is safe to repeat. An outage of Redis or the database is ridden out like a
worker does (engine.resilience): the scheduler keeps trying, and logs one line a minute.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

from engine.models import CampaignStatus
from engine.resilience import DATABASE, REDIS, Backoff, RetryLog, dependency_of
from engine.services.analytics import refresh_rollups
from engine.services.campaigns import list_campaigns
from engine.services.lookups import CampaignNotFound
from engine.services.webhook_delivery import FORGET_EVERY_SECONDS

if TYPE_CHECKING:
    from engine.runtime import Runtime

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0
TICK_SECONDS = 1.0
IDEMPOTENCY_CLEANUP_EVERY_SECONDS = 3600

# Take the lease when nobody holds it, or renew it when we do: one round trip, no race.
_HOLD_LEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return 1
end
return 0
"""
_GIVE_UP_LEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    every_seconds: float
    run: Callable[[], object]


class Scheduler:
    def __init__(
        self,
        connection: redis.Redis,
        lease_key: str,
        tasks: list[PeriodicTask],
        retry_log: RetryLog,
        *,
        lease_seconds: float = LEASE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        identity: str | None = None,
    ) -> None:
        self._connection = connection
        self._lease_key = lease_key
        self._tasks = tasks
        self._retry_log = retry_log
        self._lease_ms = int(lease_seconds * 1000)
        self._clock = clock
        self.identity = identity or uuid.uuid4().hex
        self._hold = connection.register_script(_HOLD_LEASE)
        self._give_up = connection.register_script(_GIVE_UP_LEASE)
        self._due: dict[str, float] = {}  # a task's next run, by this process's clock
        self._backoff = Backoff()
        self.active = False

    def tick(self) -> float:
        """One round: keep (or take) the lease, and run the tasks that are due if we hold it.
        Returns how long to wait before the next round."""
        try:
            holding = bool(self._hold(keys=[self._lease_key], args=[self.identity, self._lease_ms]))
        except redis.RedisError as error:
            if dependency_of(error) != REDIS:
                raise
            self.active = False
            pause = self._backoff.next()
            self._retry_log.failed(REDIS, error, pause)
            return pause
        if self._retry_log.recovered(REDIS):
            self._backoff.reset()
        if holding != self.active:
            log.info("scheduler %s: %s", self.identity[:8], "active" if holding else "standing by")
            self.active = holding
            self._due.clear()  # a scheduler that takes over runs every task once, at once
        if holding:
            for task in self._tasks:
                self._run_if_due(task)
        return TICK_SECONDS

    def run(self, stop: threading.Event) -> None:
        """Tick until `stop` is set; then hand the lease over at once rather than let it lapse."""
        while not stop.is_set():
            stop.wait(self.tick())
        try:
            self._give_up(keys=[self._lease_key], args=[self.identity])
        except redis.RedisError:
            pass  # it lapses by itself

    def _run_if_due(self, task: PeriodicTask) -> None:
        now = self._clock()
        if now < self._due.get(task.name, now):
            return
        try:
            task.run()
        except Exception as error:
            dependency = dependency_of(error)
            if dependency is None:
                log.exception("scheduled %s failed; it runs again in %.0f s", task.name, task.every_seconds)
            else:
                # Tried again on the next tick, while the outage lasts; logged once a minute.
                self._retry_log.failed(dependency, error, TICK_SECONDS)
                return
        else:
            self._retry_log.recovered(DATABASE)  # says so only if it was down
        self._due[task.name] = now + task.every_seconds


AUTOPILOT_LOOK_EVERY_SECONDS = 3600


def housekeeping(runtime: Runtime) -> list[PeriodicTask]:
    """The tasks the scheduler runs, at the intervals the settings give."""
    settings = runtime.settings
    return [
        PeriodicTask("sweep", settings.sweep_every_seconds, runtime.delivery.sweep),
        PeriodicTask("analytics refresh", settings.analytics_refresh_every_seconds, lambda: refresh_analytics(runtime)),
        PeriodicTask(
            "coupon-import clean-up", settings.coupon_cleanup_every_seconds, runtime.coupon_imports.remove_leftovers
        ),
        # Idempotency keys last 24 hours: an hourly sweep keeps the table to about a day of POSTs.
        PeriodicTask(
            "idempotency-key clean-up",
            IDEMPOTENCY_CLEANUP_EVERY_SECONDS,
            runtime.idempotency.remove_expired,
        ),
        PeriodicTask("webhook retries", settings.webhook_sweep_every_seconds, runtime.webhook_sender.sweep),
        PeriodicTask("webhook log clean-up", FORGET_EVERY_SECONDS, runtime.webhook_sender.forget_old),
        # Rewards whose hold period is over are paid out; waiting referrers are looked up again.
        PeriodicTask("reward payouts", settings.sweep_every_seconds, runtime.payouts.run_due),
        # Contests that ended get their final leaderboard; winners with a prize are told.
        PeriodicTask("contest results", settings.sweep_every_seconds, runtime.contests.finalise_due),
        # Experiments on autopilot get their traffic shares from the verdict (at most once a day
        # each: the task looks hourly, so a restart delays a change by an hour at most).
        PeriodicTask("experiment autopilot", AUTOPILOT_LOOK_EVERY_SECONDS, runtime.experiment_autopilot.steer_all),
    ]


def refresh_analytics(runtime: Runtime) -> int:
    """Recompute the roll-ups of every campaign that has started; how many."""
    refreshed = 0
    for campaign in list_campaigns(runtime.db):
        if campaign.status == CampaignStatus.DRAFT:
            continue
        try:
            refresh_rollups(
                runtime.db,
                campaign.slug,
                runtime.clock.now(),
                visits=runtime.visits,
                plays=runtime.plays.counts,
                variant_visits=runtime.variant_visits,
            )
        except CampaignNotFound:
            continue  # deleted since it was listed
        refreshed += 1
    return refreshed


def build_scheduler(runtime: Runtime) -> Scheduler:
    settings = runtime.settings
    return Scheduler(
        runtime.queue.connection,
        f"{settings.redis_key_prefix}scheduler:lease",
        housekeeping(runtime),
        runtime.retries,
        lease_seconds=settings.scheduler_lease_seconds,
    )
