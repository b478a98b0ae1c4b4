"""Per-client rate limits on /api/v1, with the `RateLimit` header fields on every answer.

Each API key (or signed-in person) is counted on its own, against the limit of its role; a
request without a valid key is counted by its address (keyed hash) against `anonymous`. The
limits come from the settings (`API_RATE_LIMITS`). Counting is a moving window of the `limits`
library: in Redis, shared by every web process, where REDIS_URL is set; in this process's
memory in the embedded mode.

Every answer carries `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds until
a request is counted off the window) and `RateLimit-Policy` (`600;w=60`); past the limit the
answer is 429 problem+json with `Retry-After`. When Redis cannot be reached the request goes
through uncounted (logged once per outage): a limiter that is down must not take the API down.
Windows are on the wall clock (the library's), not the app's: a rate is a matter of real seconds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis
from flask import Flask, Response, g, request
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from config import Settings
from engine.runtime import current_runtime
from engine.web.api.problems import RATE_LIMITED, problem
from engine.web.console.auth import current_member
from engine.web.outages import outage_log

API_PREFIX = "/api/v1/"
ANONYMOUS = "anonymous"
EXTENSION_KEY = "fluister.api_rate_limits"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the oldest request counted leaves the window
    window_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": f"{self.limit};w={self.window_seconds}",
        }


class ApiRateLimits:
    def __init__(self, storage: Storage, limits: dict[str, RateLimitItem]) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._limits = limits

    @classmethod
    def for_settings(cls, settings: Settings) -> ApiRateLimits:
        storage: Storage
        if settings.redis_url:
            storage = RedisStorage(settings.redis_url, key_prefix=f"{settings.redis_key_prefix}api-rate")
        else:
            storage = MemoryStorage()
        return cls(storage, {who: parse(limit) for who, limit in settings.api_rate_limits})

    def hit(self, who: str, identity: str) -> Verdict:
        """Count one request of `identity` (limited as `who`): whether it may go on, and the figures."""
        item = self._limits[who]
        allowed = self._limiter.hit(item, identity)
        stats = self._limiter.get_window_stats(item, identity)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        return Verdict(allowed, item.amount, stats.remaining, reset, item.get_expiry())


def limits_of(app: Flask) -> ApiRateLimits:
    limits: ApiRateLimits = app.extensions[EXTENSION_KEY]
    return limits


def _who() -> tuple[str, str]:
    """(which limit, whose count) for this request."""
    member = current_member()
    if member is None:
        address = request.remote_addr or "-"
        return ANONYMOUS, "ip:" + current_runtime().hasher.hash_text(f"ip:{address}")
    prefix = "key" if member.kind == "api-key" else "user"
    return member.role.value, f"{prefix}:{member.id}"


def register(app: Flask, settings: Settings) -> None:
    app.extensions[EXTENSION_KEY] = ApiRateLimits.for_settings(settings)

    @app.before_request
    def count_api_request() -> Response | None:
        if not request.path.startswith(API_PREFIX):
            return None
        who, identity = _who()
        try:
            verdict = limits_of(app).hit(who, identity)
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
