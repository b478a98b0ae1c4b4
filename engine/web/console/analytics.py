"""Campaign figures: the metrics API (JSON and CSV), a forward's tree, and the console dashboard.

Marketers (and admins) are the audience: the figures name the senders who spread an offer
(by the name they typed), which compliance staff have no need to see. The dashboard's
charts are SVG drawn here on the server: no script runs on the page (see engine.web.security).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

import click
from flask import Blueprint, Response, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext

from engine.models import Role
from engine.runtime import current_runtime
from engine.services.analytics import (
    CSV_FIGURES,
    CampaignMetrics,
    ForwardNotFound,
    VisitCounter,
    campaign_metrics,
    forward_tree,
    metrics_csv,
    rebuild_rollups,
    refresh_rollups,
    visit_slice,
)
from engine.services.campaigns import list_campaigns
from engine.services.forwarding import Referrer
from engine.services.lookups import CampaignNotFound
from engine.services.rewards import leaderboard as referrer_leaderboard
from engine.web.console.auth import current_member, staff_required
from engine.web.console.formats import number
from engine.web.errors import error_response, fresh_json

log = logging.getLogger(__name__)

bp = Blueprint("analytics", __name__, cli_group="analytics")


def visit_counter() -> VisitCounter:
    """The app's landing view counter, on the runtime's Redis (fakeredis when embedded): one
    per app, so that an outage is logged once, not once per view."""
    return current_runtime().visits


def count_landing_visit(campaign_id: int, referrer: Referrer | None) -> None:
    """Count a landing page view from what the page has already read: a counter in Redis, no
    database read or write. Never in the visitor's way: a failure is logged, not raised."""
    try:
        today = current_runtime().clock.now().date()  # the day a fold of the counts expects
        where = (
            visit_slice(referrer.generation, referrer.channel, today) if referrer else visit_slice(None, None, today)
        )
        visit_counter().count(campaign_id, where)
    except Exception:
        log.exception("landing visit of campaign %d not counted", campaign_id)


def _figures(slug: str) -> CampaignMetrics:
    """The campaign's figures now, with the views and video plays still waiting in Redis."""
    runtime = current_runtime()
    return campaign_metrics(runtime.db, slug, runtime.clock.now(), visits=visit_counter(), plays=runtime.plays.counts)


# -- API ------------------------------------------------------------------------------------------


@bp.get("/api/v1/campaigns/<slug>/metrics")
@staff_required(Role.MARKETER)
def metrics(slug: str) -> Response:
    """The campaign's figures as JSON, or one figure as CSV with `?format=csv&figure=NAME`."""
    if request.args.get("format", "json") == "csv":
        return metrics_as_csv(slug)
    if request.args.get("format", "json") != "json":
        return error_response(400, "format must be json or csv.")
    figures = _figures(slug)
    return fresh_json(figures.to_json())


