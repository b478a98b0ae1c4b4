"""What time it is, as one collaborator: the system's clock in the app, a fixed one in tests.

Everything that decides by the time (quiet hours, when a retry is due, when a message has
been `sending` too long, when a contact's retention is over) asks the runtime's clock,
so that a test can say what time it is instead of depending on when it runs.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current moment, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until it is told to move (tests, simulations).

    Safe to share between the threads of a batch (texts go out over several connections)."""

    def __init__(self, at: datetime) -> None:
        self._lock = threading.Lock()
        self._at = _aware_utc(at)

    def now(self) -> datetime:
        with self._lock:
            return self._at

    def set(self, at: datetime) -> None:
        with self._lock:
            self._at = _aware_utc(at)

    def advance(self, by: timedelta) -> datetime:
        with self._lock:
            self._at += by
            return self._at

    @classmethod
    def parse(cls, value: str) -> FixedClock:
        """`2026-06-03T21:30:00Z` (or with any offset); a moment without an offset is refused."""
        return cls(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))


def _aware_utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("a clock needs a timezone-aware moment")
    return at.astimezone(UTC)
