"""How the console writes times, numbers, percentages and money: in the staff member's language
(Babel's rules for it: `12.345,6` in Dutch, `12 345,6` in French) and their time zone.

Times are stored in UTC; a page shows them in the zone of the person reading it (their own
choice on the account page, else DEFAULT_TIME_ZONE) and names that zone, and each carries the
UTC instant in a `<time datetime>` for whoever copies it. Exports (CSV, JSON) stay in UTC
ISO-8601: they are read by programs, not people.
"""

from __future__ import annotations

import copy
import functools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_skeleton, format_time, format_timedelta, get_datetime_format
from babel.numbers import NumberPattern, format_currency
from flask import Flask, g, has_request_context
from flask_babel import get_locale, ngettext
from markupsafe import Markup, escape

from engine.runtime import current_runtime
from engine.time_zones import is_time_zone
from engine.web.console.auth import current_member

NOTHING = "—"  # where a figure has no value (no visitors yet: no share rate)


def staff_zone_name() -> str:
    """The zone this request's staff member reads times in."""
    if has_request_context() and "staff_zone" in g:
        return str(g.staff_zone)
    name = current_runtime().settings.default_time_zone
    if has_request_context():
        member = current_member()
        if member is not None and member.time_zone and is_time_zone(member.time_zone):
            name = member.time_zone
        g.staff_zone = name
    return name


def staff_zone() -> ZoneInfo:
    return ZoneInfo(staff_zone_name())


def _locale() -> str:
    return str(get_locale() or "en")


def local_text(moment: datetime, *, seconds: bool = False) -> str:
    """`moment` as the reader's clock showed it, in their language: "3 jun 2026, 23:30"."""
    zone = staff_zone()
    local = _aware(moment).astimezone(zone)
    locale = _locale()
    clock = format_time(local, "medium" if seconds else "short", tzinfo=zone, locale=locale)
    day = format_date(local.date(), "medium", locale=locale)
    # Babel's own way of joining a date and a time in this language ("{1}, {0}", "{1} 'om' {0}").
    pattern = str(get_datetime_format("medium", locale=locale))
    return pattern.replace("'", "").replace("{0}", clock).replace("{1}", day)


def when(moment: datetime | None, seconds: bool = False, empty: str = NOTHING) -> Markup:
    """A time for a page: local text in a <time> that carries the UTC instant."""
    if moment is None:
        return escape(empty)
    utc = _aware(moment).astimezone(UTC)
    return Markup('<time datetime="{}">{}</time>').format(
        utc.isoformat().replace("+00:00", "Z"), local_text(moment, seconds=seconds)
    )


def day(moment: datetime | date | None, empty: str = NOTHING) -> str:
    """The reader's day a moment fell on (a date is shown as it is)."""
    if moment is None:
        return empty
    if isinstance(moment, datetime):
        moment = _aware(moment).astimezone(staff_zone()).date()
    return format_date(moment, "medium", locale=_locale())


def short_day(moment: date) -> str:
    """A day as an axis names it, without its year: "Dec 7", "7 dec.", "7 déc."."""
    return format_skeleton("MMMd", moment, locale=_locale())


def number(value: int | float | Decimal | None, digits: int = 0) -> str:
    """A figure with exactly `digits` decimals, grouped as the reader's language groups them."""
    if value is None:
        return NOTHING
    pattern, locale = _number_pattern(_locale(), digits, percent=False)
    return pattern.apply(value, locale)


def percent(value: float | None, digits: int = 1) -> str:
    """A share (0.125) as a percentage: "12.5%", "12,5%", "12,5 %" in French."""
    if value is None:
        return NOTHING
    pattern, locale = _number_pattern(_locale(), digits, percent=True)
    return pattern.apply(value, locale)


@functools.cache
def _number_pattern(name: str, digits: int, *, percent: bool) -> tuple[NumberPattern, Locale]:
    # Once per language and number of decimals, not once per figure: a dashboard shows hundreds.
    locale = Locale.parse(name)
    formats = locale.percent_formats if percent else locale.decimal_formats
    return _with_digits(formats[None], digits), locale


def duration(value: timedelta | None) -> str:
    """A span of time, rounded to its largest unit: "9 seconds", "2 minutes", "9 minuten"."""
    if value is None:
        return NOTHING
    if value >= timedelta(days=1):
        # In days, never rounded to weeks or months: 10 days is not "1 week".
        return ngettext("%(num)s day", "%(num)s days", round(value.total_seconds() / 86_400))
    return format_timedelta(value, threshold=1, locale=_locale())


def _with_digits(pattern: NumberPattern, digits: int) -> NumberPattern:
    # The language's own pattern (where the sign goes, its spaces), with the decimals we want.
    fixed = copy.copy(pattern)
    fixed.frac_prec = (digits, digits)
    return fixed


def money(amount: Decimal | float | None, currency: str) -> str:
    """An amount with all its digits (an SMS segment costs a fraction of a cent)."""
    if amount is None:
        return NOTHING
    return format_currency(amount, currency, locale=_locale(), decimal_quantization=False)


def _aware(moment: datetime) -> datetime:
    # The database hands back UTC, and SQLite without its zone.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def register(app: Flask) -> None:
    app.jinja_env.filters.update(
        when=when, day=day, short_day=short_day, number=number, percent=percent, money=money, duration=duration
    )
    app.jinja_env.globals.update(staff_zone_name=staff_zone_name)
