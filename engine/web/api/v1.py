"""The JSON API for staff and machine clients (`/api/v1`). Errors are problem+json.

Every route here is described in the OpenAPI document (engine.web.api.openapi), served at
`/api/v1/openapi.json`; a test keeps the two in step.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request

from engine.caps import CapsUnavailable
from engine.models import Role, Scope
from engine.runtime import current_runtime
from engine.services.cap_usage import cap_usage
from engine.services.coupons import (
    MAX_EXTERNAL_REF_LENGTH,
    AlreadyRedeemed,
    CouponNotFound,
    OrderConflict,
    OrderReport,
    code_problem,
    coupon_counts,
    redeem,
)
from engine.services.lookups import SLUG, CampaignNotFound
from engine.services.payouts import MAX_REFERENCE_LENGTH, NotPayable, PaidAlready, mark_paid, reward_campaign
from engine.services.reward_rules import Money
from engine.services.rewards import RewardNotFound, RewardsNotAllowed
from engine.web.api.openapi import openapi_document
from engine.web.console.auth import current_member, ensure_campaign_visible, staff_required
from engine.web.errors import error_response, fresh_json
from engine.web.outages import outage_log, unavailable

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api/v1")

PROBLEM_JSON = "application/problem+json"


@bp.get("/openapi.json")
def openapi() -> Response:
    """The API's description. Open to anyone: it says what the API is, nothing about campaigns."""
    return jsonify(openapi_document())


@bp.get("/campaigns/<slug>/caps")
@staff_required()
def campaign_caps(slug: str) -> Response:
    """Live cap usage of one campaign: its budgets as the limiter counts them, the limits,
    and what the caps refused or held back in the last 24 hours."""
    runtime = current_runtime()
    try:
        report = cap_usage(runtime.db, runtime.limiter, slug, runtime.clock.now())
    except CapsUnavailable as error:
        outage_log().failed("Redis", error)
        return unavailable("The cap counters cannot be read right now (Redis is unreachable).")
    return fresh_json(report.to_json())


@bp.get("/campaigns/<slug>/coupons")
@staff_required(Role.MARKETER)
def campaign_coupons(slug: str) -> Response:
    """How many codes a campaign has, has given out, has seen redeemed, and has left."""
    counts = coupon_counts(current_runtime().db, slug)
    return fresh_json(counts.to_json())


@bp.post("/redemptions")
@staff_required(Role.MARKETER, scope=Scope.REDEMPTIONS)
def create_redemption() -> Response:
    """A shop reports a code redeemed: the conversion, credited to the friend's forward and its chain."""
    if not request.is_json:
        return error_response(415, "Send the redemption as JSON (Content-Type: application/json).")
    body = request.get_json(silent=True)
    errors = _redemption_errors(body)
    if errors:
        return _invalid(errors)
    assert isinstance(body, dict)
    member = current_member()
    try:
        if member is not None:
            ensure_campaign_visible(member, body["campaign"])  # another team's is unknown here
        record = redeem(
            current_runtime().db,
            body["campaign"],
            body["code"],
            external_ref=body.get("external_ref"),
            reported_by=member.name if member else None,
            order=_order(body),
            now=current_runtime().clock.now(),
        )
    except (CampaignNotFound, OrderConflict, CouponNotFound, AlreadyRedeemed) as refused:
        return _redemption_refused(refused, body)
    # The same order reported again gets the same answer as the first time (nothing new is
    # recorded), so that a shop retrying after a lost response cannot tell the difference.
    response = jsonify(record.to_json())
    response.status_code = 201
    return response


def _redemption_refused(refused: Exception, body: dict[str, Any]) -> Response:
    """The problem a refused redemption is answered with."""
    if isinstance(refused, CampaignNotFound):
        return error_response(404, f"There is no campaign {body['campaign']!r}.")
    if isinstance(refused, OrderConflict):
        return _problem(
            409,
            "Order already redeemed",
            f"Order {refused.order_id!r} was redeemed already, with another code. An order converts once.",
            order_id=refused.order_id,
        )
    if isinstance(refused, AlreadyRedeemed):
        return _problem(
            409,
            "Already redeemed",
            f"This code was already redeemed, at {refused.redeemed_at.isoformat()}. A code redeems once.",
            redeemed_at=refused.redeemed_at.isoformat(),
        )
    return error_response(404, f"Campaign {body['campaign']} has no code {body['code']!r}.", "Unknown code")


ORDER_FIELDS = ("order_id", "order_total", "currency", "customer_ref", "new_customer")


def _order(body: dict[str, Any]) -> OrderReport | None:
    """The order of a valid body (checked by _redemption_errors), if it names one."""
    if body.get("order_id") is None:
        return None
    total = None
    if body.get("order_total") is not None:
        total = Money.parse(body["order_total"], body["currency"])
    return OrderReport(body["order_id"], total, body.get("customer_ref"), body.get("new_customer"))


