"""The staff console: what a signed-in marketer, compliance officer or admin starts from, the
list of campaigns (engine.services.campaign_list), searched and filtered by GET parameters."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Response, get_flashed_messages, render_template, request
from flask_babel import gettext as _

from engine.models import Role
from engine.runtime import current_runtime
from engine.services.campaign_list import MAX_QUERY, ListFilter, campaign_rows
from engine.web.console.auth import current_member, staff_required
from engine.web.console.campaign_actions import DONE_CATEGORY
from engine.web.errors import error_response

bp = Blueprint("console", __name__, url_prefix="/console")

SPARK_WIDTH = 90
SPARK_HEIGHT = 24


@dataclass(frozen=True)
class Sparkline:
    """A campaign's forwards per day as a polyline in a SPARK_WIDTH by SPARK_HEIGHT box."""

    points: str
    total: int
    peak: int


def sparkline(values: tuple[int, ...]) -> Sparkline:
    peak = max(values, default=0)
    step = SPARK_WIDTH / max(len(values) - 1, 1)
    # A flat line on the floor when nothing was forwarded; 2 px margins keep the stroke inside.
    height = SPARK_HEIGHT - 4
    points = " ".join(
        f"{i * step:.1f},{SPARK_HEIGHT - 2 - (value / peak * height if peak else 0):.1f}"
        for i, value in enumerate(values)
    )
    return Sparkline(points, sum(values), peak)


@bp.get("")
@staff_required()
def home() -> Response:
    member = current_member()
    assert member is not None  # staff_required
    query = request.args.get("q", "")[:MAX_QUERY]
    try:
        shown = ListFilter(request.args.get("status", ""))
    except ValueError:
        choices = ", ".join(f.value for f in ListFilter if f.value)
        return error_response(400, _("Show one of: %(choices)s (or nothing for every campaign).", choices=choices))
    runtime = current_runtime()
    today = runtime.clock.now().date()  # the roll-ups count forwards by UTC day
    campaigns = campaign_rows(runtime.db, today=today, team=member.campaigns_of_team, query=query, shown=shown)
    # Webhook endpoints disabled for failing: an alert where marketers start, not only on their page.
    disabled = runtime.webhooks.disabled_alerts(member.campaigns_of_team) if member.may(Role.MARKETER) else []
    html = render_template(
        "pages/console/home.html",
        member=member,
        campaigns=campaigns,
        sparklines={c.slug: sparkline(c.forwards_by_day) for c in campaigns},
        spark_size=(SPARK_WIDTH, SPARK_HEIGHT),
        query=query,
        shown=shown.value,
        filters=list(ListFilter),
        disabled_webhooks=disabled,
        done=get_flashed_messages(category_filter=[DONE_CATEGORY]),
    )
    return Response(html)
