"""Riding out an outage of Redis or the database in the processes that serve no requests.

A worker or the scheduler that loses Redis or PostgreSQL does not exit: it tries again with a
growing pause (`Backoff`), says so in one log line when the outage starts, one more a minute
while it lasts and one when it is over (`RetryLog`), and then carries on where it was. Nothing
is sent twice meanwhile: a message is claimed in the database before it is sent, and a job that
was lost is asked for again by the sweeper.

Web requests have their own outage log (engine.outages): they answer 503 rather than wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from sqlalchemy import exc as sql

from engine.outages import describe

log = logging.getLogger(__name__)

REDIS = "Redis"
DATABASE = "the database"
LOG_EVERY_SECONDS = 60.0


def dependency_of(error: BaseException) -> str | None:
    """Which service an error says is unreachable, or None when it is some other error."""
    if isinstance(error, (redis.ConnectionError, redis.TimeoutError)):
        return REDIS
    if isinstance(error, (sql.OperationalError, sql.InterfaceError)) or (
        isinstance(error, sql.DBAPIError) and error.connection_invalidated
    ):
        return DATABASE
    return None


@dataclass
class _Outage:
    started: float
    logged: float
    tries: int


class RetryLog:
    """One line when a dependency becomes unreachable, at most one per `every` seconds while it
    stays so, and one when it is back. `every` and the clock are injected: tests need neither
    to wait a minute nor to read a real clock."""

    def __init__(self, every: float = LOG_EVERY_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every
        self._clock = clock
        self._outages: dict[str, _Outage] = {}
        self._lock = threading.Lock()

    def failed(self, dependency: str, error: BaseException, retry_in: float) -> None:
        now = self._clock()
        with self._lock:
            outage = self._outages.get(dependency)
            if outage is None:
                self._outages[dependency] = _Outage(started=now, logged=now, tries=1)
                first = True
            else:
                outage.tries += 1
                if now - outage.logged < self._every:
                    return
                outage.logged = now
                first = False
        if first:
            log.warning(
                "%s cannot be reached (%s): trying again in %.0f s, and saying so at most every %.0f s",
                dependency,
                describe(error),
                retry_in,
                self._every,
            )
        else:
            log.warning(
                "%s still cannot be reached after %.0f s and %d tries (%s): trying again in %.0f s",
                dependency,
                now - outage.started,  # type: ignore[union-attr]
                outage.tries,  # type: ignore[union-attr]
                describe(error),
                retry_in,
            )

    def recovered(self, dependency: str) -> bool:
        """Say that the dependency is back, if it was down; whether it was."""
        with self._lock:
            outage = self._outages.pop(dependency, None)
        if outage is None:
            return False
        log.warning(
            "%s is back after %.0f s and %d tries: carrying on",
            dependency,
            self._clock() - outage.started,
            outage.tries,
        )
        return True

    def is_down(self, dependency: str) -> bool:
        with self._lock:
            return dependency in self._outages


class Backoff:
    """Pauses between tries that double from `first` up to `most` seconds."""

    def __init__(self, first: float = 0.5, most: float = 30.0) -> None:
        self._first = first
        self._most = most
        self._next = first

    def next(self) -> float:
        pause = self._next
        self._next = min(self._next * 2, self._most)
        return pause

    def reset(self) -> None:
        self._next = self._first


def wait_until_reachable(
    dependency: str,
    check: Callable[[], object],
    retry_log: RetryLog,
    *,
    error: BaseException,
    sleep: Callable[[float], None] = time.sleep,
    backoff: Backoff | None = None,
) -> None:
    """Pause and try `check` until it no longer fails for want of `dependency`; then say it is
    back. Any other error is raised."""
    backoff = backoff or Backoff()
    while True:
        pause = backoff.next()
        retry_log.failed(dependency, error, pause)
        sleep(pause)
        try:
            check()
        except Exception as failure:
            if dependency_of(failure) != dependency:
                raise
            error = failure
            continue
        retry_log.recovered(dependency)
        return
