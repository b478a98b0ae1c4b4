"""The console's admin pages: staff accounts, API keys and `unknown` messages.

Admins only. A member is invited (an account with a random first password), given another
role, disabled (its sessions end at once) or enabled again, given a new random password, or
has their two-factor sign-in turned off when they lost their authenticator (signed out
everywhere). A password, like a new API key's secret, is shown once, on that answer only (never
in a redirect's flash, which would keep it in the session cookie), and kept by no cache; its
owner replaces a password on /account. A key is made or revoked. An `unknown`
message is marked sent after the provider's log shows it went, or put back in the queue: at once
if it was never handed over, only when forced if it was. The same from the command line: `users`,
`api-keys` and `messages` commands. Every action is logged (who, what; never a password or key),
and each reconciliation is written in its campaign's history.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, flash, get_flashed_messages, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf import FlaskForm

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse

from engine.models import Role, Scope
from engine.runtime import current_runtime
from engine.services.history import Actor, ActorKind
from engine.services.reconciliation import Reconciliation, list_unknown, mark_sent, requeue
from engine.services.staff import LastAdmin, NewApiKey, StaffMember, UnknownStaff
from engine.services.staff_admin import (
    AccountAction,
    InvalidFields,
    KeyFields,
    MemberFields,
    OwnAccount,
    act_on_account,
    change_role,
    create_key,
    invite_member,
)
from engine.web.console.auth import current_member, staff_required
from engine.web.errors import error_response

log = logging.getLogger(__name__)

bp = Blueprint("admin_console", __name__, url_prefix="/console")

_DONE = "admin-done"
ACTED_WORDING = {
    AccountAction.DISABLE: lazy_gettext("%(name)s: disabled, and signed out everywhere."),
    AccountAction.ENABLE: lazy_gettext("%(name)s: enabled; they sign in with their password."),
    AccountAction.RESET_TWO_FACTOR: lazy_gettext(
        "%(name)s: two-factor sign-in turned off, and signed out everywhere. They sign in with their"
        " password and can turn it on again on their account page."
    ),
}
ROLE_WORDS = {
    Role.ADMIN: lazy_gettext("Admin: everything, including staff and API keys"),
    Role.MARKETER: lazy_gettext("Marketer: their team's campaigns, templates and figures"),
    Role.COMPLIANCE: lazy_gettext("Compliance: opt-out and consent logs, contact reports"),
}
ROLE_NAMES = {
    Role.ADMIN: lazy_gettext("admin"),
    Role.MARKETER: lazy_gettext("marketer"),
    Role.COMPLIANCE: lazy_gettext("compliance"),
}
SCOPE_WORDS = {
    Scope.REDEMPTIONS: lazy_gettext("Report coupon codes redeemed (a shop's checkout)"),
    Scope.METRICS_READ: lazy_gettext("Read campaign figures: metrics, caps, coupon counts"),
    Scope.REWARDS: lazy_gettext("Review referrers' rewards: approve or reject them"),
    Scope.WEBHOOKS: lazy_gettext("Register, change and read the team's webhook endpoints"),
}
_OWN = lazy_gettext("Not your own account: change your password on your account page; another admin disables you.")
_OWN_ROLE = lazy_gettext("Not your own role: another admin changes it, so that the team always keeps an admin.")
_LAST_ADMIN = lazy_gettext(
    "Refused: that would leave no active admin to manage staff. Make someone else an admin first."
)
_UNREADABLE = lazy_gettext("That request could not be read; please try again.")


class ActionForm(FlaskForm):
    """A button's POST: only its CSRF token is read."""


# -- staff accounts ---------------------------------------------------------------------------------


@bp.get("/users")
@staff_required(Role.ADMIN)
def users() -> BaseResponse:
    return _users_page()


@bp.post("/users/<int:user_id>/<any(disable, enable, 'reset-password', 'reset-two-factor'):action>")
@staff_required(Role.ADMIN)
def user_action(user_id: int, action: str) -> BaseResponse:
    if not ActionForm().validate_on_submit():
        return _users_page(refusal=str(_UNREADABLE), status=422)
    try:
        acted = act_on_account(current_runtime().staff, _admin(), user_id, AccountAction(action))
    except OwnAccount:
        return _users_page(refusal=str(_OWN), status=409)
    except UnknownStaff:
        return error_response(404, _("There is no such account."))
    if acted.new_password is not None:
        # Shown on this answer alone, and kept by no cache.
        page = _users_page(new_password=(acted.member.name, acted.new_password))
        page.headers["Cache-Control"] = "no-store"
        return page
    flash(str(ACTED_WORDING[acted.action]) % {"name": acted.member.name}, _DONE)
    return redirect(url_for("admin_console.users"), code=303)


