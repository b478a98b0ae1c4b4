"""`GET /api/v1/campaigns` and `GET /api/v1/campaigns/<slug>`: what an integrator needs to know
of the campaigns its key may see, with links to their figures."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from werkzeug.exceptions import BadRequest

from engine.runtime import current_runtime
from engine.services.campaign_views import STATUSES, CampaignView, campaign_view, campaigns_after
from engine.web.api.pagination import only_query, page_request, page_response
from engine.web.api.v1 import bp
from engine.web.console.auth import current_member, staff_required
from engine.web.errors import fresh_json


def campaign_json(view: CampaignView) -> dict[str, Any]:
    base = f"{request.script_root}/api/v1/campaigns/{view.slug}"
    links = {
        "self": base,
        "metrics": f"{base}/metrics",
        "caps": f"{base}/caps",
        "coupons": f"{base}/coupons",
        "leaderboard": f"{base}/leaderboard",
        "rewards": f"{base}/rewards",
    }
    return {**view.to_json(), "links": links}


@bp.get("/campaigns")
@staff_required()
def list_campaigns() -> Response:
    """The campaigns the caller may see (a marketer: their team's), oldest first, a page at a time."""
    only_query("status")
    status = request.args.get("status")
    if status is not None and status not in STATUSES:
        raise BadRequest(f"`status` is one of {', '.join(STATUSES)}.")
    member = current_member()
    assert member is not None  # staff_required
    team = member.campaigns_of_team
    page = page_request(f"campaigns:{team or '*'}:{status or '*'}")
    found = campaigns_after(current_runtime().db, team=team, status=status, after=page.after, limit=page.limit)
    return page_response(page, [campaign_json(view) for view in found.items], found.next_after)


@bp.get("/campaigns/<slug>")
@staff_required()
def get_campaign(slug: str) -> Response:
    return fresh_json(campaign_json(campaign_view(current_runtime().db, slug)))
