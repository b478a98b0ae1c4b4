"""The console's coupon page: a campaign's codes, loaded from a CSV or generated, and its coupon mode.

Marketers (and admins) see how many codes the campaign has, has given out and has seen
redeemed; upload a CSV of codes; generate codes; and switch coupons on or off. A campaign
whose consent policy allows no incentives (eu-strict) is refused each of these, with the reason.

An upload is imported in the background (engine.services.coupon_imports: spooled under the
instance path, imported by a worker's job, or a thread in the embedded mode, a batch at a
time); the POST answers
303 to a progress page (`.../coupons/imports/<id>`), which reads the import's progress from
Redis and refreshes itself (htmx polling; without JavaScript, a Refresh link) until it shows
what was imported and skipped. Files over MAX_CSV_BYTES go through
`flask --app wsgi coupons import`.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext, ngettext
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from werkzeug.exceptions import RequestEntityTooLarge

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse
from wtforms import IntegerField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from engine.models import Role
from engine.runtime import current_runtime, runtime_of
from engine.services.coupon_imports import (
    RUNNING,
    STALE_AFTER_SECONDS,
    ImportAlreadyRunning,
    ImportRefused,
)
from engine.services.coupons import (
    MAX_PREFIX_LENGTH,
    CouponMode,
    CouponsNotAllowed,
    InvalidCode,
    coupon_counts,
    generate_codes,
    set_mode,
)
from engine.web.console.auth import current_member, staff_actor, staff_required
from engine.web.console.formats import number
from engine.web.errors import error_response
from engine.web.inputs import accepts_files

log = logging.getLogger(__name__)

bp = Blueprint("coupons_console", __name__, url_prefix="/console/campaigns")

# About half a million codes, imported in well under a minute. Larger files: the CLI.
MAX_CSV_BYTES = 8 * 1024 * 1024
MAX_REQUEST_BYTES = MAX_CSV_BYTES + 64 * 1024
MAX_CONSOLE_GENERATE = 100_000
_DONE_CATEGORY = "coupons-done"
CLI_HINT = "flask --app wsgi coupons import SLUG FILE.csv"


MODE_LABELS = {
    CouponMode.NONE: lazy_gettext("Off: messages and the landing page show no code"),
    CouponMode.POOL: lazy_gettext("From uploaded codes: when they run out, friends get no code"),
    CouponMode.GENERATED: lazy_gettext("Generated: uploaded or generated codes first, then a new code for each friend"),
}
# What the page says once a mode is saved.
MODE_DONE = {
    CouponMode.NONE: lazy_gettext("Coupons: off."),
    CouponMode.POOL: lazy_gettext("Coupons: from uploaded codes."),
    CouponMode.GENERATED: lazy_gettext("Coupons: generated."),
}


class UploadForm(FlaskForm):
    file = FileField(
        lazy_gettext("CSV file of codes"), validators=[FileRequired(lazy_gettext("Choose a CSV file of codes."))]
    )


class GenerateForm(FlaskForm):
    count = IntegerField(
        lazy_gettext("How many codes"),
        validators=[
            InputRequired(lazy_gettext("Say how many codes to generate.")),
            NumberRange(
                1, MAX_CONSOLE_GENERATE, lazy_gettext("From 1 to %(most)s at a time.", most=f"{MAX_CONSOLE_GENERATE:,}")
            ),
        ],
    )
    prefix = StringField(lazy_gettext("Prefix (optional)"), validators=[Optional(), Length(max=MAX_PREFIX_LENGTH)])


class ModeForm(FlaskForm):
    mode = RadioField(
        lazy_gettext("Coupons"),
        choices=[SelectChoice(mode.value, label) for mode, label in MODE_LABELS.items()],
        validators=[DataRequired(lazy_gettext("Choose how friends get their codes."))],
    )


class _Forms:
    """The page's three forms; a POST says which one it is with its button (`action`)."""

    def __init__(self) -> None:
        self.upload = UploadForm()
        self.generate = GenerateForm()
        self.mode = ModeForm()


