"""The console's coupon page: a campaign's codes, loaded from a CSV or generated, and its coupon mode.

Marketers (and admins) see how many codes the campaign has, has given out and has seen
redeemed; upload a CSV of codes; generate codes; and switch coupons on or off. A campaign
whose consent policy allows no incentives (eu-strict) is refused each of these, with the reason.

An upload is spooled to a file under the instance path and imported in a background thread of
this web process, a batch at a time (engine.services.coupons); the POST answers 303 to a
progress page (`.../coupons/imports/<id>`), which reads the import's progress from Redis and
refreshes itself (htmx polling; without JavaScript, a Refresh link) until it shows what was
imported and skipped. Files over MAX_CSV_BYTES go through `flask --app wsgi coupons import`.

Why a thread and not an RQ job: the file lives on this web server's disk, and a worker (on
another machine, or in another container) could not read it; shipping megabytes of codes
through Redis to get it there would cost more than the import. A thread dies with its process
(a deploy, a crash), which is safe: each batch is its own transaction inserting with ON
CONFLICT DO NOTHING, so uploading the file again skips what was written. The progress page
says so when an import has made no progress for STALE_AFTER_SECONDS.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms import IntegerField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from engine.models import Role
from engine.runtime import current_runtime
from engine.services.coupons import (
    MAX_PREFIX_LENGTH,
    BadRow,
    CouponFileRefused,
    CouponMode,
    CouponsNotAllowed,
    ImportReport,
    InvalidCode,
    coupon_counts,
    generate_codes,
    import_codes,
    set_mode,
)
from engine.services.errors import CampaignNotFound
from engine.web.console.auth import current_member, staff_actor, staff_required
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

# Background imports (see the module's docstring).
IMPORTS_FOLDER = "coupon-imports"  # under the app's instance path
PROGRESS_KEY = "fluister:coupon-import:{id}"  # a hash: the import's state and counts
RUNNING_KEY = "fluister:coupon-import-running:{slug}"  # the id of the campaign's running import
PROGRESS_TTL_SECONDS = 24 * 60 * 60  # the progress page works for a day
PROGRESS_INTERVAL_SECONDS = 0.5  # at most two Redis writes a second, however fast batches go
# A running import that has written no progress for this long died with its process. The
# campaign's running-key expires after it too, so a new upload is then accepted.
STALE_AFTER_SECONDS = 30
# A spooled file left behind by a process that died is removed by a later upload.
LEFTOVER_AFTER_SECONDS = 24 * 60 * 60
_IMPORT_ID = re.compile(r"[0-9a-f]{32}")
_THREADS_KEY = "fluister.coupon-import-threads"

MODE_LABELS = {
    CouponMode.NONE: "Off: messages and the landing page show no code",
    CouponMode.POOL: "From uploaded codes: when they run out, friends get no code",
    CouponMode.GENERATED: "Generated: uploaded or generated codes first, then a new code for each friend",
}


class UploadForm(FlaskForm):
    file = FileField("CSV file of codes", validators=[FileRequired("Choose a CSV file of codes.")])


class GenerateForm(FlaskForm):
    count = IntegerField(
        "How many codes",
        validators=[
            InputRequired("Say how many codes to generate."),
            NumberRange(1, MAX_CONSOLE_GENERATE, f"From 1 to {MAX_CONSOLE_GENERATE:,} at a time."),
        ],
    )
    prefix = StringField("Prefix (optional)", validators=[Optional(), Length(max=MAX_PREFIX_LENGTH)])


class ModeForm(FlaskForm):
    mode = RadioField(
        "Coupons",
        choices=[SelectChoice(mode.value, label) for mode, label in MODE_LABELS.items()],
        validators=[DataRequired("Choose how friends get their codes.")],
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
def upload_too_large(_error: RequestEntityTooLarge) -> Response:
    return error_response(
        413,
        f"That file is larger than the {MAX_CSV_BYTES // (1024 * 1024)} MiB the console takes. "
        f"Import it from the command line instead: {CLI_HINT} (it shows its progress as it goes).",
    )


@bp.route("/<slug>/coupons", methods=["GET", "POST"])
@accepts_files("file")
@staff_required(Role.MARKETER)
def coupons(slug: str) -> Response:
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
    return _page(slug, forms, refusal="Choose one of the forms on this page.", status=422)


def _upload(slug: str, forms: _Forms) -> Response:
    if not forms.upload.validate_on_submit():
        return _page(slug, forms, status=422)
    runtime = current_runtime()
    counts = coupon_counts(runtime.db, slug)
    if counts.refusal:
        # Refused here, with the form, rather than on the progress page a moment later.
        return _page(slug, forms, refusal=f"Nothing was imported. {_sentence(counts.refusal)}", status=422)
    import_id = secrets.token_hex(16)
    connection = runtime.queue.connection
    if not connection.set(RUNNING_KEY.format(slug=slug), import_id, nx=True, ex=STALE_AFTER_SECONDS):
        return _page(
            slug,
            forms,
            refusal="Codes are being imported for this campaign already: wait until that is done, then upload again.",
            status=409,
        )
    path = _spool_path(import_id)
    try:
        size = _spool(forms.upload.file.data.stream, path)
        job = _ImportJob(import_id, slug, _starter(), path, size)
        writer = _ProgressWriter(connection, job)
        writer.start()
        _start_thread(current_app._get_current_object(), job, writer)  # type: ignore[attr-defined]
    except BaseException:
        path.unlink(missing_ok=True)
        _release(connection, slug, import_id)
        raise
    log.info("coupon import %s for %s started by %s (%d bytes)", import_id, slug, _who(), size)
    return redirect(url_for("coupons_console.import_progress", slug=slug, import_id=import_id), code=303)


def _generate(slug: str, forms: _Forms) -> Response:
    if not forms.generate.validate_on_submit():
        return _page(slug, forms, status=422)
    count = forms.generate.count.data or 0
    try:
        made = generate_codes(current_runtime().db, slug, count, prefix=(forms.generate.prefix.data or "").strip())
    except InvalidCode as invalid:
        forms.generate.prefix.errors = [_sentence(str(invalid))]
        return _page(slug, forms, status=422)
    except CouponsNotAllowed as refused:
        return _page(slug, forms, refusal=f"No codes were generated. {refused}", status=422)
    log.info("%d coupon codes generated for %s by %s", made, slug, _who())
    flash(f"{made:,} codes generated.", _DONE_CATEGORY)
    return redirect(url_for("coupons_console.coupons", slug=slug), code=303)


def _switch_mode(slug: str, forms: _Forms) -> Response:
    if not forms.mode.validate_on_submit():
        return _page(slug, forms, status=422)
    mode = CouponMode(forms.mode.mode.data)
    try:
        set_mode(current_runtime().db, slug, mode, staff_actor())
    except CouponsNotAllowed as refused:
        return _page(slug, forms, refusal=f"Coupons stay off. {refused}", status=422)
    log.info("coupon mode of %s set to %s by %s", slug, mode.value, _who())
    flash(f"Coupons: {MODE_LABELS[mode].split(':')[0].lower()}.", _DONE_CATEGORY)
    return redirect(url_for("coupons_console.coupons", slug=slug), code=303)


def _page(
    slug: str,
    forms: _Forms,
    *,
    refusal: str | None = None,
    status: int = 200,
) -> Response:
    counts = coupon_counts(current_runtime().db, slug)
    if request.method == "GET" or not forms.mode.mode.data:
        forms.mode.mode.data = counts.mode
    running = _redis().get(RUNNING_KEY.format(slug=slug))
    html = render_template(
        "pages/console/coupons.html",
        member=current_member(),
        counts=counts,
        running_url=url_for("coupons_console.import_progress", slug=slug, import_id=running.decode())
        if running
        else None,
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
def import_progress(slug: str, import_id: str) -> Response:
    progress = ImportProgress.load(_redis(), import_id) if _IMPORT_ID.fullmatch(import_id) else None
    if progress is None or progress.campaign != slug:
        # Unknown, expired, or another campaign's: the id says nothing about other campaigns.
        return error_response(404, "There is no such import of codes for this campaign (its page is kept for a day).")
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

RUNNING, DONE, FAILED = "running", "done", "failed"


@dataclass(frozen=True)
class _ImportJob:
    id: str
    slug: str
    started_by: str
    path: Path  # the spooled upload, removed when the import ends
    size: int  # bytes


@dataclass
class ImportProgress:
    """An import as the progress page shows it, read back from its Redis hash."""

    state: str
    campaign: str
    started_by: str
    started_at: float  # Unix time: web processes on several machines read it
    updated_at: float
    bytes_total: int
    bytes_read: int
    report: ImportReport = field(default_factory=ImportReport)
    error: str | None = None

    @property
    def interrupted(self) -> bool:
        """Still `running`, but silent for too long: its process died (a deploy, a crash)."""
        return self.state == RUNNING and time.time() - self.updated_at > STALE_AFTER_SECONDS

    @property
    def polling(self) -> bool:
        return self.state == RUNNING and not self.interrupted

    @property
    def percent(self) -> int:
        return min(100, 100 * self.bytes_read // self.bytes_total) if self.bytes_total else 0

    @property
    def bytes_text(self) -> str:
        return f"{_size(self.bytes_read)} of {_size(self.bytes_total)}"

    @classmethod
    def load(cls, connection: redis.Redis, import_id: str) -> ImportProgress | None:
        raw = connection.hgetall(PROGRESS_KEY.format(id=import_id))
        if not raw:
            return None
        values = {_text(key): _text(value) for key, value in raw.items()}
        report = ImportReport(
            lines_read=int(values.get("lines_read", 0)),
            codes_read=int(values.get("codes_read", 0)),
            imported=int(values.get("imported", 0)),
            duplicates_in_file=int(values.get("duplicates_in_file", 0)),
            already_there=int(values.get("already_there", 0)),
            bad=int(values.get("bad", 0)),
            bad_rows=[BadRow(line, reason) for line, reason in json.loads(values.get("bad_rows", "[]"))],
        )
        return cls(
            state=values["state"],
            campaign=values["campaign"],
            started_by=values.get("started_by", ""),
            started_at=float(values["started_at"]),
            updated_at=float(values["updated_at"]),
            bytes_total=int(values.get("bytes_total", 0)),
            bytes_read=int(values.get("bytes_read", 0)),
            report=report,
            error=values.get("error") or None,
        )


class _ProgressWriter:
    """The import's progress callback: writes the report's counts to the import's Redis hash, at
    most every PROGRESS_INTERVAL_SECONDS, and keeps the campaign's running-key alive meanwhile."""

    def __init__(self, connection: redis.Redis, job: _ImportJob) -> None:
        self.connection = connection
        self.job = job
        self.report = ImportReport()  # import_codes fills it in as it goes
        self.spool: IO[bytes] | None = None  # the file being read: its position is the bytes read
        self._bytes_read = 0
        self._written_at = 0.0

    def start(self) -> None:
        """The hash as the progress page first sees it (written before the POST answers, so the
        page never finds the id unknown)."""
        now = time.time()
        self._write(
            {"state": RUNNING, "campaign": self.job.slug, "started_by": self.job.started_by, "started_at": now},
            strict=True,
        )

    def __call__(self, _lines_read: int) -> None:
        if self.spool is not None:
            # Where the reader is in the file (it reads ahead a few KiB: close enough for a bar).
            self._bytes_read = self.spool.tell()
        if time.monotonic() - self._written_at >= PROGRESS_INTERVAL_SECONDS:
            self._write({"state": RUNNING})

    def finish(self, state: str, error: str | None = None) -> None:
        if state == DONE:
            self._bytes_read = self.job.size
        self._write({"state": state, "error": error or ""}, done=True)

    def _write(self, fields: dict[str, Any], *, done: bool = False, strict: bool = False) -> None:
        self._written_at = time.monotonic()
        report = self.report
        values = {
            **fields,
            "updated_at": time.time(),
            "bytes_total": self.job.size,
            "bytes_read": self._bytes_read,
            "lines_read": report.lines_read,
            "codes_read": report.codes_read,
            "imported": report.imported,
            "duplicates_in_file": report.duplicates_in_file,
            "already_there": report.already_there,
            "bad": report.bad,
            "bad_rows": json.dumps([[bad.line, bad.reason] for bad in report.bad_rows]),
        }
        key = PROGRESS_KEY.format(id=self.job.id)
        try:
            with self.connection.pipeline() as pipe:
                pipe.hset(key, mapping=values)
                pipe.expire(key, PROGRESS_TTL_SECONDS)
                if not done:
                    pipe.expire(RUNNING_KEY.format(slug=self.job.slug), STALE_AFTER_SECONDS)
                pipe.execute()
        except redis.RedisError:
            if strict:
                raise
            # The import goes on without its progress page: what it writes is what matters.
            log.warning("coupon import %s: its progress could not be written to Redis", self.job.id, exc_info=True)


