"""Uploading and removing a campaign image of one kind on its console page: the share card's
image (engine.web.console.share_card) and the e-mail logo (engine.web.console.logo).

Both pages take the file the same way: a request larger than the kind allows is refused (413)
before it is read; what is read is checked and re-encoded by engine.card_images and stored in
place of the campaign's image of that kind, with a line in its history
(engine.services.share_cards.store_image); a refused file is the form's error on its field
(422), nothing stored; a stored or removed image is said on the page after the redirect. Only
the words and the page differ, and each page module gives its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from flask_babel import LazyString, lazy_gettext
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from werkzeug.exceptions import RequestEntityTooLarge

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse

from engine.card_images import CardImageRefused
from engine.runtime import current_runtime
from engine.services.share_cards import remove_image, store_image
from engine.web.console.auth import staff_actor
from engine.web.errors import error_response

log = logging.getLogger(__name__)

# Room for the multipart framing and the CSRF token around the image.
_FRAMING_BYTES = 64 * 1024


class ImageUploadForm(FlaskForm):
    # Labelled by the page (ImageUpload.form): "Card image", "Logo".
    image = FileField(validators=[FileRequired(lazy_gettext("Choose a PNG, JPEG or WebP image."))])


class RemoveImageForm(FlaskForm):
    pass


# Renders the page with this form, at this status.
PageRenderer = Callable[[str, ImageUploadForm, int], BaseResponse]


@dataclass(frozen=True)
class ImageUpload:
    """One kind of campaign image and its console page."""

    kind: str  # engine.services.share_cards.CARD or LOGO
    name: str  # in the log: "card image", "logo"
    label: LazyString  # the file field's label
    max_bytes: int  # the largest image taken (engine.card_images)
    endpoint: str  # the page, where an upload or a removal returns to
    stored: LazyString  # said after an upload: %(width)s and %(height)s
    removed: LazyString  # said after a removal
    too_large: LazyString  # the 413's detail: %(mib)s
    done_category: str  # the flashed messages' category, read back by the page

    @property
    def max_mib(self) -> int:
        return self.max_bytes // (1024 * 1024)

    def install(self, bp: Blueprint) -> None:
        """Let the blueprint's requests be as large as an image and its framing (the app's form
        limit is smaller), and refuse a larger one unread."""
        limit = self.max_bytes + _FRAMING_BYTES

        @bp.url_value_preprocessor
        def allow_an_image(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
            # Set before CSRFProtect reads the form: a larger body is refused unread.
            request.max_content_length = limit

        @bp.errorhandler(RequestEntityTooLarge)
        def image_too_large(_error: RequestEntityTooLarge) -> BaseResponse:
            log.info("%s refused for %s: larger than %s bytes", self.name, request.path, limit)
            return error_response(413, str(self.too_large) % {"mib": self.max_mib})

    def form(self, *, posted: bool = True) -> ImageUploadForm:
        """The upload form, labelled for this kind (`posted`: read from the request)."""
        form = ImageUploadForm() if posted else ImageUploadForm(formdata=None)
        form.image.label.text = str(self.label)
        return form

    def upload(self, slug: str, page: PageRenderer) -> BaseResponse:
        """The page (GET), or the posted file checked and stored (POST)."""
        runtime = current_runtime()
        form = self.form()
        if not form.validate_on_submit():
            return page(slug, form, 422 if request.method == "POST" else 200)
        actor = staff_actor()
        try:
            image = store_image(runtime.db, slug, form.image.data.read(), self.kind, actor, runtime.clock.now())
        except CardImageRefused as refused:
            log.info("%s for %s refused for %s: %s", self.name, slug, actor.name, refused)
            form.image.errors = [str(refused)]
            return page(slug, form, 422)
        log.info(
            "%s for %s stored by %s: %s %sx%s",
            self.name,
            slug,
            actor.name,
            image.content_type,
            image.width,
            image.height,
        )
        flash(str(self.stored) % {"width": image.width, "height": image.height}, self.done_category)
        return redirect(url_for(self.endpoint, slug=slug), code=303)

    def remove(self, slug: str, page: PageRenderer) -> BaseResponse:
        """The campaign's image of this kind removed (nothing to remove: the page as it was)."""
        if not RemoveImageForm().validate_on_submit():
            return page(slug, self.form(posted=False), 422)
        if remove_image(current_runtime().db, slug, self.kind, staff_actor()):
            log.info("%s for %s removed by %s", self.name, slug, staff_actor().name)
            flash(str(self.removed), self.done_category)
        return redirect(url_for(self.endpoint, slug=slug), code=303)
