"""The console's template upload: marketers (and admins) check and store a campaign's templates.

The page lists each template at its current version and what the campaign's consent policy
requires it to print; the form takes files one by one or as a zip, and either stores all of
them or none and lists every reason (engine.services.templates).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, flash, get_flashed_messages, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf import FlaskForm
from flask_wtf.file import FileRequired
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse
from wtforms import MultipleFileField

from engine.models import Role
from engine.runtime import current_runtime
from engine.services.templates import (
    MAX_TEMPLATE_BYTES,
    MAX_UPLOAD_BYTES,
    campaign_templates,
    starter_kit,
    upload_templates,
)
from engine.web.console.auth import current_member, staff_actor, staff_required
from engine.web.console.formats import number
from engine.web.errors import error_response
from engine.web.inputs import accepts_files

log = logging.getLogger(__name__)

bp = Blueprint("templates_console", __name__, url_prefix="/console/campaigns")

# The files themselves, and room for the multipart framing and the CSRF token around them.
MAX_UPLOAD_REQUEST_BYTES = MAX_UPLOAD_BYTES + 64 * 1024
_STORED_CATEGORY = "templates-stored"


class TemplateUploadForm(FlaskForm):
    files = MultipleFileField(
        lazy_gettext("Template files"),
        validators=[FileRequired(lazy_gettext("Choose one or more template files, or a zip of them."))],
    )


@bp.url_value_preprocessor
def allow_uploads(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # Uploads are larger than the app's form limit (MAX_CONTENT_LENGTH). This runs before any
    # before_request hook, so CSRFProtect, which reads the form first, already sees this limit.
    request.max_content_length = MAX_UPLOAD_REQUEST_BYTES


@bp.errorhandler(RequestEntityTooLarge)
def upload_too_large(_error: RequestEntityTooLarge) -> BaseResponse:
    return error_response(
        413,
        _(
            "That upload is larger than the %(kib)s KiB one upload may be. Templates may be at most: %(budgets)s.",
            kib=number(MAX_UPLOAD_BYTES // 1024),
            budgets=_budgets(),
        ),
    )


@bp.route("/<slug>/templates", methods=["GET", "POST"])
@accepts_files("files")
@staff_required(Role.MARKETER)
def templates(slug: str) -> BaseResponse:
    runtime = current_runtime()
    form = TemplateUploadForm()
    if not form.validate_on_submit():
        return _page(slug, form, status=422 if request.method == "POST" else 200)
    files, duplicates = _read_files(form.files.data or [])
    if duplicates:
        return _page(
            slug, form, refusals=[_("%(name)s was chosen twice", name=name) for name in duplicates], status=422
        )
    report = upload_templates(runtime.db, runtime.renderer, slug, files, staff_actor())
    member = current_member()
    if not report.accepted:
        log.info("templates for %s refused (%s files) for %s", slug, len(files), member and member.id)
        return _page(slug, form, refusals=list(report.refusals), status=422)
    log.info(
        "templates for %s stored by %s: %s",
        slug,
        member and member.id,
        ", ".join(f"{s.name} v{s.version}" for s in report.stored),
    )
    for stored in report.stored:
        flash(_("%(name)s stored as version %(number)s", name=stored.name, number=stored.version), _STORED_CATEGORY)
    return redirect(url_for("templates_console.templates", slug=slug), code=303)


@bp.get("/<slug>/templates/starter-kit.zip")
@staff_required(Role.MARKETER)
def starter(slug: str) -> BaseResponse:
    """The default templates in a zip the upload takes back as it is: a marketer's starting point."""
    # staff_required answered 404 already for no such campaign, or another team's.
    response = Response(starter_kit(), mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{slug}-starter-kit.zip"'
    return response


def _read_files(uploads: list[FileStorage]) -> tuple[dict[str, bytes], list[str]]:
    files: dict[str, bytes] = {}
    duplicates: list[str] = []
    for upload in uploads:
        name = upload.filename or ""
        if name in files:
            duplicates.append(name)
        # Bounded by the request's own limit: nothing larger got this far.
        files[name] = upload.read()
    return files, duplicates


def _page(slug: str, form: TemplateUploadForm, *, refusals: list[str] | None = None, status: int = 200) -> BaseResponse:
    campaign = campaign_templates(current_runtime().db, slug)
    html = render_template(
        "pages/console/templates.html",
        member=current_member(),
        campaign=campaign,
        form=form,
        refusals=refusals or [],
        stored=get_flashed_messages(category_filter=[_STORED_CATEGORY]),
        budgets=_budgets(),
        max_upload_kib=MAX_UPLOAD_BYTES // 1024,
    )
    return Response(html, status=status)


def _budgets() -> str:
    return ", ".join(f"{name} {number(size // 1024)} KiB" for name, size in MAX_TEMPLATE_BYTES.items())
