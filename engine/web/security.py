"""Security headers on every response."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from flask import Flask, Response, g

from config import Settings
from engine.sharing import SHARE_TARGETS

# No inline or foreign scripts anywhere; inline styles stay allowed because campaign
# templates (landing pages, email previews) are styled inline. Nobody may frame our
# pages: a framed send-to-friend form is a clickjacking target. The one exception is the
# embedded form's flow (engine.web.public.embed), which the sites its campaign lists may
# frame, and only they (allow_framing_by). The proof-of-work widget
# (static/vendor/altcha) solves in Web Workers: we serve its build without inlined workers
# and hand it our own worker file, so workers come from 'self' and never from blob: or data:.


def _directives(frame_ancestors: str) -> list[str]:
    return [
        "default-src 'self'",
        "script-src 'self'",
        "worker-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: https:",
        f"frame-ancestors {frame_ancestors}",
        # Share buttons post to us, then go on to the consumer's own app (engine.sharing).
        "form-action 'self' " + " ".join(SHARE_TARGETS),
        "base-uri 'none'",
        "object-src 'none'",
    ]


def content_security_policy(frame_ancestors: str = "'none'", extra: dict[str, tuple[str, ...]] | None = None) -> str:
    """The policy: framed by `frame_ancestors` only, with `extra` sources added to their
    directives (a directive the base policy lacks gets these sources alone: a frame-src of the
    player's origin allows no other frame)."""
    directives = _directives(frame_ancestors)
    names = [directive.split(" ", 1)[0] for directive in directives]
    for name, origins in (extra or {}).items():
        if name in names:
            directives[names.index(name)] += " " + " ".join(origins)
        else:
            directives.insert(1, " ".join((name, *origins)))
    return "; ".join(directives)


CONTENT_SECURITY_POLICY = content_security_policy()
_FRAMING_KEY = "fluister_frame_ancestors"
# Where a view's own additions wait for its response (`allow_on_this_page`).
_EXTRA_SOURCES = "csp_extra_sources"
_SOURCE = re.compile(r"https://[a-z0-9.-]+(:[0-9]{1,5})?")

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Tracked links carry tokens in their path: never hand a full URL to another site.
    "Referrer-Policy": "same-origin",
}


# Browsers that have seen the site over https once never try it over http again, for a year.
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


def allow_framing_by(origins: Sequence[str]) -> None:
    """Let exactly these origins (checked ones: engine.embedding) frame this request's answer,
    whatever it is (the form, its preview, an error page). X-Frame-Options is left out: it has
    no way to name several origins, and browsers that know frame-ancestors ignore it anyway."""
    if origins:
        setattr(g, _FRAMING_KEY, tuple(origins))


def allow_on_this_page(directive: str, sources: Iterable[str]) -> None:
    """Widen the Content-Security-Policy of this request's response only (a campaign's landing
    page that plays a video from its own host or a provider's player): `directive` gets these
    https origins besides what default-src allows. Every other page keeps the strict policy."""
    origins = tuple(sources)
    for origin in origins:
        if not _SOURCE.fullmatch(origin):
            raise ValueError(f"not an https origin: {origin!r}")
    extra: dict[str, tuple[str, ...]] = g.setdefault(_EXTRA_SOURCES, {})
    extra[directive] = tuple(dict.fromkeys((*extra.get(directive, ()), *origins)))


def _this_pages_headers(headers: dict[str, str]) -> dict[str, str]:
    origins = g.get(_FRAMING_KEY)
    extra = g.get(_EXTRA_SOURCES)
    if not origins and not extra:
        return headers
    answered = dict(headers)
    if origins:
        del answered["X-Frame-Options"]
    answered["Content-Security-Policy"] = content_security_policy(" ".join(origins or ("'none'",)), extra)
    return answered


def register(app: Flask, settings: Settings) -> None:
    headers = dict(HEADERS)
    if settings.production and settings.public_base_url.startswith("https://"):
        headers["Strict-Transport-Security"] = STRICT_TRANSPORT_SECURITY

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        for name, value in _this_pages_headers(headers).items():
            response.headers.setdefault(name, value)
        return response
