"""SMS quiet hours in the recipient's local time (TCPA: 08:00-21:00; some US states stricter).

The recipient's time zone comes from their number (phonenumbers' time zone data). A number
that spans several zones may be texted only when it is allowed in all of them. A text that
would arrive outside the window is deferred to the next allowed moment, never dropped.

A US number's state comes from its area code. phonenumbers' geocoder could tell it too, but
importing it loads the descriptions of every number prefix in the world: about 180 MB in
each process, for seven states.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as phone_timezones


@dataclass(frozen=True)
class Window:
    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError("quiet hours: the window must start before it ends")

    def allows(self, local: datetime) -> bool:
        return self.start <= local.time() < self.end


DEFAULT_WINDOW = Window(time(8), time(21))

# Stricter states (docs/policies.md): Florida, Oklahoma, Maryland, Mississippi and New Jersey end at 20:00;
# Connecticut is 09:00-20:00; Texas allows Sundays only from noon.
US_STATE_WINDOWS = {
    "Florida": Window(time(8), time(20)),
    "Oklahoma": Window(time(8), time(20)),
    "Maryland": Window(time(8), time(20)),
    "Mississippi": Window(time(8), time(20)),
    "New Jersey": Window(time(8), time(20)),
    "Connecticut": Window(time(9), time(20)),
}
US_STATE_SUNDAY_WINDOWS = {
    "Texas": Window(time(12), time(21)),
}
STATE_ABBREVIATIONS = {
    "TX": "Texas",
    "FL": "Florida",
    "OK": "Oklahoma",
    "MD": "Maryland",
    "MS": "Mississippi",
    "NJ": "New Jersey",
    "CT": "Connecticut",
}
# The area codes of the states above (NANPA; the unit tests check them against phonenumbers'
# geocoder data, so a new area code there shows up as a failing test).
US_STATE_AREA_CODES = {
    **dict.fromkeys(("201", "551", "609", "640", "732", "848", "856", "862", "908", "973"), "New Jersey"),
    **dict.fromkeys(("203", "475", "860", "959"), "Connecticut"),
    **dict.fromkeys(("227", "240", "301", "410", "443", "667"), "Maryland"),
    **dict.fromkeys(("228", "601", "662", "769"), "Mississippi"),
    **dict.fromkeys(("405", "539", "572", "580", "918"), "Oklahoma"),
    **dict.fromkeys(
        (
            "239", "305", "321", "324", "352", "386", "407", "448", "561", "645", "656", "689",
            "727", "728", "754", "772", "786", "813", "850", "863", "904", "941", "954",
        ),
        "Florida",
    ),
    **dict.fromkeys(
        (
            "210", "214", "254", "281", "325", "346", "361", "409", "430", "432", "469", "512", "682", "713",
            "726", "737", "806", "817", "830", "832", "903", "915", "936", "940", "945", "956", "972", "979",
        ),
        "Texas",
    ),
}  # fmt: skip


def window_for(number: str, default: Window = DEFAULT_WINDOW) -> Window:
    """The window for this number on an ordinary day: the policy's, or a stricter one its US state imposes."""
    return _narrowed(default, US_STATE_WINDOWS.get(_us_state(number) or ""))


@dataclass(frozen=True)
class Schedule:
    """The window of each day of the week (Monday first), as some states differ on Sundays."""

    days: tuple[Window, ...]

    def __post_init__(self) -> None:
        if len(self.days) != 7:
            raise ValueError("a schedule has a window for each of the 7 days")

    def allows(self, local: datetime) -> bool:
        return self.days[local.weekday()].allows(local)

    def next_start(self, local: datetime) -> datetime:
        """The first allowed moment at or after `local` (in its own zone)."""
        if self.allows(local):
            return local
        today = self.days[local.weekday()]
        if local.time() < today.start:
            return datetime.combine(local.date(), today.start, tzinfo=local.tzinfo)
        day = local.date() + timedelta(days=1)
        return datetime.combine(day, self.days[day.weekday()].start, tzinfo=local.tzinfo)


SUNDAY = 6


def schedule_for(number: str, default: Window = DEFAULT_WINDOW) -> Schedule:
    """The week's windows for this number: the policy's window, narrowed by its US state's rules."""
    state = _us_state(number) or ""
    weekday = window_for(number, default)
    sunday = _narrowed(weekday, US_STATE_SUNDAY_WINDOWS.get(state))
    return Schedule(tuple(sunday if day == SUNDAY else weekday for day in range(7)))


def _narrowed(window: Window, stricter: Window | None) -> Window:
    if stricter is None:
        return window
    return Window(max(window.start, stricter.start), min(window.end, stricter.end))


def next_allowed(number: str, now: datetime, window: Window = DEFAULT_WINDOW) -> datetime | None:
    """None when a text may go now; otherwise the first moment (UTC) it may."""
    schedule = schedule_for(number, window)
    zones = _zones(number)
    if all(schedule.allows(now.astimezone(zone)) for zone in zones):
        return None
    # Step to each zone's next window start and take the first moment allowed everywhere;
    # zones whose windows never overlap (a toll-free number) fall back to the first zone.
    candidates = sorted({schedule.next_start(now.astimezone(zone)).astimezone(now.tzinfo) for zone in zones})
    for candidate in candidates:
        if all(schedule.allows(candidate.astimezone(zone)) for zone in zones):
            return candidate
    return schedule.next_start(now.astimezone(zones[0])).astimezone(now.tzinfo)


@lru_cache(maxsize=4096)
def _zones(number: str) -> tuple[ZoneInfo, ...]:
    try:
        names: Sequence[str] = phone_timezones.time_zones_for_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        names = ()
    zones = tuple(ZoneInfo(name) for name in names if name != "Etc/Unknown")
    return zones or (ZoneInfo("UTC"),)


@lru_cache(maxsize=4096)
def _us_state(number: str) -> str | None:
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.region_code_for_number(parsed) != "US":
        return None
    return US_STATE_AREA_CODES.get(str(parsed.national_number)[:3])
