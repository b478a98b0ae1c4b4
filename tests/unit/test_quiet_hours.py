from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from engine.quiet_hours import DEFAULT_WINDOW, Window, next_allowed, window_for

SAN_FRANCISCO = "+14155552671"
FLORIDA = "+13055550123"
CONNECTICUT = "+12035550123"
AMSTERDAM = "+31612345678"


def utc(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("number", "now", "expected"),
    [
        (SAN_FRANCISCO, utc(20), None),  # 12:00 in San Francisco
        (SAN_FRANCISCO, utc(15, 59), utc(16)),  # 07:59 there: wait a minute, until 08:00 PST
        (SAN_FRANCISCO, utc(5), utc(16)),  # 21:00 there the day before: next morning
        (AMSTERDAM, utc(19, 59), None),  # 20:59 in Amsterdam
        (AMSTERDAM, utc(20), utc(7, day=2)),  # 21:00: tomorrow 08:00 CET
        (FLORIDA, utc(0, 30), None),  # 19:30 in Miami: Florida's evening ends at 20:00
        (FLORIDA, utc(1, 30), utc(13)),  # 20:30 in Miami: tomorrow 08:00 EST
    ],
)
def test_texts_wait_for_the_recipients_morning(number: str, now: datetime, expected: datetime | None) -> None:
    assert next_allowed(number, now) == expected


def test_stricter_states_narrow_the_window() -> None:
    assert window_for(FLORIDA) == Window(time(8), time(20))
    assert window_for(CONNECTICUT) == Window(time(9), time(20))
    assert window_for(SAN_FRANCISCO) == DEFAULT_WINDOW
    assert window_for(AMSTERDAM) == DEFAULT_WINDOW


def test_connecticut_mornings_start_at_nine() -> None:
    assert next_allowed(CONNECTICUT, utc(13, 30)) == utc(14)  # 08:30 EST -> 09:00


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(ValueError):
        Window(time(21), time(8))


HOUSTON = "+17135550123"


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(16, day=5), None),  # Saturday 10:00 in Houston: an ordinary day
        (utc(16, day=6), utc(18, day=6)),  # Sunday 10:00: Texas waits for noon on Sundays
        (utc(18, day=6), None),  # Sunday noon
        (utc(3, 30, day=6), utc(18, day=6)),  # Saturday 21:30: not Sunday 08:00 but Sunday noon
        (utc(3, 30, day=7), utc(14, day=7)),  # Sunday 21:30: Monday 08:00
    ],
)
def test_texas_allows_sundays_only_from_noon(now: datetime, expected: datetime | None) -> None:
    assert now.astimezone(ZoneInfo("America/Chicago")).strftime("%A") in ("Saturday", "Sunday")
    assert next_allowed(HOUSTON, now) == expected


def test_other_states_text_on_sunday_mornings() -> None:
    sunday_morning = utc(17, day=6)  # 09:00 in San Francisco
    assert next_allowed(SAN_FRANCISCO, sunday_morning) is None