@bp.post("/users")
@staff_required(Role.ADMIN)
def invite() -> BaseResponse:
    if not ActionForm().validate_on_submit():
        return _users_page(refusal=str(_UNREADABLE), status=422)
    typed = MemberFields(
        email=request.form.get("email", "")[:320],
        role=request.form.get("role", ""),
        team=request.form.get("team", "")[:100],
    )
    try:
        acted = invite_member(current_runtime().staff, _admin(), typed)
    except InvalidFields as invalid:
        return _users_page(errors=invalid.errors, typed=typed, status=422)
    assert acted.new_password is not None  # an invitation always has its first password
    # Shown on this answer alone, and kept by no cache.
    page = _users_page(invited=(acted.member.name, acted.new_password), status=201)
    page.headers["Cache-Control"] = "no-store"
    return page


@bp.post("/users/<int:user_id>/role")
@staff_required(Role.ADMIN)
def set_role(user_id: int) -> BaseResponse:
    if not ActionForm().validate_on_submit():
        return _users_page(refusal=str(_UNREADABLE), status=422)
    try:
        changed = change_role(current_runtime().staff, _admin(), user_id, request.form.get("role", ""))
    except OwnAccount:
        return _users_page(refusal=str(_OWN_ROLE), status=409)
    except LastAdmin:
        return _users_page(refusal=str(_LAST_ADMIN), status=409)
    except InvalidFields:
        return _users_page(refusal=_("Choose a role from the list."), status=422)
    except UnknownStaff:
        return error_response(404, _("There is no such account."))
    flash(_("%(name)s is now: %(role)s.", name=changed.name, role=ROLE_NAMES[changed.role]), _DONE)
    return redirect(url_for("admin_console.users"), code=303)


def _users_page(
    *,
    refusal: str | None = None,
    new_password: tuple[str, str] | None = None,
    invited: tuple[str, str] | None = None,
    errors: dict[str, str] | None = None,
    typed: MemberFields | None = None,
    status: int = 200,
) -> BaseResponse:
    html = render_template(
        "pages/console/users.html",
        member=current_member(),
        accounts=current_runtime().staff.list_users(),
        form=ActionForm(formdata=None),
        refusal=refusal,
        new_password=new_password,
        invited=invited,
        errors=errors or {},
        typed=typed or MemberFields(),
        roles=ROLE_WORDS,
        role_names=ROLE_NAMES,
        teams=sorted({a.team for a in current_runtime().staff.list_users()}),
        done=get_flashed_messages(category_filter=[_DONE]),
    )
    return Response(html, status=status)


# -- API keys ------------------------------------------------------------------------------------------


@bp.get("/api-keys")
@staff_required(Role.ADMIN)
def api_keys() -> BaseResponse:
    return _keys_page()


@bp.post("/api-keys/<int:key_id>/revoke")
@staff_required(Role.ADMIN)
def revoke_key(key_id: int) -> BaseResponse:
    if not ActionForm().validate_on_submit():
        return _keys_page(refusal=str(_UNREADABLE), status=422)
    try:
        key, fresh = current_runtime().staff.revoke_api_key(key_id)
    except UnknownStaff:
        return error_response(404, _("There is no such API key."))
    if fresh:
        log.warning("API key %s (%s…) revoked by %s", key.id, key.prefix, _admin().name)
    if fresh:
        flash(_("API key %(name)s (%(prefix)s…): revoked.", name=key.name, prefix=key.prefix), _DONE)
    else:
        flash(_("API key %(name)s (%(prefix)s…): revoked already.", name=key.name, prefix=key.prefix), _DONE)
    return redirect(url_for("admin_console.api_keys"), code=303)