@bp.get("/api/v1/campaigns/<slug>/metrics.csv")
@staff_required(Role.MARKETER)
def metrics_as_csv(slug: str) -> Response:
    figure = request.args.get("figure", "slices")
    if figure not in CSV_FIGURES:
        return error_response(400, f"figure must be one of {', '.join(CSV_FIGURES)}.")
    figures = _figures(slug)
    response = Response(metrics_csv(figures, figure), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{figures.slug}-{figure}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/api/v1/campaigns/<slug>/forwards/<public_id>/tree")
@staff_required(Role.MARKETER)
def tree(slug: str, public_id: str) -> Response:
    """A forward, the chain above it and (up to 500 of) the forwards below it."""
    try:
        found = forward_tree(current_runtime().db, slug, public_id)
    except ForwardNotFound:
        return error_response(404, _("Campaign %(slug)s has no forward %(forward)s.", slug=slug, forward=public_id))
    return fresh_json(found.to_json())


@bp.get("/api/v1/campaigns/<slug>/leaderboard")
@staff_required(Role.MARKETER)
def leaderboard(slug: str) -> Response:
    """The contest: the top referrers by eligible converted friends (engine.services.rewards)."""
    board = referrer_leaderboard(current_runtime().db, slug)
    return fresh_json(board.to_json())


# -- the console dashboard ------------------------------------------------------------------------


@bp.get("/console/campaigns/<slug>/dashboard")
@staff_required(Role.MARKETER)
def dashboard(slug: str) -> Response:
    figures = _figures(slug)
    board = referrer_leaderboard(current_runtime().db, slug)
    csv_links = {name: url_for("analytics.metrics_as_csv", slug=slug, figure=name) for name in CSV_FIGURES}
    html = render_template(
        "pages/console/dashboard.html",
        member=current_member(),
        m=figures,
        reach_chart=reach_chart(figures),
        funnel_chart=bar_chart([(_stage_label(s.stage), s.count) for s in figures.funnel]),
        channel_chart=bar_chart([(c.channel or "", c.invites) for c in figures.channels if c.invites]),
        k_chart=k_chart(figures),
        csv=csv_links,
        json_link=url_for("analytics.metrics", slug=slug),
        leaderboard=board,
    )
    return Response(html)


# -- chart geometry: the template only draws what is computed here ---------------------------------

CHART_WIDTH = 640
CHART_HEIGHT = 220
MARGIN_LEFT = 56
MARGIN_BOTTOM = 28
MAX_SERIES = 6  # generations beyond this are drawn together as one line, "6+"


@dataclass(frozen=True)
class Series:
    label: str
    points: str  # SVG polyline points
    css_class: str
    last: int


@dataclass(frozen=True)
class LineChart:
    series: list[Series]
    y_max: int
    first_day: date | None
    last_day: date | None
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    left: int = MARGIN_LEFT
    bottom: int = CHART_HEIGHT - MARGIN_BOTTOM


def reach_chart(figures: CampaignMetrics) -> LineChart:
    """Cumulative forwards per generation, day by day."""
    days = sorted({p.day for p in figures.reach_over_time})
    if not days:
        return LineChart([], 0, None, None)
    per_series: dict[int, dict[date, int]] = {}
    for point in figures.reach_over_time:
        key = min(point.generation, MAX_SERIES)
        per_series.setdefault(key, {})
        per_series[key][point.day] = per_series[key].get(point.day, 0) + point.forwards
    cumulative: dict[int, list[int]] = {}
    for key, by_day in per_series.items():
        running, values = 0, []
        for day in days:
            running += by_day.get(day, 0)
            values.append(running)
        cumulative[key] = values
    y_max = max(max(values) for values in cumulative.values()) or 1
    plot_width = CHART_WIDTH - MARGIN_LEFT - 10
    plot_height = CHART_HEIGHT - MARGIN_BOTTOM - 10
    step = plot_width / max(1, len(days) - 1)
    series = []
    for key in sorted(cumulative):
        values = cumulative[key]
        points = " ".join(
            f"{MARGIN_LEFT + i * step:.1f},{CHART_HEIGHT - MARGIN_BOTTOM - v / y_max * plot_height:.1f}"
            for i, v in enumerate(values)
        )
        label = (
            _("generation %(number)s", number=key)
            if key < MAX_SERIES
            else _("generation %(number)s+", number=MAX_SERIES)
        )
        series.append(Series(label, points, f"series-{key}", values[-1]))
    return LineChart(series, y_max, days[0], days[-1])


@dataclass(frozen=True)
class Bar:
    label: str
    value: str
    length: float  # of the plot width, 0 to 1
    marker: float | None = None


def bar_chart(values: list[tuple[str, int]]) -> list[Bar]:
    largest = max((v for _, v in values), default=0) or 1
    return [Bar(label, number(value), value / largest) for label, value in values]


def k_chart(figures: CampaignMetrics) -> list[Bar]:
    """K of each generation, on a scale that always shows K = 1 (the line between a campaign
    that grows by itself and one that dies out)."""
    ks = [(g.generation, g.k) for g in figures.generations if g.k is not None]
    top = max([1.0, *(k for _, k in ks)])
    return [Bar(_("generation %(number)s", number=gen), number(k, 2), k / top, marker=1.0 / top) for gen, k in ks]


# The funnel's stages as the dashboard names them (the JSON and CSV keep the English keys).
_STAGES: dict[str, Any] = {  # lazy strings (Flask-Babel ships no types)
    "visitors": lazy_gettext("visitors"),
    "plays": lazy_gettext("video plays"),
    "senders": lazy_gettext("senders"),
    "invites": lazy_gettext("forwards"),
    "delivered": lazy_gettext("delivered"),
    "clicked": lazy_gettext("clicked"),
    "became senders": lazy_gettext("became senders"),
    "conversions": lazy_gettext("conversions"),
}


def _stage_label(stage: str) -> str:
    label = _STAGES.get(stage)
    return str(label) if label is not None else stage


# -- CLI: flask --app wsgi analytics refresh|rebuild ------------------------------------------------


@bp.cli.command("refresh")
@click.argument("slugs", nargs=-1)
def refresh_command(slugs: tuple[str, ...]) -> None:
    """Bring the analytics roll-ups of the campaigns SLUGS (default: every campaign) up to date
    with what changed since their last refresh. Dashboards refresh small campaigns themselves,
    and the scheduler every campaign at its interval."""
    _refresh_each(slugs, full=False)


@bp.cli.command("rebuild")
@click.argument("slugs", nargs=-1)
def rebuild_command(slugs: tuple[str, ...]) -> None:
    """Recompute the analytics roll-ups of the campaigns SLUGS (default: every campaign) from
    scratch, from the forwards, clicks, messages and redemptions."""
    _refresh_each(slugs, full=True)


def _refresh_each(slugs: tuple[str, ...], *, full: bool) -> None:
    runtime = current_runtime()
    db = runtime.db
    refresh = rebuild_rollups if full else refresh_rollups
    for slug in slugs or tuple(c.slug for c in list_campaigns(db)):
        try:
            report = refresh(
                db, slug, runtime.clock.now(), visits=visit_counter(), plays=current_runtime().plays.counts
            )
        except CampaignNotFound as error:
            raise click.ClickException(str(error)) from None
        kind = "rebuilt" if report.full else f"{report.rederived} re-derived"
        click.echo(f"{slug}: {report.forwards} forwards ({kind}) in {report.seconds:.2f} s")
