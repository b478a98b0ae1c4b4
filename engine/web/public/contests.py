"""A campaign's contest page: the official rules in full, the prizes, the period in the
contest's own time zone, and the winners once the result is final. Linked from the landing
page while the contest runs (engine.services.contests)."""

from __future__ import annotations

from datetime import datetime

from flask import Response, render_template
from flask_babel import format_date, format_time
from flask_babel import gettext as _

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from markupsafe import Markup
from werkzeug.wrappers import Response as BaseResponse

from engine.runtime import current_runtime
from engine.services.contests import public_contest
from engine.services.lookups import CampaignNotFound
from engine.time_zones import time_zone
from engine.web.errors import error_response
from engine.web.public.pages import bp


@bp.app_template_filter("contest_time")
def contest_time(moment: datetime, zone: str) -> Markup:
    """A contest's moment as its participants read it: in the contest's zone, which is named; the
    date and time written as the page's language writes them (Babel's, not the catalogs')."""
    local = moment.astimezone(time_zone(zone))
    written = f"{format_date(local, 'long')}, {format_time(local, 'short', rebase=False)} ({zone})"
    return Markup('<time datetime="{}">{}</time>').format(moment.isoformat(), written)


@bp.get("/c/<slug>/contest")
def contest_rules(slug: str) -> BaseResponse:
    runtime = current_runtime()
    try:
        contest = public_contest(runtime.db, slug, runtime.clock.now())
    except CampaignNotFound:
        return error_response(404, _("There is no such offer."))
    if contest is None:
        return error_response(404, _("This offer has no contest."))
    return Response(render_template("pages/contest.html", contest=contest))
