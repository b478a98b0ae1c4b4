"""The console's Webhooks page: a team's outgoing webhook endpoints and their delivery logs.

Marketers (and admins, who see every team's) add an endpoint (its signing secret is shown once,
on the page that answers the form), disable, enable or delete one, read its delivery log and
send a delivery again. An endpoint Fluister disabled for failing is an alert at the top.
"""

from __future__ import annotations

from flask import Blueprint, Response, flash, get_flashed_messages, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_wtf import FlaskForm

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse

from engine.models import DeliveryStatus, Role
from engine.outbound import Reason
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
        return _page(errors={"form": _("The form expired; please send it again.")}, status=400)
    fields = EndpointFields(
        url=request.form.get("url", "").strip(),
        event_types=event_types_of(request.form.getlist("events")),
        description=request.form.get("description", ""),
    )
    member = _member()
    try:
        view, secret = current_runtime().webhooks.create(member.team, fields, member.name)
    except InvalidEndpoint as invalid:
        return _page(
            errors={name: _translated(reason) for name, reason in invalid.errors.items()}, typed=fields, status=422
        )
    return _page(created=(view.id, secret), status=201)


@bp.post("/<int:endpoint_id>/<any(enable, disable):action>")
@staff_required(Role.MARKETER)
def switch(endpoint_id: int, action: str) -> BaseResponse:
    if not ActionForm().validate_on_submit():
        return error_response(400, _("The form expired; please send it again."))
    try:
        current_runtime().webhooks.update(_team(), endpoint_id, EndpointFields(enabled=action == "enable"), _who())
    except EndpointNotFound:
        return error_response(404, _("There is no such webhook endpoint."))
    if action == "enable":
        flash(_("Endpoint %(id)d enabled.", id=endpoint_id), _DONE_CATEGORY)
    else:
        flash(_("Endpoint %(id)d disabled.", id=endpoint_id), _DONE_CATEGORY)
    return redirect(url_for("webhooks_console.endpoints"), code=303)


@bp.post("/<int:endpoint_id>/delete")
@staff_required(Role.MARKETER)
def delete(endpoint_id: int) -> BaseResponse:
    if not ActionForm().validate_on_submit():
        return error_response(400, _("The form expired; please send it again."))
    try:
        current_runtime().webhooks.delete(_team(), endpoint_id, _who())
    except EndpointNotFound:
        return error_response(404, _("There is no such webhook endpoint."))
    flash(_("Endpoint %(id)d deleted, with its delivery log.", id=endpoint_id), _DONE_CATEGORY)
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
        return error_response(404, _("There is no such webhook endpoint."))
    html = render_template(
        "pages/console/webhook_deliveries.html",
        member=current_member(),
        endpoint=endpoint,
        deliveries=rows,
        form=ActionForm(formdata=None),
        done=get_flashed_messages(category_filter=[_DONE_CATEGORY]),
        delivery_states=_delivery_states(),
    )
    return Response(html)


@bp.post("/<int:endpoint_id>/deliveries/<int:delivery_id>/retry")
@staff_required(Role.MARKETER)
def send_again(endpoint_id: int, delivery_id: int) -> BaseResponse:
    if not ActionForm().validate_on_submit():
        return error_response(400, _("The form expired; please send it again."))
    try:
        view = current_runtime().webhooks.send_again(_team(), endpoint_id, delivery_id)
    except EndpointDisabled:
        flash(_("The endpoint is disabled: enable it before sending anything again."), _DONE_CATEGORY)
    except LookupError:  # the endpoint, or its delivery
        return error_response(404, _("There is no such delivery."))
    else:
        message = _(
            "%(type)s %(event)s is on its way again (delivery %(id)d).",
            type=view.event_type,
            event=view.event_id,
            id=view.id,
        )
        flash(message, _DONE_CATEGORY)
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


def _delivery_states() -> dict[str, str]:
    """A delivery's status as the log shows it (the API keeps the codes)."""
    return {
        DeliveryStatus.PENDING: _("waiting to be sent"),
        DeliveryStatus.SENDING: _("sending"),
        DeliveryStatus.SUCCEEDED: _("delivered"),
        DeliveryStatus.FAILED: _("failed"),
    }


def _translated(reason: Reason) -> str:
    """A refusal's reason in the reader's language (the services word it in English)."""
    return _(reason.template, **reason.values)


def _member() -> StaffMember:
    member = current_member()
    assert member is not None  # staff_required
    return member


def _team() -> str | None:
    member = _member()
    return member.team if member.role is Role.MARKETER else None


def _who() -> str:
    return _member().name
