"""When the database or Redis is down: a 503 with `Retry-After` for every visitor (a page for
people, problem+json for machines), and one log line per outage, not a traceback per request.

An outage is a run of failures of one dependency with no gap longer than `quiet_after`
seconds between them; each process logs its start once (with how many requests the previous
one refused). The clock is injected, so that tests decide what time it is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from flask import Flask, Response, current_app, request
from sqlalchemy import exc as sql

from engine.caps import CapsUnavailable
from engine.queue import QueueUnavailable
from engine.runtime import current_runtime
from engine.services.identities import RehashPending
from engine.web.errors import error_response

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 60
QUIET_AFTER_SECONDS = 60.0
# What a dependency that cannot be reached raises. OperationalError also covers a lock or
# serialization failure: transient as well, and a 503 is the right answer to those too.
DATABASE_DOWN = (sql.OperationalError, sql.InterfaceError, sql.TimeoutError)
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, CapsUnavailable, QueueUnavailable)

_EXTENSION = "fluister.outages"
# What still answers while the upgrade owes the contacts' rehash.
OPT_OUT_BLUEPRINTS = frozenset({"hooks", "unsubscribe"})
# Probes answer for themselves: /healthz that the process lives, /readyz what is missing
# (an old schema has no table to hold the mark at all).
PROBE_ENDPOINTS = frozenset({"public.health", "public.ready"})


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


def outage_log(app: Flask | None = None) -> OutageLog:
    """The app's outage log (one per app, so per process)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    found = app.extensions.get(_EXTENSION)
    if found is None:
        found = app.extensions[_EXTENSION] = OutageLog()
    return found


def unavailable(detail: str) -> Response:
    response = error_response(503, detail, "Please try again in a minute")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def register(app: Flask) -> None:
    outage_log(app)

    @app.before_request
    def rehash_owed() -> Response | None:
        # An upgrade that could not rehash old contact hashes itself: until `flask contacts
        # rehash` has run, an opt-out kept under one could be missed, so nothing is taken in,
        # except opt-outs themselves (unsubscribe links, providers' STOPs and bounces): those
        # are only written, never sent, and a provider may not call again.
        # One line in the log per process (RehashGate); one read until the mark is gone.
        if request.blueprint in OPT_OUT_BLUEPRINTS or request.endpoint in PROBE_ENDPOINTS:
            return None
        try:
            current_runtime().rehash.check()
        except RehashPending:
            return unavailable("We are finishing an upgrade. Nothing was lost; please try again in a few minutes.")
        return None

    def database_down(error: Exception) -> Response:
        outage_log().failed("the database", error)
        return unavailable("We can't reach our database right now. Nothing was lost; please try again in a minute.")

    def redis_down(error: Exception) -> Response:
        outage_log().failed("Redis", error)
        return unavailable("This can't be done right now. Nothing was lost; please try again in a minute.")

    for database_error in DATABASE_DOWN:
        app.register_error_handler(database_error, database_down)
    for redis_error in REDIS_DOWN:
        app.register_error_handler(redis_error, redis_down)
