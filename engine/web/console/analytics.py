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

from engine.channels import shown_name
from engine.models import Role
from engine.runtime import current_runtime
from engine.services.analytics import (
    CSV_FIGURES,
    CampaignMetrics,
    ForwardNotFound,
    VisitCounter,
    campaign_metrics,
    ensure_fresh,
    forward_tree,
    metrics_csv,
    rebuild_rollups,
    refresh_rollups,
    visit_slice,
)
from engine.services.analytics.branches import SHOWN_CHILDREN, SHOWN_LEVELS, SHOWN_NODES, branch_tree
from engine.services.campaigns import list_campaigns
from engine.services.forwarding import Referrer
from engine.services.lookups import CampaignNotFound
from engine.services.rewards import leaderboard as referrer_leaderboard
from engine.web.console.auth import current_member, staff_required
from engine.web.console.charts import BarChart, Multiple, bar_chart, small_multiple
from engine.web.console.date_range import parse_range
from engine.web.console.formats import number, percent
from engine.web.console.projection_text import projection_sentence
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

TOP_AMBASSADORS_FIRST = 5  # on the dashboard's first screen


@bp.get("/console/campaigns/<slug>/dashboard")
@staff_required(Role.MARKETER)
def dashboard(slug: str) -> Response:
    """The campaign's figures; `from` and `to` (days) narrow reach over time and the K cohorts."""
    runtime = current_runtime()
    now = runtime.clock.now()
    asked = parse_range(request.args, now.date())
    figures = campaign_metrics(
        runtime.db, slug, now, visits=visit_counter(), plays=runtime.plays.counts, since=asked.since, until=asked.until
    )
    html = render_template(
        "pages/console/dashboard.html",
        member=current_member(),
        m=figures,
        asked=asked,
        projection=projection_sentence(figures.projection, figures.overall.invites),
        reach=reach_over_time(figures),
        funnel_chart=funnel_chart(figures),
        channel_chart=bar_chart(
            [(shown_name(c.channel or ""), c.invites, number(c.invites)) for c in figures.channels if c.invites]
        ),
        k_chart=k_chart(figures),
        k_all_forwards={g.generation: g.k for g in figures.generations},
        top=figures.ambassadors_by_reach[:TOP_AMBASSADORS_FIRST],
        csv={name: url_for("analytics.metrics_as_csv", slug=slug, figure=name) for name in CSV_FIGURES},
        json_link=url_for("analytics.metrics", slug=slug),
        leaderboard=referrer_leaderboard(runtime.db, slug),
    )
    return Response(html, status=400 if asked.errors else 200)


@bp.get("/console/campaigns/<slug>/forwards/<public_id>")
@staff_required(Role.MARKETER)
def forward_page(slug: str, public_id: str) -> Response:
    """A forward's tree: the chain above it and its largest branches below, folded by <details>."""
    runtime = current_runtime()
    ensure_fresh(runtime.db, slug, runtime.clock.now())
    try:
        found = branch_tree(runtime.db, slug, public_id)
    except ForwardNotFound:
        return error_response(404, _("Campaign %(slug)s has no forward %(forward)s.", slug=slug, forward=public_id))
    html = render_template(
        "pages/console/forward_tree.html",
        member=current_member(),
        slug=slug,
        tree=found,
        shown_levels=SHOWN_LEVELS,
        shown_children=SHOWN_CHILDREN,
        shown_nodes=SHOWN_NODES,
        json_link=url_for("analytics.tree", slug=slug, public_id=public_id),
    )
    return Response(html)


@bp.app_template_filter("channel_name")
def channel_name(name: str) -> str:
    return shown_name(name)


# -- chart data: the template only draws what is computed here -------------------------------------

MAX_SERIES = 6  # generations beyond this are drawn together, "6+"


@dataclass(frozen=True)
class ReachOverTime:
    """Cumulative forwards day by day: all generations, then one small multiple per generation,
    each on its own scale (one large generation would flatten the others on a shared one)."""

    days: list[date]
    multiples: list[Multiple]


def reach_over_time(figures: CampaignMetrics) -> ReachOverTime:
    days = sorted({p.day for p in figures.reach_over_time})
    if not days:
        return ReachOverTime([], [])
    per_series: dict[int, dict[date, int]] = {}
    for point in figures.reach_over_time:
        by_day = per_series.setdefault(min(point.generation, MAX_SERIES), {})
        by_day[point.day] = by_day.get(point.day, 0) + point.forwards
    cumulative = {key: _running(days, by_day) for key, by_day in per_series.items()}
    total = [sum(values[i] for values in cumulative.values()) for i in range(len(days))]
    multiples = [small_multiple(_("all generations"), "series-all", days, total)]
    for key in sorted(cumulative):
        label = _("generation %(number)s", number=key) if key < MAX_SERIES else _("generation %(number)s+", number=key)
        multiples.append(small_multiple(label, f"series-{key}", days, cumulative[key]))
    return ReachOverTime(days, multiples)


def _running(days: list[date], by_day: dict[date, int]) -> list[int]:
    running, values = 0, []
    for day in days:
        running += by_day.get(day, 0)
        values.append(running)
    return values


def funnel_chart(figures: CampaignMetrics) -> BarChart:
    """Only stages that are parts of the one before (CampaignMetrics.spread_funnel)."""
    stages = figures.spread_funnel
    first = stages[0].count if stages else 0
    return bar_chart(
        [
            (_stage_label(s.stage), s.count, f"{number(s.count)} ({percent(s.count / first) if first else '—'})")
            for s in stages
        ]
    )


def k_chart(figures: CampaignMetrics) -> BarChart:
    """K of each generation's mature forwards, on a scale that always shows K = 1 (the line
    between a campaign that grows by itself and one that dies out)."""
    cohorts = figures.mature.generations if figures.mature else []
    rows = [(_("generation %(number)s", number=c.generation), c.k, number(c.k, 2)) for c in cohorts if c.k is not None]
    return bar_chart(rows, marker=1.0) if rows else bar_chart([])


# The funnel's stages as the dashboard names them (the JSON and CSV keep the English keys).
_STAGES: dict[str, Any] = {  # lazy strings (Flask-Babel ships no types)
    "visitors": lazy_gettext("visitors"),
    "plays": lazy_gettext("video plays"),
    "senders": lazy_gettext("senders"),
    "invites": lazy_gettext("forwards"),
    "delivered": lazy_gettext("delivered"),
    "clicked": lazy_gettext("clicked"),
    "became senders": lazy_gettext("forwarded on"),
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
