"""Per-client rate limits of the API (`/api/v1`): how many requests each key (or person, or
address) may make, counted in a moving window of the `limits` library: in Redis, shared by every
web process, where REDIS_URL is set; in this process's memory in the embedded mode. The limits
come from the settings (`API_RATE_LIMITS`), one per role and one for requests without a key.

Windows are on the wall clock (the library's), not the app's: a rate is a matter of real seconds.
engine.web.api.rate_limits applies them to requests and writes the `RateLimit-*` fields.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from config import Settings

ANONYMOUS = "anonymous"


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
