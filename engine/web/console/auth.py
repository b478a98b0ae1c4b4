"""Staff sign-in (Flask-Login sessions, with an optional TOTP code), the account page, API
keys, and the check every staff view makes.

People sign in at /login and carry a session cookie, which names the account's session epoch:
signing out, a new password, "sign out everywhere" and disabling the account raise the epoch
and so end every session made before. Machine clients send `Authorization: Bearer <key>`, on
/api/v1 only, and a key does only what its scopes allow. `staff_required(role)` accepts either
and answers what a browser or a client expects when neither is there: a redirect to /login,
or problem+json. A view about one campaign (a `slug` in its URL) answers 404 to a marketer
of another team, as if the campaign did not exist.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    flash,
    g,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext, ngettext
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from engine.caps import CapsUnavailable
from engine.i18n import negotiate_staff_locale, use_locale
from engine.models import Role, Scope
from engine.runtime import current_runtime
from engine.services.campaigns import campaign_team
from engine.services.history import Actor, ActorKind
from engine.services.lookups import CampaignNotFound
from engine.services.staff import (
    PASSWORD_MAX,
    SignInThrottled,
    StaffError,
    StaffMember,
    WrongPassword,
    staff_locale_choices,
)
from engine.time_zones import is_time_zone, time_zone_names
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
SESSION_EPOCH = "staff_epoch"
# Between a right password and the code, for an account with two-factor sign-in.
PENDING_CODE = "staff_pending_code"
CODE_WAIT = timedelta(minutes=5)
TOTP_ENROLMENT = "staff_totp_enrolment"


class LoginForm(FlaskForm):
    email = EmailField(lazy_gettext("E-mail address"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(lazy_gettext("Password"), validators=[DataRequired(), Length(max=PASSWORD_MAX)])


class CodeForm(FlaskForm):
    code = StringField(
        lazy_gettext("The 6-digit code from your authenticator app"), validators=[DataRequired(), Length(max=12)]
    )


class PasswordForm(FlaskForm):
    current = PasswordField(lazy_gettext("Current password"), validators=[DataRequired(), Length(max=PASSWORD_MAX)])
    new = PasswordField(
        lazy_gettext("New password (12 characters or more)"), validators=[DataRequired(), Length(max=PASSWORD_MAX)]
    )
    repeat = PasswordField(lazy_gettext("New password again"), validators=[DataRequired(), Length(max=PASSWORD_MAX)])


class PreferencesForm(FlaskForm):
    # Checked by the view (and again by the service), so that an unknown value is a clear
    # error beside its field rather than WTForms' "Not a valid choice".
    locale = SelectField(lazy_gettext("Language of the console"), validate_choice=False)
    time_zone = StringField(lazy_gettext("Time zone"), validators=[Length(max=64)])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Each language named in itself: whoever cannot read the current one still finds theirs.
        self.locale.choices = [("", _("Your browser's language")), *staff_locale_choices()]


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse:
    form = LoginForm()
    next_page = _safe_next(request.values.get("next"))
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return _login_page(form, next_page, status)
    try:
        member = current_runtime().staff.sign_in(form.email.data or "", form.password.data or "", request.remote_addr)
    except SignInThrottled as throttled:
        return _throttled(throttled, form, lambda f, status: _login_page(f, next_page, status))
    except CapsUnavailable as error:
        outage_log().failed("Redis", error)  # the attempt counter: signing in waits for it
        return unavailable(_("Signing in is not possible right now. Please try again in a minute."))
    if member is None:
        log.info("failed sign-in from %s", loggable_ip())
        form.form_errors.append(_("That e-mail address and password do not match an account."))
        return _login_page(form, next_page, 422)
    if member.two_factor:
        # Nothing is signed in yet: the session only remembers who typed the right password.
        session.clear()
        session[PENDING_CODE] = {"id": member.id, "at": _now_seconds(), "next": next_page}
        return redirect(url_for("auth.login_code"), code=303)
    return _start_session(member, next_page)


@bp.route("/login/code", methods=["GET", "POST"])
def login_code() -> BaseResponse:
    pending = session.get(PENDING_CODE)
    if not isinstance(pending, dict) or _now_seconds() - int(pending.get("at", 0)) > CODE_WAIT.total_seconds():
        session.pop(PENDING_CODE, None)
        return redirect(url_for("auth.login"), code=303)
    form = CodeForm()
    if not form.validate_on_submit():
        return _code_page(form, 422 if request.method == "POST" else 200)
    try:
        member = current_runtime().staff.verify_code(int(pending["id"]), form.code.data or "", request.remote_addr)
    except SignInThrottled as throttled:
        return _throttled(throttled, form, _code_page)
    except CapsUnavailable as error:
        outage_log().failed("Redis", error)
        return unavailable(_("Signing in is not possible right now. Please try again in a minute."))
    if member is None:
        log.info("wrong sign-in code from %s", loggable_ip())
        form.code.errors = [_("That code is not right, or was used already. Wait for the next one.")]
        return _code_page(form, 422)
    return _start_session(member, _safe_next(pending.get("next")))


def _now_seconds() -> int:
    """The app's clock, in the whole seconds the session keeps. The twelve-hour limit and the
    wait for a sign-in code are decided on it; the cookie's own expiry (the two-hour idle
    limit) is the browser's and Flask's, on the wall clock."""
    return int(current_runtime().clock.now().timestamp())


def _start_session(member: StaffMember, next_page: str | None) -> BaseResponse:
    # A new session on every sign-in: nothing set before it (by anyone) carries over.
    session.clear()
    session.permanent = True  # expires after STAFF_IDLE_LIMIT without a request
    session[SIGNED_IN_AT] = _now_seconds()
    session[SESSION_EPOCH] = member.session_epoch
    login_user(member)
    log.info("staff %s signed in", member.id)
    return redirect(next_page or url_for("console.home"), code=303)


def _throttled(throttled: SignInThrottled, form: FlaskForm, page: Callable[[Any, int], BaseResponse]) -> BaseResponse:
    seconds = max(1, math.ceil(throttled.retry_after.total_seconds()))
    log.warning("sign-in throttled from %s", loggable_ip())
    minutes = math.ceil(seconds / 60)
    form.form_errors.append(
        ngettext(
            "Too many failed attempts. Try again in %(num)d minute.",
            "Too many failed attempts. Try again in %(num)d minutes.",
            minutes,
        )
    )
    response = page(form, 429)
    response.headers["Retry-After"] = str(seconds)
    return response


@bp.post("/logout")
def logout() -> BaseResponse:
    if current_user.is_authenticated:
        # The cookie alone is not enough to end a session: a copy of it would still work.
        current_runtime().staff.end_sessions(current_user.id)
        log.info("staff %s signed out", current_user.id)
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"), code=303)


# -- the account page: password, sessions, two-factor sign-in ----------------------------------------


@bp.get("/account")
@login_required
def account() -> BaseResponse:
    return _account_page(PasswordForm(formdata=None))


@bp.post("/account/password")
@login_required
def change_password() -> BaseResponse:
    form = PasswordForm()
    if not form.validate_on_submit():
        return _account_page(form, 422)
    if form.new.data != form.repeat.data:
        form.repeat.errors = [_("The two new passwords are not the same.")]
        return _account_page(form, 422)
    member = _signed_in()
    try:
        epoch = current_runtime().staff.change_password(member.id, form.current.data or "", form.new.data or "")
    except StaffError as error:
        field = form.current if isinstance(error, WrongPassword) else form.new
        field.errors = [_sentence(str(error))]
        return _account_page(form, 422)
    session[SESSION_EPOCH] = epoch  # this session goes on; every other one has ended
    log.info("staff %s changed their password; other sessions ended", member.id)
    flash(_("Password changed. You were signed out everywhere else."), _ACCOUNT_DONE)
    return redirect(url_for("auth.account"), code=303)


@bp.post("/account/sign-out-everywhere")
@login_required
def sign_out_everywhere() -> BaseResponse:
    member = _signed_in()
    current_runtime().staff.end_sessions(member.id)
    log.info("staff %s signed out everywhere", member.id)
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"), code=303)


@bp.route("/account/two-factor", methods=["GET", "POST"])
@login_required
def two_factor() -> BaseResponse:
    member = _signed_in()
    form = CodeForm()
    staff = current_runtime().staff
    enrolment = session.get(TOTP_ENROLMENT)
    if request.method == "GET" or not isinstance(enrolment, dict):
        # The secret waits in the (signed) session until a code made with it is confirmed.
        new = staff.begin_totp(member)
        session[TOTP_ENROLMENT] = {"secret": new.secret, "uri": new.uri}
        if request.method == "GET":
            return _two_factor_page(CodeForm(formdata=None), new.secret, new.uri)
        form.code.errors = [_("Add this new key to your app first, then type the code it shows.")]
        return _two_factor_page(form, new.secret, new.uri, 422)
    if not form.validate_on_submit() or not staff.confirm_totp(member.id, enrolment["secret"], form.code.data or ""):
        if not form.code.errors:
            form.code.errors = [_("That code is not right. Check the app's clock, and type the code it shows now.")]
        return _two_factor_page(form, enrolment["secret"], enrolment["uri"], 422)
    session.pop(TOTP_ENROLMENT, None)
    log.info("staff %s turned two-factor sign-in on", member.id)
    flash(_("Two-factor sign-in is on: signing in asks for a code from your app."), _ACCOUNT_DONE)
    return redirect(url_for("auth.account"), code=303)


@bp.post("/account/two-factor/off")
@login_required
def two_factor_off() -> BaseResponse:
    member = _signed_in()
    form = CodeForm()
    staff = current_runtime().staff
    # A code, not only the session: whoever holds a stolen session cannot turn the check off.
    try:
        proven = form.validate_on_submit() and staff.verify_code(member.id, form.code.data or "", request.remote_addr)
    except SignInThrottled as throttled:
        return _throttled(throttled, form, lambda f, status: _account_page(PasswordForm(formdata=None), status, f))
    if not proven:
        form.code.errors = [_("That code is not right, or was used already.")]
        return _account_page(PasswordForm(formdata=None), 422, form)
    staff.disable_totp(member.id)
    log.info("staff %s turned two-factor sign-in off", member.id)
    flash(_("Two-factor sign-in is off."), _ACCOUNT_DONE)
    return redirect(url_for("auth.account"), code=303)


@bp.post("/account/preferences")
@login_required
def preferences() -> BaseResponse:
    """The console's language and time zone for this person. An unknown value is an error
    beside its field, and nothing is stored, the other value included."""
    member = _signed_in()
    form = PreferencesForm()
    if not form.validate_on_submit():
        return _account_page(PasswordForm(formdata=None), 422, preferences_form=form)
    locale = form.locale.data or None
    time_zone = (form.time_zone.data or "").strip() or None
    if locale is not None and locale not in dict(staff_locale_choices()):
        form.locale.errors = [_("Choose one of the languages offered.")]
    if time_zone is not None and not is_time_zone(time_zone):
        form.time_zone.errors = [
            _("%(zone)s is not a time zone. Type an IANA name such as Europe/Amsterdam.", zone=time_zone)
        ]
    if form.locale.errors or form.time_zone.errors:
        return _account_page(PasswordForm(formdata=None), 422, preferences_form=form)
    g.member = current_runtime().staff.set_preferences(member.id, locale, time_zone)
    g.pop("staff_zone", None)
    log.info("staff %s set their language to %s and time zone to %s", member.id, locale, time_zone)
    # Said in the language just chosen, as the next page will speak it.
    use_locale(negotiate_staff_locale(locale, request.accept_languages))
    flash(_("Saved. The console speaks this language and shows times in this time zone."), _ACCOUNT_DONE)
    return redirect(url_for("auth.account"), code=303)


_ACCOUNT_DONE = "account-done"


def _signed_in() -> StaffMember:
    return current_user._get_current_object()


def _account_page(
    form: PasswordForm,
    status: int = 200,
    off_form: CodeForm | None = None,
    preferences_form: PreferencesForm | None = None,
) -> BaseResponse:
    member = _signed_in()
    if preferences_form is None:
        preferences_form = PreferencesForm(formdata=None)
        preferences_form.locale.data = member.locale or ""
        preferences_form.time_zone.data = member.time_zone or ""
    html = render_template(
        "pages/account.html",
        member=member,
        form=form,
        off_form=off_form or CodeForm(formdata=None),
        preferences_form=preferences_form,
        time_zones=time_zone_names(),
        default_time_zone=current_runtime().settings.default_time_zone,
        done=get_flashed_messages(category_filter=[_ACCOUNT_DONE]),
    )
    return Response(html, status=status)


def _two_factor_page(form: CodeForm, secret: str, uri: str, status: int = 200) -> BaseResponse:
    html = render_template("pages/two_factor.html", member=_signed_in(), form=form, secret=secret, uri=uri)
    return Response(html, status=status)


def _code_page(form: CodeForm, status: int) -> BaseResponse:
    return Response(render_template("pages/login_code.html", form=form), status=status)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _login_page(form: LoginForm, next_page: str | None, status: int) -> BaseResponse:
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

    Keys count on /api/ only: a key is for a machine client (a shop's checkout), never the
    console. A request there that sends a key is judged by the key alone: a wrong key is not
    rescued by a session cookie. Sessions count only for reading (GET, HEAD) on the API, since
    its writes are not protected by CSRF tokens.
    """
    if "member" in g:
        return g.member
    on_api = request.path.startswith("/api/")
    header = request.headers.get("Authorization", "") if on_api else ""
    member: StaffMember | None = None
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() == "bearer" and secret.strip():
            member = current_runtime().staff.authenticate_key(secret.strip())
    elif current_user.is_authenticated and (not on_api or request.method in ("GET", "HEAD", "OPTIONS")):
        member = current_user._get_current_object()
    g.member = member
    return member


