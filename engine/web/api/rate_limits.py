"""Per-client rate limits on /api/v1, with the `RateLimit` header fields on every answer.

Each API key (or signed-in person) is counted on its own, against the limit of its role; a
request without a valid key is counted by its address (keyed hash) against `anonymous`
(engine.api_limits, the runtime's `api_limits`).

Every answer carries `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds until
a request is counted off the window) and `RateLimit-Policy` (`600;w=60`); past the limit the
answer is 429 problem+json with `Retry-After`. When Redis cannot be reached the request goes
through uncounted (logged once per outage): a limiter that is down must not take the API down.
"""

from __future__ import annotations

import redis
from flask import Flask, Response, g, request

from engine.api_limits import ANONYMOUS, Verdict
from engine.runtime import current_runtime
from engine.web.api.problems import RATE_LIMITED, problem
from engine.web.console.auth import current_member
from engine.web.outages import outage_log

API_PREFIX = "/api/v1/"


def _who() -> tuple[str, str]:
    """(which limit, whose count) for this request."""
    member = current_member()
    if member is None:
        address = request.remote_addr or "-"
        return ANONYMOUS, "ip:" + current_runtime().hasher.hash_text(f"ip:{address}")
    prefix = "key" if member.kind == "api-key" else "user"
    return member.role.value, f"{prefix}:{member.id}"


def register(app: Flask) -> None:
    @app.before_request
    def count_api_request() -> Response | None:
        if not request.path.startswith(API_PREFIX):
            return None
        who, identity = _who()
        try:
            verdict = current_runtime().api_limits.hit(who, identity)
        except redis.RedisError as error:
            outage_log().failed("Redis", error)
            return None
        g.api_rate_limit = verdict
        if verdict.allowed:
            return None
        response = problem(
            429,
            "Too many requests",
            f"Too many requests: this client may make {verdict.limit} in {verdict.window_seconds} seconds. "
            f"Try again in {verdict.reset_seconds} seconds.",
            type_=RATE_LIMITED,
        )
        response.headers["Retry-After"] = str(verdict.reset_seconds)
        return response

    @app.after_request
    def rate_limit_headers(response: Response) -> Response:
        verdict: Verdict | None = g.pop("api_rate_limit", None)
        if verdict is not None:
            response.headers.update(verdict.headers())
        return response
