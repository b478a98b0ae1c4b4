"""`/api/v1` routes about referrers: one referrer's counts and rewards, by their key or by the
contact they confirmed (for the brand that holds it: a hashed lookup of one, never a list).

Described in the OpenAPI document's referrers section (engine.web.api.openapi)."""

from __future__ import annotations

from flask import Blueprint, Response, request
from sqlalchemy import select

from engine.models import Campaign, Role
from engine.runtime import current_runtime
from engine.services.analytics.sql import campaign_id_of
from engine.services.lookups import SLUG
from engine.services.referrers import ReferrerNotFound, contact_hash_problem, key_of_contact, referrer_summary
from engine.web.console.auth import staff_required
from engine.web.errors import error_response, fresh_json

bp = Blueprint("api_referrers", __name__, url_prefix="/api/v1")

MAX_KEY_LENGTH = 160


@bp.get("/campaigns/<slug>/referrers/<referrer_key>")
@staff_required(Role.MARKETER)
def referrer(slug: str, referrer_key: str) -> Response:
    """A referrer by their key (as rewards and the leaderboard name them): counts and rewards."""
    if not referrer_key or len(referrer_key) > MAX_KEY_LENGTH or "\x00" in referrer_key:
        return error_response(404, "There is no such referrer in this campaign.", "Unknown referrer")
    return _summary(slug, referrer_key)


@bp.get("/campaigns/<slug>/referrers")
@staff_required(Role.MARKETER)
def referrer_by_contact(slug: str) -> Response:
    """The referrer who confirmed this contact (an e-mail address or a phone number)."""
    runtime = current_runtime()
    raw = request.args.get("contact", "")
    if not raw:
        return error_response(400, "Give the referrer's confirmed contact: ?contact=<e-mail address or phone number>.")
    contact_hash, problem = contact_hash_problem(runtime.hasher, raw, runtime.settings.default_phone_region)
    if contact_hash is None:
        return error_response(400, f"`contact` is neither an e-mail address nor a phone number ({problem}).")
    with runtime.db.reading() as session:
        campaign_id = campaign_id_of(session, slug)
        if campaign_id is None:
            return error_response(404, f"There is no campaign {slug!r}.")
        key = key_of_contact(session, campaign_id, contact_hash)
    if key is None:
        return error_response(404, "No referrer of this campaign has confirmed that contact.", "Unknown referrer")
    return _summary(slug, key)


def _summary(slug: str, key: str) -> Response:
    with current_runtime().db.reading() as session:
        # A slug that cannot exist is not looked up (PostgreSQL refuses a NUL byte in text).
        campaign = session.scalar(select(Campaign).where(Campaign.slug == slug)) if SLUG.fullmatch(slug) else None
        if campaign is None:
            return error_response(404, f"There is no campaign {slug!r}.")
        try:
            summary = referrer_summary(session, campaign, key)
        except ReferrerNotFound:
            return error_response(404, "There is no such referrer in this campaign.", "Unknown referrer")
    return fresh_json(summary.to_json())
