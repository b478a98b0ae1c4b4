"""A campaign's form embedded on a brand's own site (static/embed.js, engine.web.public.embed).

Who may embed it: the origins the campaign lists (engine.embedding). The browser enforces them
(`frame-ancestors`); what this module adds is the refusal said in words, for the snippet to
log on a page that is not listed, and the tokens the embedded form lives on.

Why a token and no cookie: the form in a frame on another site is a third-party context. Its
SameSite=Lax session cookie is not sent there, and browsers increasingly drop third-party
cookies altogether, so the session's CSRF token and the visitor id a landing page's render
stamp is bound to do not exist. The embedded form carries one signed, short-lived token
instead (Purpose.EMBED_FORM): bound to its campaign, stamped with when it was rendered, and
with a random part that a sent form spends (a form sent twice is answered as sent once). A
CSRF token protects what a cookie lets a forged request do in a visitor's name; the embedded
form's POST carries no cookie and acts in nobody's name, so a forger gains nothing a visitor
of the page could not do, and the token still proves the form was rendered by us, for this
campaign, recently, and not too quickly filled in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.models import Campaign, CampaignStatus
from engine.services.lookups import SLUG
from engine.tokens import InvalidToken, Purpose, Tokens

# The host pages' ways of showing the form (data-fluister-mode).
MODES = ("button", "inline", "share")


class NotEmbeddable(Exception):
    """The form may not be embedded there: `reason` says why, for the host page's console."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Embedding:
    """The embedded form of one campaign, on one page of one of its listed origins."""

    slug: str
    host: str  # the origin of the page the form is on: where its events are posted
    origins: tuple[str, ...]  # every origin allowed to frame it (frame-ancestors)
    mode: str = "button"

    @property
    def visitor(self) -> str:
        """Whom the form's stamp is bound to: the campaign (there is no session to bind it to)."""
        return f"embed/{self.slug}"


def embed_origins(session: Session, slug: str) -> tuple[str, ...] | None:
    """The origins that may embed this campaign's form, or None when there is no such campaign
    for the public (a draft neither: its landing page is not public yet)."""
    if not SLUG.fullmatch(slug):
        return None
    row = session.execute(select(Campaign.embed_origins, Campaign.status).where(Campaign.slug == slug)).first()
    if row is None or row.status == CampaignStatus.DRAFT:
        return None
    return tuple(row.embed_origins or ())


def embedding(session: Session, slug: str, host: str | None, mode: str | None = None) -> Embedding:
    """The embedded form on the page of origin `host`; NotEmbeddable says why not."""
    origins = embed_origins(session, slug)
    if origins is None:
        raise NotEmbeddable(f"there is no campaign {slug[:64]!r} to embed; check data-fluister-campaign", 404)
    if not origins:
        raise NotEmbeddable(f"campaign {slug!r} lists no site that may embed it; add this site's origin", 403)
    if not host or host not in origins:
        shown = (host or "this page")[:100]
        raise NotEmbeddable(f"{shown} is not among the sites that may embed campaign {slug!r}; add its origin", 403)
    return Embedding(slug, host, origins, mode if mode in MODES else "button")


@dataclass(frozen=True)
class Forwarded:
    """What the host page is told of a forward: counts and kinds, never a contact."""

    friends: int
    kinds: tuple[str, ...]


def sent_token(tokens: Tokens, slug: str, friends: int, kinds: Iterable[str]) -> str:
    """What the form's answer hands its thanks page (a redirect: no session to keep it in)."""
    listed = ",".join(sorted({kind.replace(" ", "-") for kind in kinds}))
    return tokens.sign(Purpose.EMBED_SENT, f"{slug}|{friends}|{listed}")


def read_sent(tokens: Tokens, slug: str, token: str | None) -> Forwarded | None:
    """The forward a thanks page reports, when its token is genuine, recent and this campaign's."""
    if not token:
        return None
    try:
        signed_slug, friends, kinds = tokens.verify(Purpose.EMBED_SENT, token).split("|")
    except (InvalidToken, ValueError):
        return None
    if signed_slug != slug or not friends.isdigit():
        return None
    return Forwarded(int(friends), tuple(k for k in kinds.split(",") if k))


def stamp_is_for(tokens: Tokens, slug: str, stamp: str | None) -> bool:
    """Whether an embedded page's stamp is genuine, recent and this campaign's (what the share
    buttons of an embedded page post instead of a session's CSRF token)."""
    try:
        payload = tokens.verify(Purpose.EMBED_FORM, stamp or "")
    except InvalidToken:
        return False
    visitor, _, nonce = payload.partition(":")
    return bool(nonce) and visitor == f"embed/{slug}"
