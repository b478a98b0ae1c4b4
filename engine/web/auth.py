"""Staff sign-in (Flask-Login sessions) and API keys, and the check every staff view makes.

People sign in at /login and carry a session cookie; machine clients send
`Authorization: Bearer <key>`. `staff_required(role)` accepts either and answers what a
browser or a client expects when neither is there: a redirect to /login, or problem+json.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, g, redirect, render_template, request, session, url_for
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from engine.caps import CapsUnavailable
from engine.models import Role
from engine.runtime import current_runtime
from engine.services.campaigns import Actor, ActorKind
from engine.services.staff import PASSWORD_MAX, SignInThrottled, StaffMember
from engine.web.clients import loggable_ip
from engine.web.errors import error_response, wants_json
from engine.web.outages import outage_log, unavailable

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

# A staff session ends after this long without a request, and after STAFF_SESSION_LIMIT in any
# case: a console left open on a shared computer does not stay signed in for days.
STAFF_IDLE_LIMIT = timedelta(hours=2)
STAFF_SESSION_LIMIT = timedelta(hours=12)
SIGNED_IN_AT = "staff_signed_in_at"


class LoginForm(FlaskForm):
    email = EmailField("E-mail address", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=PASSWORD_MAX)])


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    form = LoginForm()
    next_page = _safe_next(request.values.get("next"))
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return _login_page(form, next_page, status)
    try:
        member = current_runtime().staff.sign_in(form.email.data or "", form.password.data or "", request.remote_addr)
    except SignInThrottled as throttled:
        seconds = max(1, math.ceil(throttled.retry_after.total_seconds()))
        log.warning("sign-in throttled from %s", loggable_ip())
        form.form_errors.append(f"Too many failed attempts. Try again in {math.ceil(seconds / 60)} minutes.")
        response = _login_page(form, next_page, 429)
        response.headers["Retry-After"] = str(seconds)
        return response
    except CapsUnavailable as error:
        outage_log().failed("Redis", error)  # the attempt counter: signing in waits for it
        return unavailable("Signing in is not possible right now. Please try again in a minute.")
    if member is None:
        log.info("failed sign-in from %s", loggable_ip())
        form.form_errors.append("That e-mail address and password do not match an account.")
        return _login_page(form, next_page, 422)
    # A new session on every sign-in: nothing set before it (by anyone) carries over.
    session.clear()
    session.permanent = True  # expires after STAFF_IDLE_LIMIT without a request
    session[SIGNED_IN_AT] = int(time.time())
    login_user(member)
    log.info("staff %s signed in", member.id)
    return redirect(next_page or url_for("console.home"), code=303)


@bp.post("/logout")
def logout() -> Response:
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"), code=303)


def _login_page(form: LoginForm, next_page: str | None, status: int) -> Response:
    return Response(render_template("pages/login.html", form=form, next_page=next_page), status=status)


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: `next` must never send a signed-in person elsewhere."""
    if not target or len(target) > 2000:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


# -- who is asking -----------------------------------------------------------------------


def current_member() -> StaffMember | None:
    """The API key in the Authorization header, else the signed-in person (None: neither).

    A request that sends a key is judged by the key alone: a wrong key is not rescued by a
    session cookie. Sessions count only for reading (GET, HEAD) on the API, since its writes
    are not protected by CSRF tokens.
    """
    if "member" in g:
        return g.member
    header = request.headers.get("Authorization", "")
    member: StaffMember | None = None
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() == "bearer" and secret.strip():
            member = current_runtime().staff.authenticate_key(secret.strip())
    elif current_user.is_authenticated and (
        not request.path.startswith("/api/") or request.method in ("GET", "HEAD", "OPTIONS")
    ):
        member = current_user._get_current_object()  # type: ignore[attr-defined]
    g.member = member
    return member


def staff_actor() -> Actor:
    """The member making this request, as a campaign's history names them."""
    member = current_member()
    if member is None:
        raise RuntimeError("staff_actor() outside a staff_required view")
    return Actor(member.name, ActorKind(member.kind), member.role)


def staff_required(role: Role | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Only staff (of `role`, or admins) may use the view."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            member = current_member()
            if member is None:
                if wants_json():
                    response = error_response(401, "Send an API key (Authorization: Bearer <key>) or sign in.")
                    response.headers["WWW-Authenticate"] = 'Bearer realm="fluister"'
                    return response
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if role is not None and not member.may(role):
                log.warning("%s %s (%s) may not use %s", member.kind, member.id, member.role, request.path)
                return error_response(403, f"This needs the {role} role.")
            return view(*args, **kwargs)

        return guarded

    return decorate


def register(app: Flask) -> None:
    manager = LoginManager()
    # "basic", not "strong": staff on phones change addresses, and a session is already
    # renewed at every sign-in and signed with the app's key.
    manager.session_protection = "basic"
    manager.init_app(app)
    # Only staff sessions are permanent; a visitor's (the form's CSRF token) ends with the browser.
    app.permanent_session_lifetime = STAFF_IDLE_LIMIT

    @manager.user_loader
    def load_member(member_id: str) -> StaffMember | None:
        signed_in_at = session.get(SIGNED_IN_AT)
        if not isinstance(signed_in_at, int) or time.time() - signed_in_at > STAFF_SESSION_LIMIT.total_seconds():
            return None
        return current_runtime().staff.load(member_id)

    @manager.unauthorized_handler
    def unauthorized() -> Response:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))

    app.register_blueprint(bp)
