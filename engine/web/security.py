"""Security headers on every response."""

from __future__ import annotations

from flask import Flask, Response

from config import Settings
from engine.sharing import SHARE_TARGETS

# No inline or foreign scripts anywhere; inline styles stay allowed because campaign
# templates (landing pages, email previews) are styled inline. Nobody may frame our
# pages: a framed send-to-friend form is a clickjacking target. The proof-of-work widget
# (static/vendor/altcha) solves in Web Workers: we serve its build without inlined workers
# and hand it our own worker file, so workers come from 'self' and never from blob: or data:.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "worker-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: https:",
        "frame-ancestors 'none'",
        # Share buttons post to us, then go on to the consumer's own app (engine.sharing).
        "form-action 'self' " + " ".join(SHARE_TARGETS),
        "base-uri 'none'",
        "object-src 'none'",
    ]
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Tracked links carry tokens in their path: never hand a full URL to another site.
    "Referrer-Policy": "same-origin",
}


# Browsers that have seen the site over https once never try it over http again, for a year.
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


def register(app: Flask, settings: Settings) -> None:
    headers = dict(HEADERS)
    if settings.production and settings.public_base_url.startswith("https://"):
        headers["Strict-Transport-Security"] = STRICT_TRANSPORT_SECURITY

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response
