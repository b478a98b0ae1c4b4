"""The dashboard's date range (`?from=YYYY-MM-DD&to=YYYY-MM-DD`, both optional, both included):
read from the query string, refused field by field with a reason the form shows beside it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from flask_babel import gettext as _

# The longest range asked for: enough for any campaign, and a bound on what a chart draws.
MAX_DAYS = 3 * 366


@dataclass(frozen=True)
class DateRange:
    since: date | None = None
    until: date | None = None
    typed: Mapping[str, str] = field(default_factory=dict)  # as typed, to show back in the form
    errors: Mapping[str, str] = field(default_factory=dict)  # by field name: "from", "to"

    @property
    def narrowed(self) -> bool:
        return self.since is not None or self.until is not None


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def parse_range(args: Mapping[str, str], today: date) -> DateRange:
    """The range asked for; with an error in it, no range at all (every day) and the errors."""
    typed = {name: (args.get(name) or "").strip()[:32] for name in ("from", "to")}
    errors: dict[str, str] = {}
    days: dict[str, date | None] = {}
    for name, text in typed.items():
        days[name] = _day(text) if text else None
        if text and days[name] is None:
            errors[name] = _("Enter a date as year-month-day, for example %(example)s.", example=today.isoformat())
    since, until = days["from"], days["to"]
    if "from" not in errors and since is not None and since > today:
        errors["from"] = _("The start cannot be after today.")
    if not errors and since is not None and until is not None:
        if until < since:
            errors["to"] = _("The end must be on or after the start.")
        elif (until - since).days > MAX_DAYS:
            errors["to"] = _("A range can be at most %(days)s days long.", days=MAX_DAYS)
    if errors:
        return DateRange(typed=typed, errors=errors)
    return DateRange(since, until, typed)
