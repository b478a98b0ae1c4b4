import subprocess
import sys
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from engine import PROJECT_ROOT
from engine.quiet_hours import (
    DEFAULT_WINDOW,
    STATE_ABBREVIATIONS,
    US_STATE_AREA_CODES,
    US_STATE_SUNDAY_WINDOWS,
    US_STATE_WINDOWS,
    Window,
    next_allowed,
    window_for,
)

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


def test_the_lookup_leaves_the_geocoders_data_unloaded() -> None:
    # phonenumbers' geocoder data describes every number prefix in the world (about 180 MB of
    # memory once imported); quiet hours need only the time zones and a few states' area codes.
    probe = (
        "import sys; from datetime import UTC, datetime; from engine.quiet_hours import next_allowed, window_for;"
        f"next_allowed({FLORIDA!r}, datetime(2026, 12, 6, 15, tzinfo=UTC)); window_for({AMSTERDAM!r});"
        "print(sorted(m for m in sys.modules if m.startswith(('phonenumbers.geo', 'phonenumbers.carrier'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    assert loaded.stdout.strip() == "[]"


def test_the_states_area_codes_agree_with_the_geocoders_data() -> None:
    from phonenumbers.geodata import GEOCODE_DATA

    states = set(US_STATE_WINDOWS) | set(US_STATE_SUNDAY_WINDOWS)

    def state_of(description: str) -> str | None:  # "Florida", or "Miami, FL"
        return description if description in states else STATE_ABBREVIATIONS.get(description.rpartition(", ")[2])

    us_prefixes = {p: d["en"] for p, d in GEOCODE_DATA.items() if p.startswith("1") and len(p) >= 4 and "en" in d}
    # No number the geocoder places in one of these states is missed...
    missed = {p: d for p, d in us_prefixes.items() if state_of(d) and US_STATE_AREA_CODES.get(p[1:4]) != state_of(d)}
    assert missed == {}
    # ...and the table names no area code of another state (201 has one New York exchange,
    # which is held to New Jersey's stricter hours).
    foreign = {p: d for p, d in us_prefixes.items() if p[1:4] in US_STATE_AREA_CODES and not state_of(d)}
    assert foreign == {"1201631": "New York, NY"}
    assert window_for("+12015550123") == Window(time(8), time(20))  # New Jersey
    assert window_for("+12125550123") == DEFAULT_WINDOW  # New York
