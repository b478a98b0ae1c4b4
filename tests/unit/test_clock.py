"""The clock the app decides by: the system's, or one a test (or a CI run) fixes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from engine.clock import FixedClock, SystemClock


def test_the_system_clock_is_aware_and_in_utc() -> None:
    now = SystemClock().now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)


def test_a_fixed_clock_stands_still_until_moved() -> None:
    clock = FixedClock.parse("2026-06-07T16:30:00Z")
    assert clock.now() == clock.now() == datetime(2026, 6, 7, 16, 30, tzinfo=UTC)
    assert clock.advance(timedelta(minutes=90)) == datetime(2026, 6, 7, 18, 0, tzinfo=UTC)
    clock.set(datetime(2026, 6, 8, 9, 0, tzinfo=timezone(timedelta(hours=2))))
    assert clock.now() == datetime(2026, 6, 8, 7, 0, tzinfo=UTC) and clock.now().tzinfo is UTC


@pytest.mark.parametrize("value", ["2026-06-07T16:30:00", "tomorrow"])
def test_a_moment_without_its_offset_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        FixedClock.parse(value)
