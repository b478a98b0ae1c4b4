"""When the database or Redis is down: a 503 with `Retry-After` for every visitor (a page for
people, problem+json for machines), and one log line per outage, not a traceback per request
(the runtime's OutageLog, engine.outages).
"""

from __future__ import annotations

import redis
from flask import Flask, Response, request
from sqlalchemy import exc as sql

from engine.caps import CapsUnavailable
from engine.outages import OutageLog
from engine.queue import QueueUnavailable
from engine.runtime import current_runtime
from engine.services.identities import RehashPending
from engine.web.errors import error_response

RETRY_AFTER_SECONDS = 60
# What a dependency that cannot be reached raises. OperationalError also covers a lock or
# serialization failure: transient as well, and a 503 is the right answer to those too.
DATABASE_DOWN = (sql.OperationalError, sql.InterfaceError, sql.TimeoutError)
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, CapsUnavailable, QueueUnavailable)

# What still answers while the upgrade owes the contacts' rehash.
OPT_OUT_BLUEPRINTS = frozenset({"hooks", "unsubscribe"})
# Probes answer for themselves: /healthz that the process lives, /readyz what is missing
# (an old schema has no table to hold the mark at all), /metrics what it can read.
PROBE_ENDPOINTS = frozenset({"public.health", "public.ready", "metrics.scrape"})


def outage_log() -> OutageLog:
    """The app's outage log (one per app, so per process), kept by the runtime."""
    return current_runtime().outages


def unavailable(detail: str) -> Response:
    response = error_response(503, detail, "Please try again in a minute")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def register(app: Flask) -> None:
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
