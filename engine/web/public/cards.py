"""What a shared link looks like elsewhere: the Open Graph and Twitter card tags of the pages a
shared link lands on, the campaign's card image they name, and a sender's link as a QR code.

The tags go in the page's head, which is ours: a campaign's own landing template only fills
the offer's part of the body. They name the canonical landing URL (never a tracked link: a
token in a preview would be anyone's to reuse) and absolute image URLs, as crawlers need.
"""

from __future__ import annotations

from dataclasses import dataclass

from babel.core import get_global
from flask import Blueprint, Response, request, url_for
from flask_babel import gettext

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse

from engine import qr
from engine.i18n import current_language
from engine.runtime import current_runtime
from engine.services.campaigns import LandingPage
from engine.services.logos import public_logo
from engine.services.share_cards import CARD_EXTENSIONS, CardFacts, CardRef, StoredCard, card_facts, public_card
from engine.tokens import ExpiredToken, InvalidToken, Purpose
from engine.web.errors import error_response

bp = Blueprint("cards", __name__)

# The built-in card (static/share-card.png), for a campaign without its own.
DEFAULT_CARD = "share-card.png"
DEFAULT_CARD_SIZE = (1200, 630)
# A URL with the image's version never changes what it answers.
IMMUTABLE = "public, max-age=31536000, immutable"
# An old or unversioned URL answers the current image, and may change again.
SHORT = "public, max-age=300"
# Networks show two or three lines of the description; the rest is cut anyway.
MAX_DESCRIPTION = 300
QR_KINDS = {"svg": "image/svg+xml", "png": "image/png"}


@dataclass(frozen=True)
class SocialCard:
    """The facts a link preview shows, as the page's head states them."""

    title: str
    description: str
    url: str
    site_name: str
    image_url: str
    image_type: str
    image_width: int
    image_height: int
    locale: str


def landing_card(page: LandingPage) -> SocialCard:
    """The landing page's card, in the language the page speaks."""
    return social_card(
        CardFacts(
            page.slug, page.offer_title, page.offer_description, page.brand_name, page.language.locales, page.card
        )
    )


def campaign_card(slug: str) -> SocialCard | None:
    """The card of a campaign's other public pages (the page with a sender's link to copy)."""
    facts = card_facts(current_runtime().db, slug)
    return social_card(facts) if facts is not None else None


def social_card(facts: CardFacts) -> SocialCard:
    language = current_language()
    base = current_runtime().settings.public_base_url
    # The page in the language shown: the campaign's default needs no ?lang=.
    default = facts.locales[0] if facts.locales else language
    lang = None if language == default else language
    url = base + url_for("public.landing", slug=facts.slug, lang=lang)
    image_url, image_type, (width, height) = _image(facts.slug, facts.card)
    return SocialCard(
        title=facts.offer_title,
        description=_summary(facts.offer_description) or facts.offer_title,
        url=url,
        site_name=facts.brand_name,
        image_url=image_url,
        image_type=image_type,
        image_width=width,
        image_height=height,
        locale=og_locale(language),
    )


def _summary(text: str) -> str:
    """The description on one line, and short enough that no preview cuts it mid-word."""
    flat = " ".join(text.split())
    if len(flat) <= MAX_DESCRIPTION:
        return flat
    return flat[: MAX_DESCRIPTION - 1].rsplit(" ", 1)[0] + "…"


def _image(slug: str, card: CardRef | None) -> tuple[str, str, tuple[int, int]]:
    base = current_runtime().settings.public_base_url
    if card is None:
        return base + url_for("static", filename=DEFAULT_CARD), "image/png", DEFAULT_CARD_SIZE
    path = url_for("cards.card_image", slug=slug, extension=card.extension, v=card.version)
    return base + path, card.content_type, (card.width, card.height)


def og_locale(language: str) -> str:
    """`nl` as Open Graph writes a locale: `nl_NL` (the language's likeliest territory)."""
    likely = get_global("likely_subtags").get(language, language)
    parts = likely.split("_")
    territory = next((p for p in parts[1:] if len(p) == 2 and p.isupper()), None)
    return f"{parts[0]}_{territory}" if territory else parts[0]


@bp.get("/c/<slug>/card.<extension>")
def card_image(slug: str, extension: str) -> BaseResponse:
    """The campaign's card image: cached for good under its version, with its hash as ETag."""
    if extension not in CARD_EXTENSIONS.values():
        return error_response(
            404, gettext("There is nothing at this address. Check that you typed or copied all of it.")
        )
    stored = public_card(current_runtime().db, slug)
    if stored is None:
        return error_response(404, gettext("This offer has no image of its own."))
    current = request.args.get("v") == stored.ref.version and extension == stored.ref.extension
    return image_response(stored, IMMUTABLE if current else SHORT)


@bp.get("/c/<slug>/logo.<extension>")
def logo_image(slug: str, extension: str) -> BaseResponse:
    """The campaign's logo, as e-mail clients fetch it: cached for good under its version."""
    if extension not in CARD_EXTENSIONS.values():
        return error_response(
            404, gettext("There is nothing at this address. Check that you typed or copied all of it.")
        )
    version = request.args.get("v")
    stored = public_logo(current_runtime().db, slug, version)
    if stored is None:
        return error_response(404, gettext("This offer has no image of its own."))
    current = version == stored.ref.version and extension == stored.ref.extension
    return image_response(stored, IMMUTABLE if current else SHORT)


def image_response(stored: StoredCard, cache_control: str) -> BaseResponse:
    """The stored bytes as they were checked; a conditional request that has them gets a 304."""
    response = Response(stored.data, mimetype=stored.ref.content_type)
    response.headers["Cache-Control"] = cache_control
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.set_etag(stored.ref.sha256)
    return response.make_conditional(request)


@bp.get("/f/<token>/qr.<kind>")
def link_qr(token: str, kind: str) -> BaseResponse:
    """A sender's tracked link as a QR code file to download (SVG or PNG). Only a genuine link's."""
    runtime = current_runtime()
    if kind not in QR_KINDS:
        return error_response(
            404, gettext("There is nothing at this address. Check that you typed or copied all of it.")
        )
    try:
        runtime.tokens.verify(Purpose.FORWARD, token)
    except ExpiredToken:
        return error_response(410, gettext("This invitation link has expired."), gettext("Link expired"))
    except InvalidToken:
        return error_response(
            404, gettext("This link is not valid. Check that you copied all of it."), gettext("Link not valid")
        )
    link = f"{runtime.settings.public_base_url}/f/{token}"
    return qr_download(link, kind, "link-qr")


def qr_download(link: str, kind: str, name: str) -> BaseResponse:
    body = qr.svg_file(link) if kind == "svg" else qr.png_file(link)
    response = Response(body, mimetype=QR_KINDS[kind])
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{kind}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    # A tracked link is someone's: not kept by shared caches, never passed on as a referrer.
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
