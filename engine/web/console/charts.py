"""The dashboard's chart geometry: nice axis ticks, small multiples of reach over time, and bar
rows. Pure arithmetic on figures already read; the templates only draw what is computed here.

Every chart is an SVG with a viewBox about as wide as a phone's column (`VIEW_WIDTH`), drawn
at 100 % of its box by CSS, with its text at `TEXT_SIZE` user units: at 390 px wide the box
is about as wide as the viewBox, so the text renders at about that many pixels, and the boxes
are kept narrow on wide screens (CSS) so it does not grow much either. No script.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

VIEW_WIDTH = 320
TEXT_SIZE = 14  # user units; see the module's docstring

# A small multiple: one series over time, on its own y scale.
MULTIPLE_HEIGHT = 170
MULTIPLE_LEFT = 52  # room for the y ticks' numbers
MULTIPLE_RIGHT = 14  # room for the last date's label to end in
MULTIPLE_TOP = 12
MULTIPLE_BOTTOM = 30  # room for the dates below the x axis

# A bar row: its label and value on one line, the bar below it, so that a long label never
# runs into the bar, the value or a marker line.
ROW_HEIGHT = 44
ROW_TEXT = 16  # the text's baseline within the row
ROW_BAR_TOP = 24
ROW_BAR_HEIGHT = 14
MARKER_HEADER = 22  # the line above the rows that names a marker ("K = 1")

NICE_STEPS = (1, 2, 5)


def nice_ticks(maximum: float, intervals: int = 5, *, integers: bool = True) -> list[float]:
    """Axis ticks from 0 to at least `maximum`: the smallest step of 1, 2 or 5 times a power of 10 that covers
    it in at most `intervals` intervals (integers only when counting things)."""
    if maximum <= 0 or not math.isfinite(maximum):
        return [0, 1]
    exponent = math.floor(math.log10(maximum / intervals))
    step = 1.0
    for power in (exponent, exponent + 1):
        candidates = [n * 10.0**power for n in NICE_STEPS]
        fitting = [s for s in candidates if math.ceil(maximum / s - 1e-9) <= intervals and (s >= 1 or not integers)]
        if fitting:
            step = fitting[0]
            break
    else:
        step = 10.0 ** (exponent + 2)
    count = math.ceil(maximum / step - 1e-9)
    ticks = [round(i * step, 10) for i in range(count + 1)]
    return [int(t) if integers or float(t).is_integer() else t for t in ticks]


@dataclass(frozen=True)
class Tick:
    position: float  # along its axis, in user units
    value: float


@dataclass(frozen=True)
class DateTick:
    position: float
    day: date
    anchor: str  # SVG text-anchor: start, middle or end, so that no date leaves the chart


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    day: date
    value: int


@dataclass(frozen=True)
class Multiple:
    """One series over time on its own scale (one of a set of small multiples)."""

    label: str
    css_class: str
    points: list[Point]
    y_ticks: list[Tick]
    x_ticks: list[DateTick]
    last: int
    width: int = VIEW_WIDTH
    height: int = MULTIPLE_HEIGHT
    left: int = MULTIPLE_LEFT
    right: int = VIEW_WIDTH - MULTIPLE_RIGHT
    top: int = MULTIPLE_TOP
    bottom: int = MULTIPLE_HEIGHT - MULTIPLE_BOTTOM

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


def small_multiple(label: str, css_class: str, days: Sequence[date], values: Sequence[int]) -> Multiple:
    """A series of daily values (one per day of `days`) drawn on its own nice y scale."""
    if len(days) != len(values) or not days:
        raise ValueError("one value per day, and at least one day")
    ticks = nice_ticks(max(values), 4)
    top_value = ticks[-1]
    plot_left, plot_right = MULTIPLE_LEFT, VIEW_WIDTH - MULTIPLE_RIGHT
    plot_top, plot_bottom = MULTIPLE_TOP, MULTIPLE_HEIGHT - MULTIPLE_BOTTOM
    step = (plot_right - plot_left) / max(1, len(days) - 1)

    def y(value: float) -> float:
        return plot_bottom - value / top_value * (plot_bottom - plot_top)

    points = [
        Point(plot_left + i * step if len(days) > 1 else (plot_left + plot_right) / 2, y(v), d, v)
        for i, (d, v) in enumerate(zip(days, values, strict=True))
    ]
    return Multiple(
        label=label,
        css_class=css_class,
        points=points,
        y_ticks=[Tick(y(t), t) for t in ticks],
        x_ticks=_date_ticks(points),
        last=values[-1],
    )


def _date_ticks(points: list[Point]) -> list[DateTick]:
    # The first, middle and last day: three dates fit a phone's width; more would collide.
    if len(points) == 1:
        return [DateTick(points[0].x, points[0].day, "middle")]
    chosen = [(points[0], "start"), (points[-1], "end")]
    if len(points) >= 5:
        chosen.insert(1, (points[len(points) // 2], "middle"))
    return [DateTick(p.x, p.day, anchor) for p, anchor in chosen]


@dataclass(frozen=True)
class BarRow:
    label: str
    value: float
    shown: str  # the value as the page writes it
    top: float  # the row's top, in user units
    length: float  # of the bar, in user units

    @property
    def text_y(self) -> float:
        return self.top + ROW_TEXT

    @property
    def bar_y(self) -> float:
        return self.top + ROW_BAR_TOP


@dataclass(frozen=True)
class BarChart:
    rows: list[BarRow]
    height: float
    width: int = VIEW_WIDTH
    bar_height: int = ROW_BAR_HEIGHT
    # A reference line across the bars only (K = 1), and where its label goes above them.
    marker_x: float | None = None
    marker_anchor: str = "middle"


def bar_chart(values: Sequence[tuple[str, float, str]], *, marker: float | None = None) -> BarChart:
    """One row per (label, value, shown value), bars on one scale from 0; with `marker`, a line
    at that value, the scale stretched to show it, and a header line above the rows for its
    label, so that no label or value is ever drawn across it."""
    largest = max([v for _, v, _ in values] + ([marker] if marker is not None else []), default=0) or 1
    offset = MARKER_HEADER if marker is not None else 0
    rows = [
        BarRow(label, value, shown, offset + i * ROW_HEIGHT, max(0.0, value) / largest * VIEW_WIDTH)
        for i, (label, value, shown) in enumerate(values)
    ]
    height = offset + len(rows) * ROW_HEIGHT
    if marker is None:
        return BarChart(rows, height)
    x = marker / largest * VIEW_WIDTH
    anchor = "end" if x > VIEW_WIDTH - 40 else "start" if x < 40 else "middle"
    return BarChart(rows, height, marker_x=x, marker_anchor=anchor)
