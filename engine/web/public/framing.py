"""The embedded form's flow inside the landing page's views (engine.web.public.embed).

The embedded form is the landing page's form: the same checks, caps, challenge, policies and
preview. What differs is said here, asked by the landing page's views of the request: no
session (no CSRF token, no visitor id; a signed stamp bound to the campaign instead, see
engine.services.embeds), its own template, and a thanks page reached without a cookie.
"""

from __future__ import annotations

from typing import Any

from flask import g, url_for

from engine.runtime import current_runtime
from engine.services.embeds import Embedding, sent_token
from engine.tokens import Purpose
from engine.web.security import allow_framing_by

_KEY = "fluister_embedding"
# The fields the embedded form's pages carry from one to the next (there is no session).
HOST_FIELD = "origin"
MODE_FIELD = "mode"
SENT_FIELD = "sent"


def embed_here(embedding: Embedding) -> None:
    """Serve this request as the embedded form of `embedding`, frameable by its origins only."""
    setattr(g, _KEY, embedding)
    allow_framing_by(embedding.origins)


def current_embedding() -> Embedding | None:
    embedding = g.get(_KEY)
    return embedding if isinstance(embedding, Embedding) else None


def form_meta() -> dict[str, Any]:
    """The forward form's options: embedded, no session CSRF token (the stamp stands in for it)."""
    return {"csrf": False} if current_embedding() is not None else {}


def stamp_purpose() -> Purpose:
    return Purpose.EMBED_FORM if current_embedding() is not None else Purpose.FORM


def embedded_visitor() -> str | None:
    embedding = current_embedding()
    return embedding.visitor if embedding is not None else None


def page_arguments() -> dict[str, str]:
    """What every link between the embedded form's pages carries."""
    embedding = current_embedding()
    return {} if embedding is None else {HOST_FIELD: embedding.host, MODE_FIELD: embedding.mode}


def thanks_url(slug: str, friends: int | None = None, kinds: tuple[str, ...] = ()) -> str:
    """The embedded thanks page; with what to tell the host page when something was sent."""
    arguments: dict[str, Any] = {"slug": slug, **page_arguments()}
    if friends:
        arguments[SENT_FIELD] = sent_token(current_runtime().tokens, slug, friends, kinds)
    return url_for("embed.thanks", **arguments)
