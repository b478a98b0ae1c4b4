"""The console's Webhooks page: a team's outgoing webhook endpoints and their delivery logs.

Marketers (and admins, who see every team's) add an endpoint (its signing secret is shown once,
on the page that answers the form), disable, enable or delete one, read its delivery log and
send a delivery again. An endpoint Fluister disabled for failing is an alert at the top.
"""

from __future__ import annotations

from flask import Blueprint, Response, flash, get_flashed_messages, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse

from engine.models import Role
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
from engine.web.errors import error_response

bp = Blueprint("webhooks_console", __name__, url_prefix="/console/webhooks")

_DONE_CATEGORY = "webhooks-done"


class ActionForm(FlaskForm):
    """Only the CSRF token: the fields are read from the request (the events are checkboxes)."""


@bp.get("")
@staff_required(Role.MARKETER)
def endpoints() -> BaseResponse:
    return _page()


@bp.post("")
@staff_required(Role.MARKETER)
def add() -> BaseResponse:
    if not ActionForm().validate_on_submit():
        return _page(errors={"form": "The form expired; please send it again."}, status=400)
    fields = EndpointFields(
        url=request.form.get("url", "").strip(),
        event_types=event_types_of(request.form.getlist("events")),
        description=request.form.get("description", ""),
    )
    member = _member()
    try:
        view, secret = current_runtime().webhooks.create(member.team, fields, member.name)
    except InvalidEndpoint as invalid:
        return _page(errors=invalid.errors, typed=fields, status=422)
    return _page(created=(view.id, secret), status=201)


@bp.post("/<int:endpoint_id>/<any(enable, disable):action>")
@staff_required(Role.MARKETER)
def switch(endpoint_id: int, action: str) -> BaseResponse:
    if not ActionForm().validate_on_submit():
        return error_response(400, "The form expired; please send it again.")
    try:
        current_runtime().webhooks.update(_team(), endpoint_id, EndpointFields(enabled=action == "enable"), _who())
    except EndpointNotFound:
        return error_response(404, "There is no such webhook endpoint.")
    flash(f"Endpoint {endpoint_id} {action}d.", _DONE_CATEGORY)
    return redirect(url_for("webhooks_console.endpoints"), code=303)


@bp.post("/<int:endpoint_id>/delete")
@staff_required(Role.MARKETER)
def delete(endpoint_id: int) -> BaseResponse:
    if not ActionForm().validate_on_submit():
        return error_response(400, "The form expired; please send it again.")
    try:
        current_runtime().webhooks.delete(_team(), endpoint_id, _who())
    except EndpointNotFound:
        return error_response(404, "There is no such webhook endpoint.")
    flash(f"Endpoint {endpoint_id} deleted, with its delivery log.", _DONE_CATEGORY)
    return redirect(url_for("webhooks_console.endpoints"), code=303)


@bp.get("/<int:endpoint_id>")
@staff_required(Role.MARKETER)
def deliveries(endpoint_id: int) -> BaseResponse:
    """The endpoint's delivery log, newest first (`before` pages on)."""
    webhooks = current_runtime().webhooks
    before = request.args.get("before", type=int)
    try:
        endpoint = webhooks.get(_team(), endpoint_id)
        rows = webhooks.deliveries(_team(), endpoint_id, before=before)
    except EndpointNotFound:
        return error_response(404, "There is no such webhook endpoint.")
    html = render_template(
        "pages/console/webhook_deliveries.html",
        member=current_member(),
        endpoint=endpoint,
        deliveries=rows,
        form=ActionForm(formdata=None),
        done=get_flashed_messages(category_filter=[_DONE_CATEGORY]),
    )
    return Response(html)


@bp.post("/<int:endpoint_id>/deliveries/<int:delivery_id>/retry")
@staff_required(Role.MARKETER)
def send_again(endpoint_id: int, delivery_id: int) -> BaseResponse:
    if not ActionForm().validate_on_submit():
        return error_response(400, "The form expired; please send it again.")
    try:
        view = current_runtime().webhooks.send_again(_team(), endpoint_id, delivery_id)
    except EndpointDisabled:
        flash("The endpoint is disabled: enable it before sending anything again.", _DONE_CATEGORY)
    except LookupError:  # the endpoint, or its delivery
        return error_response(404, "There is no such delivery.")
    else:
        flash(f"{view.event_type} {view.event_id} is on its way again (delivery {view.id}).", _DONE_CATEGORY)
    return redirect(url_for("webhooks_console.deliveries", endpoint_id=endpoint_id), code=303)


def _page(
    *,
    errors: dict[str, str] | None = None,
    typed: EndpointFields | None = None,
    created: tuple[int, str] | None = None,
    status: int = 200,
) -> BaseResponse:
    webhooks = current_runtime().webhooks
    listed = webhooks.all(_team())
    html = render_template(
        "pages/console/webhooks.html",
        member=current_member(),
        endpoints=listed,
        alerts=[endpoint for endpoint in listed if endpoint.disabled_automatically],
        event_types=EVENT_TYPES,
        form=ActionForm(formdata=None),
        errors=errors or {},
        typed=typed or EndpointFields(event_types=()),
        created=created,
        done=get_flashed_messages(category_filter=[_DONE_CATEGORY]),
    )
    return Response(html, status=status)


def _member() -> StaffMember:
    member = current_member()
    assert member is not None  # staff_required
    return member


def _team() -> str | None:
    member = _member()
    return member.team if member.role is Role.MARKETER else None


def _who() -> str:
    return _member().name
