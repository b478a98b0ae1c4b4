"""One log line per outage of a dependency (the database, Redis), not a traceback per request.

An outage is a run of failures of one dependency with no gap longer than `quiet_after`
seconds between them; each process logs its start once (with how many requests the previous
one refused). The clock is injected, so that tests decide what time it is. The runtime keeps
one per app (engine.runtime); the web answers such requests with a 503 (engine.web.outages).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import exc as sql

log = logging.getLogger(__name__)

QUIET_AFTER_SECONDS = 60.0


@dataclass
class _Episode:
    started: float
    last: float
    failures: int


class OutageLog:
    """Logs the start of each outage of a dependency once; counts the failures in between."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, quiet_after: float = QUIET_AFTER_SECONDS) -> None:
        self._clock = clock
        self._quiet_after = quiet_after
        self._episodes: dict[str, _Episode] = {}
        self._lock = threading.Lock()

    def failed(self, dependency: str, error: BaseException) -> None:
        now = self._clock()
        with self._lock:
            episode = self._episodes.get(dependency)
            if episode is not None and now - episode.last <= self._quiet_after:
                episode.last = now
                episode.failures += 1
                return
            self._episodes[dependency] = _Episode(started=now, last=now, failures=1)
        before = (
            f" (the previous outage: {episode.failures} failed requests over {episode.last - episode.started:.0f} s)"
            if episode
            else ""
        )
        log.warning(
            "%s cannot be reached (%s): requests that need it are answered 503 until it is back; "
            "no more lines about it until it has worked for %.0f s%s",
            dependency,
            describe(error),
            self._quiet_after,
            before,
        )


def describe(error: BaseException) -> str:
    """The error's class and first line: enough to tell a refused connection from a timeout."""
    cause = error.orig if isinstance(error, sql.DBAPIError) and error.orig is not None else error
    first_line = (str(cause).strip().splitlines() or [""])[0][:200]
    return f"{type(cause).__name__}: {first_line}" if first_line else type(cause).__name__