def staff_actor() -> Actor:
    """The member making this request, as a campaign's history names them."""
    member = current_member()
    if member is None:
        raise RuntimeError("staff_actor() outside a staff_required view")
    return Actor(member.name, ActorKind(member.kind), member.role, member.team)


def ensure_campaign_visible(member: StaffMember, slug: str) -> None:
    """Raises CampaignNotFound (the app's 404) unless the member may work on this campaign:
    another team's campaign is answered like one that does not exist."""
    if member.campaigns_of_team is None:
        return  # every team's: no need to read whose it is
    if not member.may_see_team(campaign_team(current_runtime().db, slug)):
        log.warning("%s %s (team %s) asked for campaign %r of another team", member.kind, member.id, member.team, slug)
        raise CampaignNotFound(f"no campaign {slug!r}")


def staff_required(
    role: Role | None = None, *, scope: Scope | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Only staff (of `role`, or admins) may use the view; an API key also needs `scope` (by
    default `metrics:read` for reading, and nothing lets a key write without a scope named).
    A view with a campaign's `slug` is only for those who may see that campaign."""

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
                return error_response(403, _("This needs the %(role)s role.", role=role))
            needed = scope or (Scope.METRICS_READ if request.method in ("GET", "HEAD") else None)
            if member.kind == "api-key" and (needed is None or not member.has_scope(needed)):
                log.warning("api-key %s (scopes %s) may not use %s", member.id, " ".join(member.scopes), request.path)
                what = f"the {needed} scope" if needed else "a scope no key has"
                return error_response(403, f"This key may not do that: it needs {what}.")
            if "slug" in kwargs:
                ensure_campaign_visible(member, kwargs["slug"])
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
        if not isinstance(signed_in_at, int) or _now_seconds() - signed_in_at > STAFF_SESSION_LIMIT.total_seconds():
            return None
        # Checked on every request: a session of an older epoch was signed out on the server.
        return current_runtime().staff.load(member_id, session.get(SESSION_EPOCH))

    @manager.unauthorized_handler
    def unauthorized() -> BaseResponse:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))

    app.register_blueprint(bp)
