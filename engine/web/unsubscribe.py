"""Unsubscribe links: GET shows what will happen, POST opts out (also RFC 8058 one-click).

Mail providers POST `List-Unsubscribe=One-Click` with no cookies and no session, so
this blueprint is exempt from CSRF: the signed token is the capability. The POST
answers 200 with a page, never a redirect.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, render_template, request

from engine.models import SuppressionScope, SuppressionSource
from engine.runtime import current_runtime
from engine.tokens import ExpiredToken, InvalidToken
from engine.web.errors import error_response

log = logging.getLogger(__name__)

bp = Blueprint("unsubscribe", __name__)

SCOPES = {"friends": SuppressionScope.FRIENDS, "campaign": SuppressionScope.CAMPAIGN}


@bp.get("/u/<token>")
def confirm(token: str) -> Response:
    # Only shows a page: link scanners prefetch GETs, and must not unsubscribe anyone.
    try:
        view = current_runtime().suppression.describe(token)
    except ExpiredToken:
        return _expired()
    except InvalidToken:
        return _invalid()
    return Response(render_template("pages/unsubscribe.html", view=view, token=token, done=False))


@bp.post("/u/<token>")
def unsubscribe(token: str) -> Response:
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    # One-click has no choices: it takes the widest scope a friend-sent message can have.
    scope = SCOPES.get(request.form.get("scope", "friends"), SuppressionScope.FRIENDS)
    source = SuppressionSource.ONE_CLICK if one_click else SuppressionSource.LINK
    try:
        view = current_runtime().suppression.unsubscribe(token, scope, source)
    except ExpiredToken:
        return _expired()
    except InvalidToken:
        log.info("unsubscribe with an invalid token from %s", request.remote_addr)
        return _invalid()
    return Response(render_template("pages/unsubscribe.html", view=view, token=token, done=True, scope=scope.value))


def _invalid() -> Response:
    return error_response(404, "This unsubscribe link is not valid. Check that you copied all of it.", "Link not valid")


def _expired() -> Response:
    return error_response(
        410,
        "This unsubscribe link has expired. Reply STOP to a text message, or contact the brand to opt out.",
        "Link expired",
    )
