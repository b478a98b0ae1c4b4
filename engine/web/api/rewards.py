"""Referrers' rewards over the API: a campaign's list (filters `status`, `flagged`; cursor
paging), one reward, and review (approve, reject) by a key with the `rewards` scope.

A campaign whose consent policy allows no incentives (eu-strict) has no reward surface: every
route here answers it with a 409 problem of type `incentives-not-allowed` naming the policy.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from engine.models import Role, Scope
from engine.models.rewards import RewardStatus
from engine.runtime import current_runtime
from engine.services.reward_listing import RewardsOf, reward_by_id, rewards_after
from engine.services.rewards import (
    MAX_REASON_LENGTH,
    AlreadyReviewed,
    ReviewDecision,
    RewardNotFound,
    RewardView,
    review,
)
from engine.web.api.pagination import only_query, page_request, page_response
from engine.web.api.problems import ALREADY_REVIEWED, INCENTIVES_NOT_ALLOWED, invalid, problem
from engine.web.api.v1 import bp
from engine.web.console.auth import current_member, staff_required
from engine.web.errors import error_response, fresh_json

STATUSES = tuple(status.value for status in RewardStatus)
FLAGGED = {"true": True, "false": False}


def reward_json(owner: RewardsOf, view: RewardView) -> dict[str, Any]:
    return {**view.to_json(), "campaign": owner.slug}


def _no_incentives(owner: RewardsOf) -> Response:
    return problem(
        409,
        "This campaign offers no incentives",
        f"Campaign {owner.slug} has no rewards. {owner.refusal}",
        type_=INCENTIVES_NOT_ALLOWED,
        campaign=owner.slug,
    )


@bp.get("/campaigns/<slug>/rewards")
@staff_required(Role.MARKETER)
def list_rewards(slug: str) -> Response:
    """The campaign's referrers' rewards, oldest first (the review queue's order)."""
    only_query("status", "flagged")
    status = request.args.get("status")
    if status is not None and status not in STATUSES:
        raise BadRequest(f"`status` is one of {', '.join(STATUSES)}.")
    flagged = request.args.get("flagged")
    if flagged is not None and flagged not in FLAGGED:
        raise BadRequest("`flagged` is `true` or `false`.")
    page = page_request(f"rewards:{slug}:{status or '*'}:{flagged or '*'}")
    owner, found = rewards_after(
        current_runtime().db,
        slug,
        status=RewardStatus(status) if status else None,
        flagged=FLAGGED[flagged] if flagged else None,
        after=page.after,
        limit=page.limit,
    )
    if owner.refusal:
        return _no_incentives(owner)
    return page_response(page, [reward_json(owner, view) for view in found.items], found.next_after)


def _visible_reward(reward_id: int) -> tuple[RewardsOf, RewardView] | Response:
    """The reward, or the answer that stands in for it (404 for another team's, 409 without incentives)."""
    member = current_member()
    assert member is not None  # staff_required
    try:
        owner, view = reward_by_id(current_runtime().db, reward_id)
    except RewardNotFound:
        return error_response(404, f"There is no reward {reward_id}.")
    if not member.may_see_team(owner.team):
        return error_response(404, f"There is no reward {reward_id}.")
    if owner.refusal:
        return _no_incentives(owner)
    return owner, view


@bp.get("/rewards/<int:reward_id>")
@staff_required(Role.MARKETER)
def get_reward(reward_id: int) -> Response:
    found = _visible_reward(reward_id)
    if isinstance(found, Response):
        return found
    return fresh_json(reward_json(*found))


@bp.post("/rewards/<int:reward_id>/approve")
@staff_required(Role.MARKETER, scope=Scope.REWARDS)
def approve_reward(reward_id: int) -> Response:
    return _review(reward_id, approve=True)


@bp.post("/rewards/<int:reward_id>/reject")
@staff_required(Role.MARKETER, scope=Scope.REWARDS)
def reject_reward(reward_id: int) -> Response:
    return _review(reward_id, approve=False)


def _review(reward_id: int, *, approve: bool) -> Response:
    reason, errors = _review_body(approve)
    if errors:
        return invalid("review", errors)
    found = _visible_reward(reward_id)
    if isinstance(found, Response):
        return found
    owner, _view = found
    member = current_member()
    assert member is not None
    try:
        reviewed = review(current_runtime().db, owner.slug, reward_id, ReviewDecision(approve, member.name, reason))
    except AlreadyReviewed as already:
        return problem(
            409,
            "Already reviewed",
            f"Reward {reward_id} was {already.status} already; a reward is reviewed once.",
            type_=ALREADY_REVIEWED,
            reward_status=already.status,
        )
    except RewardNotFound:
        return error_response(404, f"There is no reward {reward_id}.")
    return fresh_json(reward_json(owner, reviewed))


def _review_body(approve: bool) -> tuple[str | None, list[tuple[str, str]]]:
    """The reason given, and what is wrong with the body. Approving takes no body (or `{}`);
    rejecting takes `{"reason": "..."}`."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return None, [] if approve else [("reason", "required: say why the reward is rejected")]
    if not request.is_json:
        raise UnsupportedMediaType("Send the review as JSON (Content-Type: application/json).")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return None, [("", "the body must be a JSON object")]
    allowed = {"reason"}
    errors = [(name, "not a field of a review") for name in sorted(set(body) - allowed)]
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        errors.append(("reason", "a string"))
        reason = None
    elif reason is not None and len(reason.strip()) > MAX_REASON_LENGTH:
        errors.append(("reason", f"at most {MAX_REASON_LENGTH} characters"))
    elif not approve and not (reason or "").strip():
        errors.append(("reason", "required: say why the reward is rejected"))
    return reason, errors