def _order_errors(body: dict[str, Any]) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    order_id = body.get("order_id")
    if order_id is None:
        for name in ORDER_FIELDS[1:]:
            if body.get(name) is not None:
                errors.append((name, "only with `order_id`: the order it belongs to"))
        return errors
    if not isinstance(order_id, str) or not 1 <= len(order_id) <= MAX_EXTERNAL_REF_LENGTH or not order_id.isprintable():
        errors.append(("order_id", f"a string of 1 to {MAX_EXTERNAL_REF_LENGTH} printable characters"))
    total, currency = body.get("order_total"), body.get("currency")
    if total is not None or currency is not None:
        if not isinstance(total, str):
            errors.append(("order_total", 'a decimal string such as "42.50", given with `currency`'))
        if not isinstance(currency, str):
            errors.append(("currency", "a three-letter ISO 4217 code such as EUR, given with `order_total`"))
        if isinstance(total, str) and isinstance(currency, str):
            try:
                Money.parse(total, currency)
            except ValueError as invalid:
                errors.append(("order_total", str(invalid)))
    customer_ref = body.get("customer_ref")
    if customer_ref is not None and (
        not isinstance(customer_ref, str)
        or len(customer_ref) > MAX_EXTERNAL_REF_LENGTH
        or not customer_ref.isprintable()
    ):
        errors.append(("customer_ref", f"optional: a string of at most {MAX_EXTERNAL_REF_LENGTH} printable characters"))
    new_customer = body.get("new_customer")
    if new_customer is not None and not isinstance(new_customer, bool):
        errors.append(("new_customer", "optional: true or false"))
    return errors


@bp.post("/rewards/<int:reward_id>/paid")
@staff_required(Role.MARKETER, scope=Scope.REDEMPTIONS)
def reward_paid(reward_id: int) -> Response:
    """The shop confirms it paid out an approved reward (campaigns whose payout method is
    `webhook`), with its own reference. The same confirmation again answers alike."""
    reference = _payout_reference()
    if isinstance(reference, Response):
        return reference
    member = current_member()
    runtime = current_runtime()
    try:
        slug = reward_campaign(runtime.db, reward_id)
        if member is not None:
            ensure_campaign_visible(member, slug)
        paid = mark_paid(
            runtime.db,
            slug,
            reward_id,
            paid_by=member.name if member else "api",
            reference=reference,
            now=runtime.clock.now(),
        )
    except (RewardNotFound, CampaignNotFound):
        return error_response(404, f"There is no reward {reward_id}.")
    except RewardsNotAllowed as refused:
        return _problem(403, "No incentives under this campaign's policy", str(refused))
    except NotPayable as refused:
        return _problem(409, "Not payable", f"{refused}.")
    except PaidAlready as already:
        return _problem(409, "Paid already", f"{already}. The first confirmation stands.", reference=already.reference)
    return jsonify(paid.reward.to_json())


def _payout_reference() -> str | Response | None:
    """The shop's own reference of a payout it confirms (optional), or the problem with the body."""
    body: Any = {}
    if request.get_data():
        if not request.is_json:
            return error_response(415, "Send the confirmation as JSON (Content-Type: application/json), or no body.")
        body = request.get_json(silent=True)
    if not isinstance(body, dict) or set(body) - {"reference"}:
        return _problem(422, "The confirmation is not valid", "The body is an object with an optional `reference`.")
    reference = body.get("reference")
    if reference is not None and (
        not isinstance(reference, str) or not 1 <= len(reference) <= MAX_REFERENCE_LENGTH or not reference.isprintable()
    ):
        return _problem(
            422,
            "The confirmation is not valid",
            f"reference: a string of 1 to {MAX_REFERENCE_LENGTH} printable characters",
            errors=[{"field": "reference", "pointer": "#/reference", "detail": "not a valid reference"}],
        )
    return reference


def _redemption_errors(body: Any) -> list[tuple[str, str]]:
    """(field, what is wrong) for each problem of a redemption's body."""
    if not isinstance(body, dict):
        return [("", "the body must be a JSON object with `campaign` and `code`")]
    errors: list[tuple[str, str]] = []
    campaign = body.get("campaign")
    if not isinstance(campaign, str) or not campaign:
        errors.append(("campaign", "required: the campaign's slug, as a string"))
    elif not SLUG.fullmatch(campaign):
        errors.append(("campaign", "not a campaign slug (lowercase letters, digits and dashes)"))
    code = body.get("code")
    if not isinstance(code, str):
        errors.append(("code", "required: the code, as a string"))
    elif problem := code_problem(code):
        errors.append(("code", problem))
    external_ref = body.get("external_ref")
    if external_ref is not None and (not isinstance(external_ref, str) or len(external_ref) > MAX_EXTERNAL_REF_LENGTH):
        errors.append(("external_ref", f"optional: a string of at most {MAX_EXTERNAL_REF_LENGTH} characters"))
    errors.extend(_order_errors(body))
    for unknown in sorted(set(body) - {"campaign", "code", "external_ref", *ORDER_FIELDS}):
        errors.append((unknown, "not a field of a redemption"))
    return errors


def _invalid(errors: list[tuple[str, str]]) -> Response:
    """422 with each field's problem (RFC 9457's `errors`, each with a JSON pointer)."""
    return _problem(
        422,
        "The redemption is not valid",
        "; ".join(f"{name or 'body'}: {problem}" for name, problem in errors),
        errors=[{"field": name, "pointer": f"#/{name}", "detail": problem} for name, problem in errors],
    )


def _problem(status: int, title: str, detail: str, **extensions: Any) -> Response:
    response = jsonify({"type": "about:blank", "title": title, "status": status, "detail": detail, **extensions})
    response.status_code = status
    response.mimetype = PROBLEM_JSON
    return response
