"""Time zones staff read times in: IANA names, checked against the time zone database.

Times are stored in UTC everywhere; a zone only changes how the console shows them and how it
reads the dates staff type (the compliance log's From and To).
"""

from __future__ import annotations

from functools import cache
from zoneinfo import ZoneInfo, available_timezones

# Names the database may list that name no real place's clock: the machine's own setting
# (which differs from server to server) and the placeholder zone.
_NOT_PLACES = frozenset({"localtime", "Factory"})


@cache
def time_zone_names() -> tuple[str, ...]:
    """Every zone a staff member may choose, sorted."""
    return tuple(sorted(available_timezones() - _NOT_PLACES))


def is_time_zone(name: str) -> bool:
    return name in _names()


def time_zone(name: str) -> ZoneInfo:
    """The zone called `name`; ValueError for a name the database does not have."""
    if not is_time_zone(name):
        raise ValueError(f"not a time zone: {name!r}")
    return ZoneInfo(name)


@cache
def _names() -> frozenset[str]:
    return frozenset(time_zone_names())
