"""`/api/v1/webhooks`: a team's outgoing webhook endpoints and their delivery logs.

Every route needs the `webhooks` scope (a key) or, for reading, a signed-in marketer or admin.
A marketer's key reaches its own team's endpoints; another team's is a 404. The secret is in
the answer to the POST only. Errors are problem+json.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from engine.models import Role, Scope
from engine.runtime import current_runtime
from engine.services.staff import StaffMember
from engine.services.webhooks import (
    EVENT_TYPES,
    EndpointDisabled,
    EndpointFields,
    EndpointNotFound,
    InvalidEndpoint,
    event_types_of,
)
from engine.web.console.auth import current_member, staff_required
from engine.web.errors import error_response, fresh_json

bp = Blueprint("api_webhooks", __name__, url_prefix="/api/v1/webhooks")

PROBLEM_JSON = "application/problem+json"
FIELDS = frozenset({"url", "events", "description", "enabled"})
MAX_PAGE = 100


@bp.get("")
@staff_required(Role.MARKETER, scope=Scope.WEBHOOKS)
def list_endpoints() -> Response:
    endpoints = current_runtime().webhooks.all(_team())
    return fresh_json({"data": [endpoint.to_json() for endpoint in endpoints], "event_types": list(EVENT_TYPES)})


@bp.post("")
@staff_required(Role.MARKETER, scope=Scope.WEBHOOKS)
def create_endpoint() -> Response:
    fields = _fields(creating=True)
    if isinstance(fields, Response):
        return fields
    member = _member()
    try:
        view, secret = current_runtime().webhooks.create(member.team, fields, member.name)
    except InvalidEndpoint as invalid:
        return _invalid({name: str(reason) for name, reason in invalid.errors.items()})
    response = jsonify({**view.to_json(), "secret": secret})
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/webhooks/{view.id}"
    return response


@bp.get("/<int:endpoint_id>")
@staff_required(Role.MARKETER, scope=Scope.WEBHOOKS)
def read_endpoint(endpoint_id: int) -> Response:
    try:
        return fresh_json(current_runtime().webhooks.get(_team(), endpoint_id).to_json())
    except EndpointNotFound:
        return _not_found(endpoint_id)


@bp.patch("/<int:endpoint_id>")
@staff_required(Role.MARKETER, scope=Scope.WEBHOOKS)
def change_endpoint(endpoint_id: int) -> Response:
    fields = _fields(creating=False)
    if isinstance(fields, Response):
        return fields
    try:
        view = current_runtime().webhooks.update(_team(), endpoint_id, fields, _member().name)
    except EndpointNotFound:
        return _not_found(endpoint_id)
    except InvalidEndpoint as invalid:
        return _invalid({name: str(reason) for name, reason in invalid.errors.items()})
    return fresh_json(view.to_json())


@bp.delete("/<int:endpoint_id>")
@staff_required(Role.MARKETER, scope=Scope.WEBHOOKS)
def delete_endpoint(endpoint_id: int) -> Response:
    try:
        current_runtime().webhooks.delete(_team(), endpoint_id, _member().name)
    except EndpointNotFound:
        return _not_found(endpoint_id)
    return Response(status=204)


@bp.get("/<int:endpoint_id>/deliveries")
@staff_required(Role.MARKETER, scope=Scope.WEBHOOKS)
def deliveries(endpoint_id: int) -> Response:
    """The endpoint's delivery log, newest first; `before` (a delivery id) pages on."""
    before, limit = _whole(request.args.get("before")), _whole(request.args.get("limit", "50"))
    if limit is None or not 1 <= limit <= MAX_PAGE:
        return _invalid({"limit": f"a number from 1 to {MAX_PAGE}"})
    if before is None and "before" in request.args:
        return _invalid({"before": "a delivery's id (a whole number)"})
    try:
        rows = current_runtime().webhooks.deliveries(_team(), endpoint_id, before=before, limit=limit)
    except EndpointNotFound:
        return _not_found(endpoint_id)
    following = rows[-1].id if len(rows) == limit else None
    return fresh_json({"data": [row.to_json() for row in rows], "next_before": following})


@bp.post("/<int:endpoint_id>/deliveries/<int:delivery_id>/retry")
@staff_required(Role.MARKETER, scope=Scope.WEBHOOKS)
def send_again(endpoint_id: int, delivery_id: int) -> Response:
    """Send a delivery's event again, as a new delivery."""
    try:
        view = current_runtime().webhooks.send_again(_team(), endpoint_id, delivery_id)
    except EndpointDisabled as disabled:
        return _problem(409, "Endpoint disabled", f"{disabled}.")
    except EndpointNotFound:
        return _not_found(endpoint_id)
    except LookupError:
        return error_response(404, f"Endpoint {endpoint_id} has no delivery {delivery_id}.")
    response = jsonify(view.to_json())
    response.status_code = 202
    return response


def _whole(text: str | None) -> int | None:
    """A query parameter as a whole number (None: absent, or not one)."""
    if text is None or not text.isascii() or not text.lstrip("-").isdigit():
        return None
    return int(text)


def _member() -> StaffMember:
    member = current_member()
    assert member is not None  # staff_required let the request in
    return member


def _team() -> str | None:
    """Whose endpoints this member reaches: a marketer their team's, an admin everyone's."""
    member = _member()
    return member.team if member.role is Role.MARKETER else None


def _fields(*, creating: bool) -> EndpointFields | Response:
    if not request.is_json:
        return error_response(415, "Send the endpoint as JSON (Content-Type: application/json).")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _invalid({"body": "a JSON object with `url` and `events`"})
    errors: dict[str, str] = {name: "not a field of a webhook endpoint" for name in sorted(set(body) - FIELDS)}
    url, events = body.get("url"), body.get("events")
    description, enabled = body.get("description"), body.get("enabled")
    if (creating or "url" in body) and not isinstance(url, str):
        errors["url"] = "required: the https:// URL to post events to, as a string"
    if (creating or "events" in body) and (
        not isinstance(events, list) or not all(isinstance(each, str) for each in events)
    ):
        errors["events"] = f"required: a list of event types ({', '.join(EVENT_TYPES)})"
    if "description" in body and not isinstance(description, str):
        errors["description"] = "a string"
    if "enabled" in body and not isinstance(enabled, bool):
        errors["enabled"] = "true or false"
    if errors:
        return _invalid(errors)
    return EndpointFields(
        url=url if isinstance(url, str) else None,
        event_types=event_types_of(events) if isinstance(events, list) else None,
        description=description if isinstance(description, str) else None,
        enabled=enabled if isinstance(enabled, bool) else None,
    )


def _not_found(endpoint_id: int) -> Response:
    return error_response(404, f"There is no webhook endpoint {endpoint_id}.")


def _invalid(errors: dict[str, str]) -> Response:
    return _problem(
        422,
        "The webhook endpoint is not valid",
        "; ".join(f"{name}: {problem}" for name, problem in errors.items()),
        errors=[{"field": name, "pointer": f"#/{name}", "detail": problem} for name, problem in errors.items()],
    )


def _problem(status: int, title: str, detail: str, **extensions: Any) -> Response:
    response = jsonify({"type": "about:blank", "title": title, "status": status, "detail": detail, **extensions})
    response.status_code = status
    response.mimetype = PROBLEM_JSON
    return response
