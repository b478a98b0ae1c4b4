"""The console's logo page: the brand's logo at the top of the campaign's built-in e-mail.

Marketers and admins upload or remove it, as they edit the campaign; each change is in the
campaign's history. The upload is refused (413) before it is read when it is larger than a
logo may be; what is read is checked by decoding it (engine.card_images), as a card image is.
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

from engine.card_images import MAX_LOGO_BYTES, CardImageRefused
from engine.models import Role
from engine.runtime import current_runtime
from engine.services.logos import logo_settings, remove_logo, staff_logo, store_logo
from engine.web.console.auth import current_member, staff_actor, staff_required
from engine.web.errors import error_response
from engine.web.inputs import accepts_files
from engine.web.public.cards import image_response

log = logging.getLogger(__name__)

bp = Blueprint("logos_console", __name__, url_prefix="/console/campaigns")

# The logo, and room for the multipart framing and the CSRF token around it.
MAX_LOGO_REQUEST_BYTES = MAX_LOGO_BYTES + 64 * 1024
_DONE_CATEGORY = "logo-done"


class LogoUploadForm(FlaskForm):
    image = FileField(
        lazy_gettext("Logo"),
        validators=[FileRequired(lazy_gettext("Choose a PNG, JPEG or WebP image."))],
    )


class RemoveLogoForm(FlaskForm):
    pass


@bp.url_value_preprocessor
def allow_a_logo(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # Set before CSRFProtect reads the form: a larger body is refused unread.
    request.max_content_length = MAX_LOGO_REQUEST_BYTES


@bp.errorhandler(RequestEntityTooLarge)
def logo_too_large(_error: RequestEntityTooLarge) -> BaseResponse:
    log.info("logo refused for %s: larger than %s bytes", request.path, MAX_LOGO_REQUEST_BYTES)
    return error_response(
        413, _("The logo is larger than %(mib)s MiB. Nothing was stored.", mib=MAX_LOGO_BYTES // (1024 * 1024))
    )


@bp.route("/<slug>/logo", methods=["GET", "POST"])
@accepts_files("image")
@staff_required(Role.MARKETER)
def logo(slug: str) -> BaseResponse:
    runtime = current_runtime()
    form = LogoUploadForm()
    if not form.validate_on_submit():
        return _page(slug, form, status=422 if request.method == "POST" else 200)
    try:
        image = store_logo(runtime.db, slug, form.image.data.read(), staff_actor(), runtime.clock.now())
    except CardImageRefused as refused:
        log.info("logo for %s refused for %s: %s", slug, staff_actor().name, refused)
        form.image.errors = [str(refused)]
        return _page(slug, form, status=422)
    log.info(
        "logo for %s stored by %s: %s %sx%s", slug, staff_actor().name, image.content_type, image.width, image.height
    )
    flash(_("Logo stored: %(width)s x %(height)s pixels.", width=image.width, height=image.height), _DONE_CATEGORY)
    return redirect(url_for("logos_console.logo", slug=slug), code=303)


@bp.post("/<slug>/logo/remove")
@staff_required(Role.MARKETER)
def remove(slug: str) -> BaseResponse:
    if not RemoveLogoForm().validate_on_submit():
        return _page(slug, LogoUploadForm(formdata=None), status=422)
    if remove_logo(current_runtime().db, slug, staff_actor()):
        log.info("logo for %s removed by %s", slug, staff_actor().name)
        flash(_("Logo removed: the e-mail shows the brand's name instead."), _DONE_CATEGORY)
    return redirect(url_for("logos_console.logo", slug=slug), code=303)


@bp.get("/<slug>/logo/image")
@staff_required()
def image(slug: str) -> BaseResponse:
    """The stored logo as e-mail clients get it, for staff (a draft's too)."""
    stored = staff_logo(current_runtime().db, slug)
    if stored is None:
        return error_response(404, _("This campaign has no logo."))
    return image_response(stored, "private, no-cache")


def _page(slug: str, form: LogoUploadForm, *, status: int = 200) -> BaseResponse:
    html = render_template(
        "pages/console/logo.html",
        member=current_member(),
        campaign=logo_settings(current_runtime().db, slug),
        form=form,
        remove_form=RemoveLogoForm(formdata=None),
        done=get_flashed_messages(category_filter=[_DONE_CATEGORY]),
        max_mib=MAX_LOGO_BYTES // (1024 * 1024),
    )
    return Response(html, status=status)
