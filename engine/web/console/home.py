"""The staff console: what a signed-in marketer, compliance officer or admin starts from."""

from __future__ import annotations

from flask import Blueprint, Response, render_template

from engine.models import Role
from engine.runtime import current_runtime
from engine.services.campaigns import list_campaigns
from engine.web.console.auth import current_member, staff_required

bp = Blueprint("console", __name__, url_prefix="/console")


@bp.get("")
@staff_required()
def home() -> Response:
    member = current_member()
    assert member is not None  # staff_required
    runtime = current_runtime()
    campaigns = list_campaigns(runtime.db, team=member.campaigns_of_team)
    # Webhook endpoints disabled for failing: an alert where marketers start, not only on their page.
    disabled = runtime.webhooks.disabled_alerts(member.campaigns_of_team) if member.may(Role.MARKETER) else []
    html = render_template("pages/console/home.html", member=member, campaigns=campaigns, disabled_webhooks=disabled)
    return Response(html)
