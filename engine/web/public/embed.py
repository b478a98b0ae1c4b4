"""The send-to-friend button on a brand's own site: /embed.js, its configuration, and the
embedded form's pages (the landing page's views, served for a frame: engine.web.public.framing).

A brand puts `<script src="…/embed.js" data-fluister-campaign="SLUG" async>` on a page of an
origin its campaign lists (engine.embedding). The snippet asks /c/SLUG/embed.json whether it
may show the form there (answered with CORS for the listed origins only), then frames
/c/SLUG/embed, which those origins alone may frame. docs/embedding.md has the whole story.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response as BaseResponse

from engine.i18n import current_language
from engine.resources import STATIC_DIR
from engine.runtime import current_runtime
from engine.services.embeds import NotEmbeddable, embedding, read_sent, stamp_is_for
from engine.services.lookups import CampaignUnavailable
from engine.sharing import ShareButton
from engine.tokens import Purpose
from engine.web.errors import error_response
from engine.web.public import pages
from engine.web.public.framing import (
    HOST_FIELD,
    MODE_FIELD,
    SENT_FIELD,
    current_embedding,
    embed_here,
    page_arguments,
)

bp = Blueprint("embed", __name__)

SCRIPT = STATIC_DIR / "embed.js"
# The versioned script never changes (a new one has a new version); the bare address is asked
# again every few minutes, which is how long a new release takes to reach the host pages.
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=300"


@dataclass(frozen=True)
class _Script:
    body: bytes
    version: str


@cache
def _script() -> _Script:
    body = SCRIPT.read_bytes()
    return _Script(body, hashlib.sha256(body).hexdigest()[:16])


@bp.app_context_processor
def _embedding_in_templates() -> dict[str, object]:
    return {"embedded": current_embedding(), "embed_stamp": _embed_stamp, "embed_arguments": page_arguments}


def _embed_stamp() -> str:
    embedding = current_embedding()
    assert embedding is not None  # only the embedded pages ask for one
    return current_runtime().intake.new_stamp(embedding.visitor, Purpose.EMBED_FORM)


@bp.get("/embed.js")
def script() -> BaseResponse:
    """The snippet's script: at its versioned address for a year, else sent there."""
    current = _script()
    if request.args.get("v") != current.version:
        response = redirect(url_for("embed.script", v=current.version), code=302)
        response.headers["Cache-Control"] = SHORT
        return response
    response = Response(current.body, mimetype="text/javascript")
    response.headers["Cache-Control"] = IMMUTABLE
    # Any site may load it (a host page with Cross-Origin-Embedder-Policy too).
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@bp.get("/c/<slug>/embed.json")
def config(slug: str) -> BaseResponse:
    """What the snippet shows, for a page of a listed origin (CORS for that origin only); a
    refusal says why, readable by any page (it tells nothing the snippet did not send)."""
    runtime = current_runtime()
    origin = request.headers.get("Origin")
    mode = request.args.get(MODE_FIELD)
    try:
        with runtime.db.reading() as session:
            embedded = embedding(session, slug, origin, mode)
        embed_here(embedded)
        page = pages._landing_page(slug)
    except NotEmbeddable as refused:
        return _refusal_json(refused.status, refused.reason)
    except CampaignUnavailable as unavailable:
        return _refusal_json(unavailable.status, f"campaign {slug!r}: {unavailable}")
    response = jsonify(
        {
            "frame": url_for("embed.form", slug=slug, _external=True, **page_arguments()),
            "lang": current_language(),
            "button": gettext("Send to a friend"),
            "title": page.offer_title,
            "close": gettext("Close"),
        }
    )
    response.headers["Access-Control-Allow-Origin"] = embedded.host
    response.headers["Vary"] = "Origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def _refusal_json(status: int, detail: str) -> BaseResponse:
    response = jsonify({"type": "about:blank", "title": "Not embeddable", "status": status, "detail": detail})
    response.status_code = status
    response.mimetype = "application/problem+json"
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "no-store"
    return response


def _embed(slug: str, fields: Mapping[str, str]) -> BaseResponse | None:
    """Serve this request as the embedded form on the page `fields` name; else the refusal."""
    runtime = current_runtime()
    try:
        with runtime.db.reading() as session:
            embed_here(embedding(session, slug, fields.get(HOST_FIELD), fields.get(MODE_FIELD)))
    except NotEmbeddable as refused:
        if refused.status == 404:
            return error_response(404, gettext("There is no offer at this address."))
        return error_response(403, gettext("This form can't be shown on this site."))
    return None


@bp.get("/c/<slug>/embed")
def form(slug: str) -> BaseResponse:
    return _embed(slug, request.args) or pages.landing(slug)


@bp.post("/c/<slug>/embed")
def forward(slug: str) -> BaseResponse:
    """The landing page's form handling, with the embedded form's stamp for a CSRF token."""
    return _embed(slug, request.form) or pages.forward(slug)


@bp.post("/c/<slug>/embed/share")
def share(slug: str) -> BaseResponse:
    refusal = _embed(slug, request.form)
    if refusal is not None:
        return refusal
    if not stamp_is_for(current_runtime().tokens, slug, request.form.get("rendered")):
        return error_response(403, gettext("This page has expired. Please reload it and try again."))
    return pages.share(slug)


@bp.get("/c/<slug>/embed/thanks")
def thanks(slug: str) -> BaseResponse:
    refusal = _embed(slug, request.args)
    if refusal is not None:
        return refusal
    try:
        page = pages._landing_page(slug)
    except CampaignUnavailable as error:
        return pages._unavailable_page(error)
    forwarded = read_sent(current_runtime().tokens, slug, request.args.get(SENT_FIELD))
    html = render_template(
        "pages/embed_thanks.html", page=page, forwarded=forwarded, share_channels=list(ShareButton), share_ref=None
    )
    return Response(html)
