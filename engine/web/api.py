"""The JSON API for staff and machine clients (`/api/v1`). Errors are problem+json."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify

from engine.caps import CapsUnavailable
from engine.runtime import current_runtime
from engine.services.cap_usage import CampaignNotFound, cap_usage
from engine.web.auth import staff_required
from engine.web.errors import error_response

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.get("/campaigns/<slug>/caps")
@staff_required()
def campaign_caps(slug: str) -> Response:
    """Live cap usage of one campaign: its budgets as the limiter counts them, the limits,
    and what the caps refused or held back in the last 24 hours."""
    runtime = current_runtime()
    try:
        report = cap_usage(runtime.db, runtime.limiter, slug)
    except CampaignNotFound:
        return error_response(404, f"There is no campaign {slug!r}.")
    except CapsUnavailable:
        log.exception("cap usage of %s: Redis cannot be reached", slug)
        return error_response(503, "The cap counters cannot be read right now (Redis is unreachable).")
    response = jsonify(report.to_json())
    # Live figures: never from a cache.
    response.headers["Cache-Control"] = "no-store"
    return response