def _start_thread(app: Flask, job: _ImportJob, writer: _ProgressWriter) -> None:
    thread = threading.Thread(target=_run, args=(app, job, writer), name=f"coupon-import-{job.id}", daemon=True)
    threads: dict[str, threading.Thread] = app.extensions.setdefault(_THREADS_KEY, {})
    threads[job.id] = thread
    thread.start()


def _run(app: Flask, job: _ImportJob, writer: _ProgressWriter) -> None:
    """The thread: import the spooled file, remove it, then say how it ended."""
    with app.app_context():
        state, error = FAILED, None
        try:
            with job.path.open("rb") as spool:
                writer.spool = spool
                with io.TextIOWrapper(spool, encoding="utf-8-sig", errors="replace", newline="") as text:
                    import_codes(current_runtime().db, job.slug, text, progress=writer, report=writer.report)
            state = DONE
            log.info("coupon import %s for %s: %s", job.id, job.slug, writer.report.summary())
        except (CampaignNotFound, CouponsNotAllowed, CouponFileRefused) as refused:
            error = _sentence(str(refused))
            log.info("coupon import %s for %s stopped: %s", job.id, job.slug, refused)
        except Exception:
            error = "Something went wrong on our side."
            log.exception("coupon import %s for %s failed", job.id, job.slug)
        finally:
            writer.spool = None
            # Removed before the state says the import ended: whoever waits for that finds it gone.
            job.path.unlink(missing_ok=True)
            writer.finish(state, error)
            _release(writer.connection, job.slug, job.id)
            app.extensions.get(_THREADS_KEY, {}).pop(job.id, None)