@bp.url_value_preprocessor
def allow_uploads(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # A CSV is larger than the app's form limit (MAX_CONTENT_LENGTH). This runs before any
    # before_request hook, so CSRFProtect, which reads the form first, already sees this limit.
    request.max_content_length = MAX_REQUEST_BYTES


@bp.errorhandler(RequestEntityTooLarge)
def upload_too_large(_error: RequestEntityTooLarge) -> BaseResponse:
    return error_response(
        413,
        _(
            "That file is larger than the %(mib)s MiB the console takes. Import it from the command line instead:"
            " %(command)s (it shows its progress as it goes).",
            mib=MAX_CSV_BYTES // (1024 * 1024),
            command=CLI_HINT,
        ),
    )


@bp.route("/<slug>/coupons", methods=["GET", "POST"])
@accepts_files("file")
@staff_required(Role.MARKETER)
def coupons(slug: str) -> BaseResponse:
    forms = _Forms()
    if request.method == "GET":
        return _page(slug, forms)
    action = request.form.get("action")
    if action == "upload":
        return _upload(slug, forms)
    if action == "generate":
        return _generate(slug, forms)
    if action == "mode":
        return _switch_mode(slug, forms)
    return _page(slug, forms, refusal=_("Choose one of the forms on this page."), status=422)


def _upload(slug: str, forms: _Forms) -> BaseResponse:
    if not forms.upload.validate_on_submit():
        return _page(slug, forms, status=422)
    runtime = current_runtime()
    upload = forms.upload.file.data.stream
    try:
        job = runtime.coupon_imports.start(slug, _starter(), upload)
    except ImportRefused as refused:
        # Refused here, with the form, rather than on the progress page a moment later.
        return _page(slug, forms, refusal=f"{_('Nothing was imported.')} {_sentence(str(refused))}", status=422)
    except ImportAlreadyRunning:
        return _page(
            slug,
            forms,
            refusal=_(
                "Codes are being imported for this campaign already: wait until that is done, then upload again."
            ),
            status=409,
        )
    log.info("coupon import %s for %s started by %s (%d bytes)", job.id, slug, _who(), job.size)
    return redirect(url_for("coupons_console.import_progress", slug=slug, import_id=job.id), code=303)


def _generate(slug: str, forms: _Forms) -> BaseResponse:
    if not forms.generate.validate_on_submit():
        return _page(slug, forms, status=422)
    count = forms.generate.count.data or 0
    try:
        made = generate_codes(current_runtime().db, slug, count, prefix=(forms.generate.prefix.data or "").strip())
    except InvalidCode as invalid:
        forms.generate.prefix.errors = [_sentence(str(invalid))]
        return _page(slug, forms, status=422)
    except CouponsNotAllowed as refused:
        return _page(slug, forms, refusal=f"{_('No codes were generated.')} {refused}", status=422)
    log.info("%d coupon codes generated for %s by %s", made, slug, _who())
    flash(ngettext("%(count)s code generated.", "%(count)s codes generated.", made, count=number(made)), _DONE_CATEGORY)
    return redirect(url_for("coupons_console.coupons", slug=slug), code=303)


def _switch_mode(slug: str, forms: _Forms) -> BaseResponse:
    if not forms.mode.validate_on_submit():
        return _page(slug, forms, status=422)
    mode = CouponMode(forms.mode.mode.data)
    try:
        set_mode(current_runtime().db, slug, mode, staff_actor())
    except CouponsNotAllowed as refused:
        return _page(slug, forms, refusal=f"{_('Coupons stay off.')} {refused}", status=422)
    log.info("coupon mode of %s set to %s by %s", slug, mode.value, _who())
    flash(str(MODE_DONE[mode]), _DONE_CATEGORY)
    return redirect(url_for("coupons_console.coupons", slug=slug), code=303)


def _page(
    slug: str,
    forms: _Forms,
    *,
    refusal: str | None = None,
    status: int = 200,
) -> BaseResponse:
    counts = coupon_counts(current_runtime().db, slug)
    if request.method == "GET" or not forms.mode.mode.data:
        forms.mode.mode.data = counts.mode
    running = current_runtime().coupon_imports.running(slug)
    html = render_template(
        "pages/console/coupons.html",
        member=current_member(),
        counts=counts,
        running_url=url_for("coupons_console.import_progress", slug=slug, import_id=running) if running else None,
        forms=forms,
        refusal=refusal,
        done=get_flashed_messages(category_filter=[_DONE_CATEGORY]),
        max_csv_mib=MAX_CSV_BYTES // (1024 * 1024),
        max_generate=MAX_CONSOLE_GENERATE,
        cli_hint=CLI_HINT.replace("SLUG", slug),
    )
    return Response(html, status=status)


# -- the progress page ---------------------------------------------------------------------------


@bp.get("/<slug>/coupons/imports/<import_id>")
@staff_required(Role.MARKETER)
def import_progress(slug: str, import_id: str) -> BaseResponse:
    progress = current_runtime().coupon_imports.progress(slug, import_id)
    if progress is None:
        # Unknown, expired, or another campaign's: the id says nothing about other campaigns.
        return error_response(
            404, _("There is no such import of codes for this campaign (its page is kept for a day).")
        )
    counts = coupon_counts(current_runtime().db, slug) if progress.state != RUNNING else None
    html = render_template(
        "pages/console/coupons_import.html",
        member=current_member(),
        slug=slug,
        progress=progress,
        counts=counts,
        stale_after=STALE_AFTER_SECONDS,
        self_url=url_for("coupons_console.import_progress", slug=slug, import_id=import_id),
    )
    return Response(html)


# -- importing in the background --------------------------------------------------------------------


def wait_for_imports(app: Flask, timeout: float = 60.0) -> None:
    """Wait until the app's background imports have ended (for tests, and a clean shutdown)."""
    runtime_of(app).coupon_imports.wait(timeout)


def _starter() -> str:
    member = current_member()
    return member.name if member else "?"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _who() -> str:
    member = current_member()
    return f"{member.kind} {member.id}" if member else "?"
