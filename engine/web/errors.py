"""Error pages: a friendly HTML page for people, problem+json (RFC 9457) for machines. Never a bare 500."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from engine.services.lookups import CampaignNotFound

log = logging.getLogger(__name__)

FRIENDLY_TITLES = {
    400: "Something in that request was not right",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    410: "Gone",
    413: "Too much data",
    422: "Please check the form",
    429: "Slow down",
    500: "Something went wrong on our side",
}


def wants_json() -> bool:
    if request.path.startswith(("/api/", "/hooks/")) or request.path.endswith(".json"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json", "application/problem+json"])
    return best in ("application/json", "application/problem+json")


def error_response(status: int, detail: str, title: str | None = None) -> Response:
    title = title or FRIENDLY_TITLES.get(status, "Error")
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
            "This form has expired or was not sent from our page. Go back, reload the page and try again.",
            "The form could not be accepted",
        )

    @app.errorhandler(CampaignNotFound)
    def campaign_not_found(error: CampaignNotFound) -> Response:
        # Every use case raises the same exception for a slug nobody has: one answer for all.
        slug = (request.view_args or {}).get("slug")
        return error_response(
            404, f"There is no campaign {slug!r}." if slug else "There is no campaign with that name."
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        detail = error.description or ""
        if status == 413:
            detail = "That was more data than this form accepts."
        response = error_response(status, detail)
        if status == 405 and error.get_response().headers.get("Allow"):
            response.headers["Allow"] = error.get_response().headers["Allow"]
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, InternalServerError.description)
