"""What marketers do to a campaign as a whole from the list or its overview: duplicate it as a
new draft (engine.services.campaign_copies) and archive it or take it out of the archive
(engine.services.archive). Marketers and admins only, like every change to a campaign."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf import FlaskForm

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse
from wtforms import StringField
from wtforms.validators import InputRequired, Length

from engine.models import Role
from engine.runtime import current_runtime
from engine.services.archive import archive_campaign, unarchive_campaign
from engine.services.campaign_copies import duplicate_campaign
from engine.services.campaigns import ChangeRefused, DraftInvalid, campaign_overview
from engine.web.console.auth import current_member, staff_actor, staff_required
from engine.web.errors import error_response

log = logging.getLogger(__name__)

bp = Blueprint("campaign_actions", __name__, url_prefix="/console/campaigns")

DONE_CATEGORY = "campaign-done"  # shown by the overview and the list


class DuplicateForm(FlaskForm):
    slug = StringField(
        lazy_gettext("Slug of the copy (its address: /c/<slug>)"),
        validators=[InputRequired(lazy_gettext("Required.")), Length(max=64)],
    )


class ArchiveForm(FlaskForm):
    """Only the CSRF token: the button says what to do. `back=list` returns to the list."""


@bp.route("/<slug>/duplicate", methods=["GET", "POST"])
@staff_required(Role.MARKETER)
def duplicate(slug: str) -> BaseResponse:
    source = campaign_overview(current_runtime().db, slug).settings
    form = DuplicateForm()
    if request.method == "GET":
        form.slug.data = f"{slug}-copy"[:64]
        return _duplicate_page(source.slug, source.name, form)
    if not form.validate_on_submit():
        return _duplicate_page(source.slug, source.name, form, status=422)
    try:
        copy = duplicate_campaign(current_runtime().db, slug, form.slug.data or "", staff_actor())
    except DraftInvalid as invalid:
        form.slug.errors = [*form.slug.errors, _sentence(invalid.problems.get("slug", str(invalid)))]
        return _duplicate_page(source.slug, source.name, form, status=422)
    log.info("campaign %s duplicated as %s by %s", slug, copy, staff_actor().name)
    flash(_("Campaign %(slug)s created, in draft: a copy of %(source)s.", slug=copy, source=slug), DONE_CATEGORY)
    return redirect(url_for("campaigns_console.overview", slug=copy), code=303)


def _duplicate_page(slug: str, name: str, form: DuplicateForm, *, status: int = 200) -> Response:
    html = render_template(
        "pages/console/campaign_duplicate.html", member=current_member(), slug=slug, name=name, form=form
    )
    return Response(html, status=status)


@bp.post("/<slug>/archive")
@staff_required(Role.MARKETER)
def archive(slug: str) -> BaseResponse:
    runtime = current_runtime()
    return _archiving(
        slug,
        lambda: archive_campaign(runtime.db, slug, staff_actor(), runtime.clock.now()),
        _("Campaign %(slug)s archived.", slug=slug),
    )


@bp.post("/<slug>/unarchive")
@staff_required(Role.MARKETER)
def unarchive(slug: str) -> BaseResponse:
    runtime = current_runtime()
    return _archiving(
        slug,
        lambda: unarchive_campaign(runtime.db, slug, staff_actor()),
        _("Campaign %(slug)s is out of the archive.", slug=slug),
    )


def _archiving(slug: str, change: Callable[[], None], done: str) -> BaseResponse:
    if not ArchiveForm().validate_on_submit():
        return error_response(400, _("This form has expired. Please reload the page and try again."))
    try:
        change()
    except ChangeRefused as refused:
        return error_response(409, _sentence("; ".join(refused.reasons)))
    log.info("campaign %s: %s by %s", slug, request.endpoint, staff_actor().name)
    flash(done, DONE_CATEGORY)
    if request.form.get("back") == "list":
        # Back to the list as it was shown: its search and filter.
        shown: dict[str, Any] = {name: request.form.get(name, "")[:200] for name in ("q", "status")}
        return redirect(url_for("console.home", **{k: v for k, v in shown.items() if v}), code=303)
    return redirect(url_for("campaigns_console.overview", slug=slug), code=303)


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
