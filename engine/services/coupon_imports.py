"""Importing an uploaded CSV of coupon codes in the background, and the import's progress.

An upload is spooled to a file in a folder of this process (readable by its user alone: codes
are worth money) and imported in a background thread, a batch at a time
(engine.services.coupons.import_codes), while its progress is written to a Redis hash that any
web process can read back (`ImportProgress`). One import runs per campaign at a time: a Redis
key names it, kept alive while it writes progress.

Why a thread and not an RQ job: the file lives on this web server's disk, and a worker (on
another machine, or in another container) could not read it; shipping megabytes of codes
through Redis to get it there would cost more than the import. A thread dies with its process
(a deploy, a crash), which is safe: each batch is its own transaction inserting with ON
CONFLICT DO NOTHING, so uploading the file again skips what was written. The progress says so
when an import has made no progress for STALE_AFTER_SECONDS.
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

from engine.db import Database
from engine.services.coupons import (
    BadRow,
    CouponFileRefused,
    CouponsNotAllowed,
    ImportReport,
    coupon_counts,
    import_codes,
)
from engine.services.lookups import CampaignNotFound

log = logging.getLogger(__name__)

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

RUNNING, DONE, FAILED = "running", "done", "failed"


class ImportRefused(Exception):
    """The campaign's policy allows no coupons: nothing is spooled or started."""


class ImportAlreadyRunning(Exception):
    """The campaign has an import running: one at a time."""


@dataclass(frozen=True)
class ImportJob:
    id: str
    slug: str
    started_by: str
    path: Path  # the spooled upload, removed when the import ends
    size: int  # bytes


def start_import(
    db: Database,
    connection: redis.Redis,
    threads: ImportThreads,
    folder: Path,
    slug: str,
    started_by: str,
    upload: IO[bytes],
) -> ImportJob:
    """Spool the upload into `folder` and import it in a thread; its progress is in Redis from
    before this returns (so a progress page never finds the id unknown). Raises ImportRefused,
    ImportAlreadyRunning, or redis.RedisError when the import cannot be announced."""
    refusal = coupon_counts(db, slug).refusal
    if refusal:
        raise ImportRefused(refusal)
    import_id = secrets.token_hex(16)
    if not connection.set(RUNNING_KEY.format(slug=slug), import_id, nx=True, ex=STALE_AFTER_SECONDS):
        raise ImportAlreadyRunning(slug)
    path = folder / f"{import_id}.csv"
    try:
        job = ImportJob(import_id, slug, started_by, path, _spool(upload, path))
        writer = _ProgressWriter(connection, job)
        writer.start()
        threads.start(db, job, writer)
    except BaseException:
        path.unlink(missing_ok=True)
        _release(connection, slug, import_id)
        raise
    return job


def running_import(connection: redis.Redis, slug: str) -> str | None:
    """The id of the campaign's running import, if one runs."""
    running = connection.get(RUNNING_KEY.format(slug=slug))
    return _text(running) if running else None


def load_progress(connection: redis.Redis, slug: str, import_id: str) -> ImportProgress | None:
    """The import's progress; None when unknown, expired, or another campaign's (the id says
    nothing about other campaigns)."""
    progress = ImportProgress.load(connection, import_id) if _IMPORT_ID.fullmatch(import_id) else None
    if progress is None or progress.campaign != slug:
        return None
    return progress


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

    def __init__(self, connection: redis.Redis, job: ImportJob) -> None:
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


class ImportThreads:
    """The imports running in background threads of this process."""

    def __init__(self) -> None:
        self._threads: dict[str, threading.Thread] = {}

    def start(self, db: Database, job: ImportJob, writer: _ProgressWriter) -> None:
        thread = threading.Thread(target=self._run, args=(db, job, writer), name=f"coupon-import-{job.id}", daemon=True)
        self._threads[job.id] = thread
        thread.start()

    def wait(self, timeout: float = 60.0) -> None:
        """Wait until every import has ended (for tests, and a clean shutdown)."""
        deadline = time.monotonic() + timeout
        for import_id, thread in list(self._threads.items()):
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                raise TimeoutError(f"coupon import {import_id} still runs after {timeout} s")
            self._threads.pop(import_id, None)

    def _run(self, db: Database, job: ImportJob, writer: _ProgressWriter) -> None:
        """The thread: import the spooled file, remove it, then say how it ended."""
        state, error = FAILED, None
        try:
            with job.path.open("rb") as spool:
                writer.spool = spool
                with io.TextIOWrapper(spool, encoding="utf-8-sig", errors="replace", newline="") as text:
                    import_codes(db, job.slug, text, progress=writer, report=writer.report)
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
            self._threads.pop(job.id, None)


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


def _size(count: int) -> str:
    if count < 1024 * 1024:
        return f"{count / 1024:,.0f} KiB"
    return f"{count / (1024 * 1024):,.1f} MiB"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
