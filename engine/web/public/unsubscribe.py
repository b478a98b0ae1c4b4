"""Unsubscribe links: GET shows what will happen, POST opts out (also RFC 8058 one-click).

Mail providers POST `List-Unsubscribe=One-Click` with no cookies and no session, so
this blueprint is exempt from CSRF: the signed token is the capability. The POST
answers 200 with a page, never a redirect.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, render_template, request
from flask_babel import gettext

from engine.models import SuppressionScope, SuppressionSource
from engine.runtime import current_runtime
from engine.services.suppression import UnsubscribeView
from engine.tokens import ExpiredToken, InvalidToken
from engine.web.clients import loggable_ip
from engine.web.errors import error_response
from engine.web.public.languages import LANG_PARAMETER, speak_campaign_language

log = logging.getLogger(__name__)

bp = Blueprint("unsubscribe", __name__)

SCOPES = {"friends": SuppressionScope.FRIENDS, "campaign": SuppressionScope.CAMPAIGN}
# Enough of a user agent to tell a mail provider's one-click from a browser.
MAX_USER_AGENT = 200


@bp.get("/u/<token>")
def confirm(token: str) -> Response:
    # Only shows a page: link scanners prefetch GETs, and must not unsubscribe anyone.
    try:
        view = current_runtime().suppression.describe(token)
    except ExpiredToken:
        return _expired()
    except InvalidToken:
        return _invalid()
    _speak(view)
    return Response(render_template("pages/unsubscribe.html", view=view, token=token, done=False))


@bp.post("/u/<token>")
def unsubscribe(token: str) -> Response:
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    # One-click has no choices: it takes the widest scope a friend-sent message can have.
    scope = SCOPES.get(request.form.get("scope", "friends"), SuppressionScope.FRIENDS)
    source = SuppressionSource.ONE_CLICK if one_click else SuppressionSource.LINK
    try:
        view = current_runtime().suppression.unsubscribe(token, scope, source, _request_detail())
    except ExpiredToken:
        return _expired()
    except InvalidToken:
        log.info("unsubscribe with an invalid token from %s", loggable_ip())
        return _invalid()
    _speak(view)
    return Response(render_template("pages/unsubscribe.html", view=view, token=token, done=scope))


@bp.post("/u/<token>/undo")
def undo(token: str) -> Response:
    """Takes back the opt-out just made on this page, for a few minutes after it."""
    try:
        view = current_runtime().suppression.undo(token, request.form.get("undo", ""), _request_detail())
    except ExpiredToken:
        return error_response(
            410,
            gettext("The time to undo has passed: you are still unsubscribed. Ask the brand if you want offers again."),
            gettext("Too late to undo"),
        )
    except InvalidToken:
        log.info("unsubscribe undo with an invalid token from %s", loggable_ip())
        return _invalid()
    _speak(view)
    return Response(render_template("pages/unsubscribe.html", view=view, token=token, undone=True))


def _speak(view: UnsubscribeView) -> None:
    """The language of the message the friend got (the sender's), unless they switch."""
    explicit = request.args.get(LANG_PARAMETER) or view.locale
    speak_campaign_language(view.locales, view.address_form, explicit)


def _request_detail() -> dict[str, Any]:
    """What the opt-out log keeps of the request: the client address only as a keyed hash
    (the same one clicks and forwards carry, so staff can match them), and the user agent."""
    runtime = current_runtime()
    detail: dict[str, Any] = {}
    if request.remote_addr:
        detail["client_ip_hash"] = runtime.hasher.hash_text(f"ip:{request.remote_addr}")
    # Printable characters only: it is client input, and PostgreSQL refuses NUL in text.
    user_agent = "".join(ch for ch in request.user_agent.string if ch.isprintable())[:MAX_USER_AGENT]
    if user_agent:
        detail["user_agent"] = user_agent
    return detail


def _invalid() -> Response:
    return error_response(
        404, gettext("This unsubscribe link is not valid. Check that you copied all of it."), gettext("Link not valid")
    )


def _expired() -> Response:
    return error_response(
        410,
        gettext("This unsubscribe link has expired. Reply STOP to a text message, or contact the brand to opt out."),
        gettext("Link expired"),
    )