def _spool_path(import_id: str) -> Path:
    return Path(current_app.instance_path) / IMPORTS_FOLDER / f"{import_id}.csv"


def _spool(stream: IO[bytes], path: Path) -> int:
    """Copy the upload to `path`, readable by this user alone (codes are worth money); its size."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _remove_leftovers(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as spool:
        shutil.copyfileobj(stream, spool)
        return spool.tell()


def _remove_leftovers(folder: Path) -> None:
    """Files of imports whose process died with them (a finished import removes its own)."""
    too_old = time.time() - LEFTOVER_AFTER_SECONDS
    for leftover in folder.glob("*.csv"):
        try:
            if leftover.stat().st_mtime < too_old:
                leftover.unlink()
        except FileNotFoundError:
            pass  # removed by another process just now


def _release(connection: redis.Redis, slug: str, import_id: str) -> None:
    """Let the campaign take another import, unless the key is already another import's (ours
    expired while a batch took long, and a new upload took it)."""
    key = RUNNING_KEY.format(slug=slug)
    try:
        if _text(connection.get(key) or b"") == import_id:
            connection.delete(key)
    except redis.RedisError:
        log.warning("coupon import %s: the running-key of %s could not be removed (it expires)", import_id, slug)


def wait_for_imports(app: Flask, timeout: float = 60.0) -> None:
    """Wait until the app's background imports have ended (for tests, and a clean shutdown)."""
    threads: dict[str, threading.Thread] = app.extensions.get(_THREADS_KEY, {})
    deadline = time.monotonic() + timeout
    for import_id, thread in list(threads.items()):
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            raise TimeoutError(f"coupon import {import_id} still runs after {timeout} s")
        threads.pop(import_id, None)


def _size(count: int) -> str:
    if count < 1024 * 1024:
        return f"{count / 1024:,.0f} KiB"
    return f"{count / (1024 * 1024):,.1f} MiB"


def _redis() -> redis.Redis:
    return current_runtime().queue.connection


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _starter() -> str:
    member = current_member()
    return member.name if member else "?"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _who() -> str:
    member = current_member()
    return f"{member.kind} {member.id}" if member else "?"
