"""The compliance console: the opt-out log (filters, details, CSV export) and contact reports.

Contacts typed into a search form are POSTed, hashed here and the browser is sent on to a
URL that carries only the hash: the plaintext never lands in an access log or a history.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, stream_with_context, url_for
from flask_babel import gettext as _

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse

from engine.models import Role, SuppressionSource
from engine.runtime import current_runtime
from engine.services.compliance import (
    CSV_HEADER,
    MAX_SEQ,
    FilterError,
    OptOutFilter,
    campaign_regions,
    contact_hashes_of,
    contact_report,
    iter_opt_outs,
    opt_out_entry,
    opt_out_page,
    region_choices,
)
from engine.spreadsheet import safe_row
from engine.web.console.auth import current_member, staff_required
from engine.web.console.formats import staff_zone
from engine.web.errors import error_response

log = logging.getLogger(__name__)

bp = Blueprint("compliance", __name__, url_prefix="/compliance")

SOURCES = [s.value for s in SuppressionSource]


def _filter_from(args: dict[str, str], *, plaintext: bool = False) -> OptOutFilter:
    """The filters typed or linked: a number read in the countries of the campaign named (or of
    every campaign), the days in the reader's time zone."""
    runtime = current_runtime()
    regions = _regions((args.get("campaign") or "").strip() or None) if plaintext else ()
    return OptOutFilter.from_args(args, runtime.hasher, regions, plaintext=plaintext, zone=staff_zone())


def _regions(slug: str | None) -> tuple[str, ...]:
    """Where a number typed without its country code may be from: the campaign's regions, or
    every campaign's (the installation's DEFAULT_PHONE_REGION when there is none)."""
    runtime = current_runtime()
    return campaign_regions(runtime.db, slug, fallback=runtime.settings.default_phone_region)


@bp.route("/opt-outs", methods=["GET", "POST"])
@staff_required(Role.COMPLIANCE)
def opt_outs() -> BaseResponse:
    submitted = request.form if request.method == "POST" else request.args
    try:
        wanted = _filter_from(submitted.to_dict(), plaintext=request.method == "POST")
    except FilterError as error:
        return _log_page(OptOutFilter(), None, error=str(error), status=400)
    if request.method == "POST":
        # Back to a GET that carries the contact's hash only.
        # Any: url_for takes the query's values as **Any (a str-typed dict could clash with _external).
        query: dict[str, Any] = wanted.as_args()
        return redirect(url_for("compliance.opt_outs", **query), code=303)
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before <= MAX_SEQ:
        before = None
    return _log_page(wanted, before)


def _log_page(wanted: OptOutFilter, before: int | None, *, error: str | None = None, status: int = 200) -> BaseResponse:
    page = opt_out_page(current_runtime().db, wanted, before) if error is None else None
    html = render_template(
        "pages/compliance/opt_outs.html",
        member=current_member(),
        wanted=wanted,
        page=page,
        error=error,
        sources=SOURCES,
        args=wanted.as_args(),
    )
    return Response(html, status=status)


@bp.get("/opt-outs.csv")
@staff_required(Role.COMPLIANCE)
def opt_outs_csv() -> BaseResponse:
    try:
        wanted = _filter_from(request.args.to_dict())
    except FilterError as error:
        return error_response(400, str(error))
    db = current_runtime().db
    log.info("opt-out log exported with filters %s", sorted(wanted.as_args()))

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_HEADER)
        for rows in iter_opt_outs(db, wanted):
            writer.writerows(safe_row(row) for row in rows)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    response = Response(stream_with_context(lines()), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="opt-outs.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/opt-outs/<int:seq>")
@staff_required(Role.COMPLIANCE)
def opt_out_detail(seq: int) -> BaseResponse:
    row = opt_out_entry(current_runtime().db, seq) if seq <= MAX_SEQ else None
    if row is None:
        return error_response(404, _("The opt-out log has no entry %(seq)s.", seq=seq))
    return Response(render_template("pages/compliance/opt_out.html", member=current_member(), row=row))


@bp.route("/contacts", methods=["GET", "POST"])
@staff_required(Role.COMPLIANCE)
def contact_search() -> BaseResponse:
    error = None
    db = current_runtime().db
    choices = region_choices(db, fallback=current_runtime().settings.default_phone_region)
    chosen = (request.form.get("campaign") or "").strip() or None
    if request.method == "POST":
        runtime = current_runtime()
        try:
            if chosen is not None and chosen not in {c.slug for c in choices}:
                raise FilterError(_("Choose a campaign from the list."))
            contact_hash, legacy_hash = contact_hashes_of(
                (request.form.get("contact") or "").strip(),
                runtime.hasher,
                _regions(chosen),
                first_region_wins=chosen is not None,
            )
        except FilterError as problem:
            error = str(problem)
        else:
            # The hash older versions kept for this spelling rides along: their log entries keep it.
            legacy: dict[str, Any] = {"legacy": legacy_hash} if legacy_hash else {}
            return redirect(url_for("compliance.contact", contact_hash=contact_hash, **legacy), code=303)
    html = render_template(
        "pages/compliance/contact_search.html",
        member=current_member(),
        error=error,
        campaigns=choices,
        chosen=chosen,
        all_regions=_regions(None),
    )
    return Response(html, status=400 if error else 200)


@bp.get("/contacts/<contact_hash>")
@staff_required(Role.COMPLIANCE)
def contact(contact_hash: str) -> BaseResponse:
    legacy_hash = request.args.get("legacy") or None
    try:
        OptOutFilter(contact_hash=contact_hash, legacy_hash=legacy_hash)
    except FilterError:
        return error_response(404, _("That is not a contact reference."))
    report = contact_report(current_runtime().db, contact_hash, legacy_hash)
    return Response(render_template("pages/compliance/contact.html", member=current_member(), report=report))
