"""`GET /metrics`: the Prometheus scrape (engine.metrics), and who may read it.

In development it is open. In production a request gets the metrics when it carries
`Authorization: Bearer <METRICS_TOKEN>`, or comes from an address in METRICS_ALLOW_FROM (the
client's address as TRUSTED_PROXIES resolves it: behind a proxy that is not trusted, every
request comes from the proxy). With neither set, production refuses every scrape: the figures
say how much a campaign sends and how it fails, which is nobody else's business.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence

from flask import Blueprint, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from config import Settings
from engine import metrics
from engine.runtime import current_runtime
from engine.services.backlog import read_backlog

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    runtime = current_runtime()
    refusal = _refusal(runtime.settings)
    if refusal is not None:
        return refusal
    body = metrics.exposition(lambda: read_backlog(runtime.db, runtime.queue, runtime.clock))
    # The classic text format, version 0.0.4: what every Prometheus (and agent) reads.
    response = Response(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)
    response.headers["Cache-Control"] = "no-store"
    return response


def _refusal(settings: Settings) -> Response | None:
    if not settings.production:
        return None
    if settings.metrics_allow_from and _allowed_address(request.remote_addr, settings.metrics_allow_from):
        return None
    if settings.metrics_token:
        if _bearer_matches(request.headers.get("Authorization", ""), settings.metrics_token):
            return None
        response = _problem(401, "Send the metrics token: Authorization: Bearer <METRICS_TOKEN>.", "Unauthorized")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if settings.metrics_allow_from:
        return _problem(403, "The metrics are served only to the addresses in METRICS_ALLOW_FROM.", "Forbidden")
    return _problem(403, "The metrics are off: set METRICS_TOKEN or METRICS_ALLOW_FROM to serve them.", "Forbidden")


def _bearer_matches(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    # Constant time: how much of a guess matched must not show in how long the answer takes.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _allowed_address(address: str | None, allowed: Sequence[str]) -> bool:
    if not address:
        # A unix socket has no address: allowed only when the operator listed `unix`.
        return "unix" in allowed
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(network) for network in allowed if network != "unix")


def _problem(status: int, detail: str, title: str) -> Response:
    # Always problem+json: a scraper's Accept header names no JSON, and no person reads this.
    response = jsonify({"type": "about:blank", "title": title, "status": status, "detail": detail})
    response.status_code = status
    response.mimetype = "application/problem+json"
    response.headers["Cache-Control"] = "no-store"
    return response
