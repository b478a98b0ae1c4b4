"""The console's share card page: a campaign's card image (what link previews show) and its QR
code for print.

Marketers and admins upload or remove the image and download the code, as they edit the
campaign; each image change is in the campaign's history. The upload is taken as the logo's is
(engine.web.console.image_upload): refused (413) before it is read when it is larger than an
image may be, and checked by decoding it (engine.card_images). The printed code's link is the
campaign's `share-qr` forward (engine.services.share_cards), made by the first download and the
same in every later one.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, get_flashed_messages, render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse

from engine.card_images import MAX_CARD_IMAGE_BYTES
from engine.models import Role
from engine.runtime import current_runtime
from engine.services.share_cards import CARD, CampaignEnded, card_settings, poster_forward, staff_card
from engine.tokens import Purpose
from engine.web.console.auth import current_member, staff_actor, staff_required
from engine.web.console.image_upload import ImageUpload, ImageUploadForm, RemoveImageForm
from engine.web.errors import error_response
from engine.web.inputs import accepts_files
from engine.web.public.cards import DEFAULT_CARD, DEFAULT_CARD_SIZE, QR_KINDS, image_response, qr_download

log = logging.getLogger(__name__)

bp = Blueprint("cards_console", __name__, url_prefix="/console/campaigns")

CARD_UPLOAD = ImageUpload(
    kind=CARD,
    name="card image",
    label=lazy_gettext("Card image"),
    max_bytes=MAX_CARD_IMAGE_BYTES,
    endpoint="cards_console.share_card",
    stored=lazy_gettext("Card image stored: %(width)s x %(height)s pixels."),
    removed=lazy_gettext("Card image removed: link previews show the default card."),
    too_large=lazy_gettext("The image is larger than %(mib)s MiB. Nothing was stored."),
    done_category="card-done",
)
CARD_UPLOAD.install(bp)


@bp.route("/<slug>/share-card", methods=["GET", "POST"])
@accepts_files("image")
@staff_required(Role.MARKETER)
def share_card(slug: str) -> BaseResponse:
    return CARD_UPLOAD.upload(slug, _page)


@bp.post("/<slug>/share-card/remove")
@staff_required(Role.MARKETER)
def remove(slug: str) -> BaseResponse:
    return CARD_UPLOAD.remove(slug, _page)


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


def _page(slug: str, form: ImageUploadForm, status: int = 200) -> BaseResponse:
    settings = card_settings(current_runtime().db, slug)
    html = render_template(
        "pages/console/share_card.html",
        member=current_member(),
        campaign=settings,
        form=form,
        remove_form=RemoveImageForm(formdata=None),
        done=get_flashed_messages(category_filter=[CARD_UPLOAD.done_category]),
        default_card=DEFAULT_CARD,
        default_size=DEFAULT_CARD_SIZE,
        max_mib=CARD_UPLOAD.max_mib,
        qr_kinds=list(QR_KINDS),
    )
    return Response(html, status=status)
