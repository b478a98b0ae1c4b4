"""A referrer's own page, and the offer to follow their rewards (engine.services.referrers).

The page's signed link is the capability: no account, no sign-in. Asking for a code or link,
and typing the code, are forms with a CSRF token. The stop link is POSTed by mail providers
with `List-Unsubscribe=One-Click`, without cookies or a session (RFC 8058), so that one view
is exempt from CSRF: its signed token is the capability, as for the unsubscribe link; its GET
only shows a button, because scanners prefetch links.
"""

from __future__ import annotations

import math

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from markupsafe import Markup
from werkzeug.wrappers import Response as BaseResponse

from engine.caps import CapsUnavailable
from engine.channels import channel as channel_named
from engine.i18n import negotiate_campaign_locale, use_locale
from engine.qr import inline_svg
from engine.runtime import current_runtime
from engine.services.referrers import CodeRefused, FollowRefused, FollowThrottled, ReferrerNotFound
from engine.tokens import ExpiredToken, InvalidToken
from engine.web.errors import error_response
from engine.web.outages import outage_log, unavailable

bp = Blueprint("referrers", __name__)

PAGE_NOT_VALID = lazy_gettext("This page's link is not valid. Check that you copied all of it.")
PAGE_EXPIRED = lazy_gettext("This page's link has expired.")
LINK_EXPIRED = lazy_gettext("This confirmation link has expired: ask for a new one from your page.")
LINK_NOT_VALID = lazy_gettext("This confirmation link is not valid. Check that you copied all of it.")
TITLE_EXPIRED = lazy_gettext("Link expired")
TITLE_NOT_VALID = lazy_gettext("Link not valid")


@bp.before_request
def speak_the_campaigns_language() -> None:
    """A referrer's pages speak their campaign's language, as its other pages do."""
    args = request.view_args or {}
    found = current_runtime().referrers.campaign_languages(
        page_token=args.get("token"), link_token=args.get("link_token")
    )
    if found is not None:
        locales, address_form = found
        chosen = negotiate_campaign_locale(locales, explicit=request.args.get("lang"), accept=request.accept_languages)
        use_locale(chosen, address_form)


@bp.get("/r/<token>")
def page(token: str) -> BaseResponse:
    return _page(token)


def _page(token: str, *, status: int = 200, error: str | None = None, typed: str = "") -> BaseResponse:
    view = current_runtime().referrers.page(token)
    sent = request.args.get("sent") if status == 200 else None
    html = render_template(
        "pages/referrer.html",
        view=view,
        qr=_qr(view.link),
        error=error,
        typed=typed,
        sent=sent if sent in view.follow_channels else None,
        stopped=request.args.get("stopped") == "1",
        confirmed=request.args.get("confirmed") == "1",
    )
    response = Response(html, status=status)
    # The page is the person's own: never cached, never sent on as a referrer.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _qr(link: str) -> Markup:
    return inline_svg(link, _("QR code of your link"))


@bp.post("/r/<token>/follow")
def follow(token: str) -> BaseResponse:
    """Send a code (a mobile number) or a link (an e-mail address) to confirm it."""
    runtime = current_runtime()
    typed = request.form.get("contact", "")[:300]
    try:
        channel = runtime.referrers.follow(token, typed, request.remote_addr)
    except FollowRefused as refused:
        return _page(token, status=422, error=str(refused), typed=typed)
    except FollowThrottled as throttled:
        response = _page(token, status=429, error=str(throttled), typed=typed)
        response.headers["Retry-After"] = str(max(1, math.ceil(throttled.retry_after.total_seconds())))
        return response
    except CapsUnavailable as error:
        outage_log().failed("Redis", error)
        return unavailable(_("We can't send codes right now. Please try again in a minute."))
    if channel_named(channel).confirms_by_code:
        return redirect(url_for("referrers.code", token=token), code=303)
    return redirect(url_for("referrers.page", token=token, sent=channel), code=303)


@bp.get("/r/<token>/code")
def code(token: str) -> BaseResponse:
    return _code_page(token)


def _code_page(token: str, *, status: int = 200, error: str | None = None) -> BaseResponse:
    view = current_runtime().referrers.page(token)
    response = Response(render_template("pages/referrer_code.html", view=view, error=error), status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/r/<token>/code")
def enter_code(token: str) -> BaseResponse:
    try:
        current_runtime().referrers.confirm_code(token, request.form.get("code", "")[:32])
    except CodeRefused as refused:
        return _code_page(token, status=refused.status, error=str(refused))
    return redirect(url_for("referrers.page", token=token, confirmed="1"), code=303)


@bp.get("/r/confirm/<link_token>")
def confirm_link(link_token: str) -> BaseResponse:
    """Shows a button only: mail scanners open links, and must not confirm anyone."""
    current_runtime().referrers.confirmation_target(link_token)
    response = Response(render_template("pages/referrer_confirm.html", link_token=link_token))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.post("/r/confirm/<link_token>")
def confirm(link_token: str) -> BaseResponse:
    try:
        token = current_runtime().referrers.confirm_link(link_token)
    except CodeRefused as refused:
        return error_response(refused.status, str(refused))
    return redirect(url_for("referrers.page", token=token, confirmed="1"), code=303)


@bp.get("/r/<token>/stop")
def stop_page(token: str) -> BaseResponse:
    view = current_runtime().referrers.page(token)
    return Response(render_template("pages/referrer_stop.html", view=view, done=False))


@bp.post("/r/<token>/stop")
def stop(token: str) -> BaseResponse:
    """Withdraw consent and erase the contact at once. 200 with a page, never a redirect: a
    mail provider's one-click POST follows none."""
    runtime = current_runtime()
    runtime.referrers.stop(token)
    view = runtime.referrers.page(token)
    return Response(render_template("pages/referrer_stop.html", view=view, done=True))


# A forged, foreign or expired token in any of these routes: the same 4xx page, in the words of
# what the token opened (the referrer's page, or a confirmation link sent by e-mail).
_LINK_ROUTES = frozenset({"referrers.confirm_link", "referrers.confirm"})


@bp.errorhandler(ExpiredToken)
def _expired(error: ExpiredToken) -> BaseResponse:
    if request.endpoint in _LINK_ROUTES:
        return error_response(410, str(LINK_EXPIRED), str(TITLE_EXPIRED))
    return error_response(410, str(PAGE_EXPIRED), str(TITLE_EXPIRED))


@bp.errorhandler(InvalidToken)
@bp.errorhandler(ReferrerNotFound)
def _not_valid(error: Exception) -> BaseResponse:
    if request.endpoint in _LINK_ROUTES:
        return error_response(404, str(LINK_NOT_VALID), str(TITLE_NOT_VALID))
    return error_response(404, str(PAGE_NOT_VALID), str(TITLE_NOT_VALID))
