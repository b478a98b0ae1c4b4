"""The console's share card page: a campaign's card image (what link previews show) and its QR
code for print.

Marketers and admins upload or remove the image and download the code, as they edit the
campaign; each image change is in the campaign's history. The upload is refused (413) before
it is read when it is larger than an image may be; what is read is checked by decoding it
(engine.card_images). The printed code's link is the campaign's `share-qr` forward
(engine.services.share_cards), made by the first download and the same in every later one.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, flash, get_flashed_messages, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from werkzeug.exceptions import RequestEntityTooLarge

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse

from engine.card_images import MAX_CARD_IMAGE_BYTES, CardImageRefused
from engine.models import Role
from engine.runtime import current_runtime
from engine.services.share_cards import (
    CampaignEnded,
    card_settings,
    poster_forward,
    remove_card,
    staff_card,
    store_card,
)
from engine.tokens import Purpose
from engine.web.console.auth import current_member, staff_actor, staff_required
from engine.web.errors import error_response
from engine.web.inputs import accepts_files
from engine.web.public.cards import DEFAULT_CARD, DEFAULT_CARD_SIZE, QR_KINDS, image_response, qr_download

log = logging.getLogger(__name__)

bp = Blueprint("cards_console", __name__, url_prefix="/console/campaigns")

# The image, and room for the multipart framing and the CSRF token around it.
MAX_CARD_REQUEST_BYTES = MAX_CARD_IMAGE_BYTES + 64 * 1024
_DONE_CATEGORY = "card-done"


class CardUploadForm(FlaskForm):
    image = FileField(
        lazy_gettext("Card image"),
        validators=[FileRequired(lazy_gettext("Choose a PNG, JPEG or WebP image."))],
    )


class RemoveCardForm(FlaskForm):
    pass


@bp.url_value_preprocessor
def allow_an_image(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # Larger than the app's form limit (MAX_CONTENT_LENGTH); set before CSRFProtect reads the form.
    request.max_content_length = MAX_CARD_REQUEST_BYTES


@bp.errorhandler(RequestEntityTooLarge)
def image_too_large(_error: RequestEntityTooLarge) -> BaseResponse:
    log.info("card image refused for %s: larger than %s bytes", request.path, MAX_CARD_REQUEST_BYTES)
    return error_response(
        413, _("The image is larger than %(mib)s MiB. Nothing was stored.", mib=MAX_CARD_IMAGE_BYTES // (1024 * 1024))
    )


@bp.route("/<slug>/share-card", methods=["GET", "POST"])
@accepts_files("image")
@staff_required(Role.MARKETER)
def share_card(slug: str) -> BaseResponse:
    runtime = current_runtime()
    form = CardUploadForm()
    if not form.validate_on_submit():
        return _page(slug, form, status=422 if request.method == "POST" else 200)
    try:
        image = store_card(runtime.db, slug, form.image.data.read(), staff_actor(), runtime.clock.now())
    except CardImageRefused as refused:
        log.info("card image for %s refused for %s: %s", slug, staff_actor().name, refused)
        form.image.errors = [str(refused)]
        return _page(slug, form, status=422)
    log.info(
        "card image for %s stored by %s: %s %sx%s",
        slug,
        staff_actor().name,
        image.content_type,
        image.width,
        image.height,
    )
    flash(
        _("Card image stored: %(width)s x %(height)s pixels.", width=image.width, height=image.height), _DONE_CATEGORY
    )
    return redirect(url_for("cards_console.share_card", slug=slug), code=303)


@bp.post("/<slug>/share-card/remove")
@staff_required(Role.MARKETER)
def remove(slug: str) -> BaseResponse:
    if not RemoveCardForm().validate_on_submit():
        return _page(slug, CardUploadForm(formdata=None), status=422)
    if remove_card(current_runtime().db, slug, staff_actor()):
        log.info("card image for %s removed by %s", slug, staff_actor().name)
        flash(_("Card image removed: link previews show the default card."), _DONE_CATEGORY)
    return redirect(url_for("cards_console.share_card", slug=slug), code=303)


@bp.get("/<slug>/share-card/image")
@staff_required()
def image(slug: str) -> BaseResponse:
    """The stored image as the public gets it, for staff (a draft's too)."""
    stored = staff_card(current_runtime().db, slug)
    if stored is None:
        return error_response(404, _("This campaign has no card image of its own."))
    return image_response(stored, "private, no-cache")


@bp.get("/<slug>/qr.<kind>")
@staff_required(Role.MARKETER)
def poster_qr(slug: str, kind: str) -> BaseResponse:
    """The campaign's QR code for print: its link is the campaign's `share-qr` forward."""
    runtime = current_runtime()
    if kind not in QR_KINDS:
        return error_response(404, _("Choose SVG or PNG."))
    try:
        public_id = poster_forward(runtime.db, runtime.hasher, slug, runtime.clock.now())
    except CampaignEnded:
        return error_response(
            410, _("This campaign has ended: its page never comes back, so there is no code to print.")
        )
    link = f"{runtime.settings.public_base_url}/f/{runtime.tokens.sign(Purpose.FORWARD, public_id)}"
    log.info("campaign %s: QR code (%s) downloaded by %s", slug, kind, staff_actor().name)
    return qr_download(link, kind, f"{slug}-qr")


def _page(slug: str, form: CardUploadForm, *, status: int = 200) -> BaseResponse:
    settings = card_settings(current_runtime().db, slug)
    html = render_template(
        "pages/console/share_card.html",
        member=current_member(),
        campaign=settings,
        form=form,
        remove_form=RemoveCardForm(formdata=None),
        done=get_flashed_messages(category_filter=[_DONE_CATEGORY]),
        default_card=DEFAULT_CARD,
        default_size=DEFAULT_CARD_SIZE,
        max_mib=MAX_CARD_IMAGE_BYTES // (1024 * 1024),
        qr_kinds=list(QR_KINDS),
    )
    return Response(html, status=status)
