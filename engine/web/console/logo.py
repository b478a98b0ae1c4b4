"""The console's logo page: the brand's logo at the top of the campaign's built-in e-mail.

Marketers and admins upload or remove it, as they edit the campaign; each change is in the
campaign's history. The upload is taken as the share card's image is
(engine.web.console.image_upload), with a logo's limits.
"""

from __future__ import annotations

from flask import Blueprint, Response, get_flashed_messages, render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse

from engine.card_images import MAX_LOGO_BYTES
from engine.models import Role
from engine.runtime import current_runtime
from engine.services.logos import logo_settings, staff_logo
from engine.services.share_cards import LOGO
from engine.web.console.auth import current_member, staff_required
from engine.web.console.image_upload import ImageUpload, ImageUploadForm, RemoveImageForm
from engine.web.errors import error_response
from engine.web.inputs import accepts_files
from engine.web.public.cards import image_response

bp = Blueprint("logos_console", __name__, url_prefix="/console/campaigns")

LOGO_UPLOAD = ImageUpload(
    kind=LOGO,
    name="logo",
    label=lazy_gettext("Logo"),
    max_bytes=MAX_LOGO_BYTES,
    endpoint="logos_console.logo",
    stored=lazy_gettext("Logo stored: %(width)s x %(height)s pixels."),
    removed=lazy_gettext("Logo removed: the e-mail shows the brand's name instead."),
    too_large=lazy_gettext("The logo is larger than %(mib)s MiB. Nothing was stored."),
    done_category="logo-done",
)
LOGO_UPLOAD.install(bp)


@bp.route("/<slug>/logo", methods=["GET", "POST"])
@accepts_files("image")
@staff_required(Role.MARKETER)
def logo(slug: str) -> BaseResponse:
    return LOGO_UPLOAD.upload(slug, _page)


@bp.post("/<slug>/logo/remove")
@staff_required(Role.MARKETER)
def remove(slug: str) -> BaseResponse:
    return LOGO_UPLOAD.remove(slug, _page)


@bp.get("/<slug>/logo/image")
@staff_required()
def image(slug: str) -> BaseResponse:
    """The stored logo as e-mail clients get it, for staff (a draft's too)."""
    stored = staff_logo(current_runtime().db, slug)
    if stored is None:
        return error_response(404, _("This campaign has no logo."))
    return image_response(stored, "private, no-cache")


def _page(slug: str, form: ImageUploadForm, status: int = 200) -> BaseResponse:
    html = render_template(
        "pages/console/logo.html",
        member=current_member(),
        campaign=logo_settings(current_runtime().db, slug),
        form=form,
        remove_form=RemoveImageForm(formdata=None),
        done=get_flashed_messages(category_filter=[LOGO_UPLOAD.done_category]),
        max_mib=LOGO_UPLOAD.max_mib,
    )
    return Response(html, status=status)
