"""Problem details (RFC 9457) for the API's own refusals, with a `type` a client can act on.

`about:blank` (engine.web.errors.error_response) says only the status; these URNs name a
refusal that a status alone does not tell apart (two different 409s, say).
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

PROBLEM_JSON = "application/problem+json"
INCENTIVES_NOT_ALLOWED = "urn:fluister:problem:incentives-not-allowed"
ALREADY_REVIEWED = "urn:fluister:problem:already-reviewed"
IDEMPOTENCY_KEY_REUSED = "urn:fluister:problem:idempotency-key-reused"
IDEMPOTENCY_KEY_IN_USE = "urn:fluister:problem:idempotency-key-in-use"
RATE_LIMITED = "urn:fluister:problem:rate-limited"


def problem(status: int, title: str, detail: str, *, type_: str = "about:blank", **extensions: Any) -> Response:
    response = jsonify({"type": type_, "title": title, "status": status, "detail": detail, **extensions})
    response.status_code = status
    response.mimetype = PROBLEM_JSON
    return response


def invalid(what: str, errors: list[tuple[str, str]]) -> Response:
    """422 with each field's problem (RFC 9457's `errors`, each with a JSON pointer)."""
    return problem(
        422,
        f"The {what} is not valid",
        "; ".join(f"{name or 'body'}: {detail}" for name, detail in errors),
        errors=[{"field": name, "pointer": f"#/{name}", "detail": detail} for name, detail in errors],
    )
