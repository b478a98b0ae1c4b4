"""Error pages: a friendly HTML page for people, problem+json (RFC 9457) for machines. Never a bare 500."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext, lazy_gettext
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from engine.services.lookups import CampaignNotFound

log = logging.getLogger(__name__)

# Lazy: in the language of the request that shows them.
FRIENDLY_TITLES = {
    400: lazy_gettext("Something in that request was not right"),
    403: lazy_gettext("Not allowed"),
    404: lazy_gettext("Not found"),
    405: lazy_gettext("Not allowed"),
    410: lazy_gettext("Gone"),
    413: lazy_gettext("Too much data"),
    422: lazy_gettext("Please check the form"),
    429: lazy_gettext("Slow down"),
    500: lazy_gettext("Something went wrong on our side"),
    503: lazy_gettext("Not available right now"),
}
# What a page says for an HTTP error that came with Werkzeug's own (English) description.
DEFAULT_DETAILS = {
    400: lazy_gettext("The page could not understand what your browser sent. Go back and try again."),
    403: lazy_gettext("You are not allowed to see this page."),
    404: lazy_gettext("There is nothing at this address. Check that you typed or copied all of it."),
    405: lazy_gettext("This page cannot be used that way."),
    410: lazy_gettext("What was here is gone for good."),
    429: lazy_gettext("Too many requests came from your connection. Please wait a minute and try again."),
    500: lazy_gettext("Something went wrong on our side. Nothing you did caused it; please try again in a minute."),
    503: lazy_gettext("This is not available right now. Please try again in a minute."),
}


def wants_json() -> bool:
    if request.path.startswith(("/api/", "/hooks/")) or request.path.endswith(".json"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json", "application/problem+json"])
    return best in ("application/json", "application/problem+json")


def error_response(status: int, detail: str, title: str | None = None) -> Response:
    title = title or str(FRIENDLY_TITLES.get(status) or gettext("Error"))
    if wants_json():
        response = jsonify({"type": "about:blank", "title": title, "status": status, "detail": detail})
        response.status_code = status
        response.mimetype = "application/problem+json"
        return response
    return Response(render_template("pages/error.html", title=title, detail=detail, status=status), status=status)


def fresh_json(data: object) -> Response:
    """JSON of live figures: never from a cache."""
    response = jsonify(data)
    response.headers["Cache-Control"] = "no-store"
    return response


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError) -> Response:
        log.info("CSRF check failed on %s: %s", request.path, error.description)
        return error_response(
            400,
            gettext("This form has expired or was not sent from our page. Go back, reload the page and try again."),
            gettext("The form could not be accepted"),
        )

    @app.errorhandler(CampaignNotFound)
    def campaign_not_found(error: CampaignNotFound) -> Response:
        # Every use case raises the same exception for a slug nobody has: one answer for all.
        slug = (request.view_args or {}).get("slug")
        return error_response(
            404,
            gettext("There is no campaign %(slug)s.", slug=repr(slug))
            if slug
            else gettext("There is no campaign with that name."),
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        detail = error.description or ""
        if status == 413:
            detail = gettext("That was more data than this form accepts.")
        elif detail == type(error).description and status in DEFAULT_DETAILS:
            # Werkzeug's own words, in English: ours, in the reader's language.
            detail = str(DEFAULT_DETAILS[status])
        response = error_response(status, detail)
        if status == 405 and error.get_response().headers.get("Allow"):
            response.headers["Allow"] = error.get_response().headers["Allow"]
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, str(DEFAULT_DETAILS[500]))