@bp.post("/api-keys")
@staff_required(Role.ADMIN)
def create_api_key() -> BaseResponse:
    if not ActionForm().validate_on_submit():
        return _keys_page(refusal=str(_UNREADABLE), status=422)
    typed = KeyFields(
        name=request.form.get("name", "")[:200],
        role=request.form.get("role", ""),
        team=request.form.get("team", "")[:100],
        scopes=tuple(request.form.getlist("scopes")[:20]),
    )
    try:
        key = create_key(current_runtime().staff, _admin(), typed)
    except InvalidFields as invalid:
        return _keys_page(errors=invalid.errors, typed=typed, status=422)
    # The secret is on this answer alone, and kept by no cache.
    page = _keys_page(created=key, status=201)
    page.headers["Cache-Control"] = "no-store"
    return page


def _keys_page(
    *,
    refusal: str | None = None,
    created: NewApiKey | None = None,
    errors: dict[str, str] | None = None,
    typed: KeyFields | None = None,
    status: int = 200,
) -> BaseResponse:
    html = render_template(
        "pages/console/api_keys.html",
        member=current_member(),
        keys=current_runtime().staff.list_api_keys(),
        form=ActionForm(formdata=None),
        refusal=refusal,
        created=created,
        errors=errors or {},
        typed=typed or KeyFields(),
        roles=ROLE_WORDS,
        role_names=ROLE_NAMES,
        scopes=SCOPE_WORDS,
        done=get_flashed_messages(category_filter=[_DONE]),
    )
    return Response(html, status=status)


# -- unknown messages ----------------------------------------------------------------------------------


@bp.get("/messages/unknown")
@staff_required(Role.ADMIN)
def unknown_messages() -> BaseResponse:
    return _unknown_page()


@bp.post("/messages/unknown")
@staff_required(Role.ADMIN)
def reconcile() -> BaseResponse:
    action = request.form.get("action")
    raw_ids = request.form.getlist("message")
    if not ActionForm().validate_on_submit() or action not in ("requeue", "mark-sent"):
        return _unknown_page(refusal=str(_UNREADABLE), status=422)
    if not raw_ids or not all(raw.isdigit() and len(raw) <= 18 for raw in raw_ids):
        return _unknown_page(refusal=_("Tick the messages to act on."), status=422)
    ids = [int(raw) for raw in raw_ids]
    admin = _admin()
    actor = Actor(admin.name, ActorKind.USER, role=admin.role, team=admin.team)
    runtime = current_runtime()
    if action == "mark-sent":
        report = mark_sent(runtime.db, runtime.clock, actor, ids)
    else:
        force = request.form.get("force") == "on"
        report = requeue(runtime.db, runtime.queue, runtime.clock, actor, ids, force=force)
    if report.missing:
        missing = ", ".join(map(str, report.missing))
        return _unknown_page(refusal=_("No message %(ids)s; nothing changed.", ids=missing), status=404)
    lines = _outcome(report, action)
    if report.refused:
        return _unknown_page(refusal=" ".join(lines), status=409)
    flash(" ".join(lines), _DONE)
    return redirect(url_for("admin_console.unknown_messages"), code=303)


def _outcome(report: Reconciliation, action: str) -> list[str]:
    lines = []
    if report.done:
        ids = ", ".join(map(str, report.done))
        if action == "mark-sent":
            lines.append(_("Marked sent (%(count)s): %(ids)s.", count=len(report.done), ids=ids))
        else:
            lines.append(_("Back in the queue (%(count)s): %(ids)s.", count=len(report.done), ids=ids))
    for message_id, status in report.not_unknown.items():
        lines.append(_("Message %(id)s is %(status)s now, not unknown: left as it is.", id=message_id, status=status))
    if report.handed_over:
        lines.append(
            _(
                "Not requeued: %(ids)s, handed to the provider, so they may have arrived. Check the provider's"
                " log, then mark them sent, or requeue them with \u201cthe provider's log shows they did not"
                " arrive\u201d ticked.",
                ids=", ".join(map(str, report.handed_over)),
            )
        )
    return lines


def _unknown_page(*, refusal: str | None = None, status: int = 200) -> BaseResponse:
    runtime = current_runtime()
    html = render_template(
        "pages/console/unknown_messages.html",
        member=current_member(),
        messages=list_unknown(runtime.db, runtime.clock),
        form=ActionForm(formdata=None),
        refusal=refusal,
        done=get_flashed_messages(category_filter=[_DONE]),
    )
    return Response(html, status=status)


def _admin() -> StaffMember:
    member = current_member()
    assert member is not None  # staff_required let the request in
    return member
