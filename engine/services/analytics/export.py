"""The dashboard's figures as CSV, one figure a file (`CSV_FIGURES`), safe to open in a
spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from engine.services.analytics.figures import CampaignMetrics, SliceMetrics, projection_json
from engine.spreadsheet import safe_cell

CSV_FIGURES = ("slices", "reach", "funnel", "ambassadors", "chains", "projection")


def metrics_csv(metrics: CampaignMetrics, figure: str) -> str:
    """One figure of the dashboard as CSV (`CSV_FIGURES`); ValueError for another name."""
    rows: list[dict[str, Any]]
    if figure == "slices":
        slices = [metrics.overall, *metrics.generations, *metrics.channels]
        rows = [{"slice": _slice_name(s), **s.to_json()} for s in slices]
    elif figure == "reach":
        rows = [{**asdict(p), "day": p.day.isoformat()} for p in metrics.reach_over_time]
    elif figure == "funnel":
        rows = [asdict(s) for s in metrics.funnel]
    elif figure == "ambassadors":
        rows = [{"ranking": "reach", "rank": i, **asdict(a)} for i, a in enumerate(metrics.ambassadors_by_reach, 1)]
        rows += [
            {"ranking": "conversions", "rank": i, **asdict(a)}
            for i, a in enumerate(metrics.ambassadors_by_conversions, 1)
        ]
    elif figure == "chains":
        rows = [asdict(c) for c in metrics.chains]
    elif figure == "projection":
        projected = projection_json(metrics.projection)
        rows = [projected] if projected else []
    else:
        raise ValueError(f"no figure {figure!r}; one of {', '.join(CSV_FIGURES)}")
    return _csv(rows, _csv_header(figure))


def _slice_name(metrics: SliceMetrics) -> str:
    if metrics.generation is not None:
        return f"generation {metrics.generation}"
    if metrics.channel is not None:
        return f"channel {metrics.channel}"
    return "campaign"


def _csv_header(figure: str) -> list[str]:
    # The header is written even when there are no rows, so that a client can always parse it.
    probe = SliceMetrics(1, None, 0, 0, 0, 0, 0, 0, 0, 0, None)
    headers = {
        "slices": ["slice", *probe.to_json()],
        "reach": ["day", "generation", "forwards", "cumulative"],
        "funnel": ["stage", "count"],
        "ambassadors": ["ranking", "rank", "sender_name", "generation", "forwards", "reach", "conversions"],
        "chains": ["root", "sender_name", "size", "depth", "breadth", "conversions"],
        "projection": [
            "current",
            "wave",
            "k",
            "cycle_days",
            "horizon_days",
            "cycles",
            "additional",
            "ceiling",
            "capped",
            "total",
        ],
    }
    return headers[figure]


def _csv(rows: Iterable[Mapping[str, Any]], header: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: _csv_value(row.get(name)) for name in header})
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    # A sender's name opened in a spreadsheet must not run as a formula.
    return "" if value is None else safe_cell(value)
