"""Importing an uploaded CSV of coupon codes in the background, and the import's progress.

An upload is spooled to a file in the instance folder (readable by its user alone: codes are
worth money) and imported in the background, a batch at a time
(engine.services.coupons.import_codes), while its progress is written to a Redis hash that any
web process can read back (`ImportProgress`). One import runs per campaign at a time: a Redis
key names it, kept alive while it writes progress.

With Redis the import is an RQ job (`workers.jobs.import_coupons`) that takes the import's id,
never the codes: a worker reads the spooled file from the same instance folder, so web
processes and workers must share that folder (INSTANCE_PATH on a shared volume when they run
on different machines). In the embedded mode (no Redis, one process) it runs in a thread of
the process instead. Either way the import may die with its process (a deploy, a crash), which
is safe: each batch is its own transaction inserting with ON CONFLICT DO NOTHING, so uploading
the file again skips what was written. The progress says so when an import has made no
progress for STALE_AFTER_SECONDS, and the scheduler removes files such imports left behind.
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
from typing import IO, TYPE_CHECKING

import redis
from redis.typing import EncodableT, FieldT

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

if TYPE_CHECKING:
    from engine.queue import RQJobQueue

log = logging.getLogger(__name__)

# Both under the installation's REDIS_KEY_PREFIX.
PROGRESS_KEY = "coupon-import:{id}"  # a hash: the import's state and counts
RUNNING_KEY = "coupon-import-running:{slug}"  # the id of the campaign's running import
IMPORT_JOB = "workers.jobs.import_coupons"
IMPORTS_FOLDER = "coupon-imports"  # under the instance path, which web and workers share
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


class CouponImports:
    """The runtime's coupon imports: starts them, runs them (as a job or in a thread) and reads
    their progress back, under one Redis key prefix and one spool folder."""

    def __init__(
        self,
        db: Database,
        connection: redis.Redis,
        folder: Path,
        *,
        queue: RQJobQueue | None = None,
        key_prefix: str = "fluister:",
    ) -> None:
        self._db = db
        self.connection = connection
        self.folder = folder
        # None: the embedded mode, where imports run in threads of this process.
        self._queue = queue
        self.key_prefix = key_prefix
        self.threads = ImportThreads()

    def start(self, slug: str, started_by: str, upload: IO[bytes]) -> ImportJob:
        """Spool the upload and have it imported in the background; its progress is in Redis
        from before this returns (so a progress page never finds the id unknown). Raises
        ImportRefused, ImportAlreadyRunning, or redis.RedisError (QueueUnavailable) when the
        import cannot be announced or queued."""
        refusal = coupon_counts(self._db, slug).refusal
        if refusal:
            raise ImportRefused(refusal)
        import_id = secrets.token_hex(16)
        keys = _Keys(self.key_prefix)
        if not self.connection.set(keys.running(slug), import_id, nx=True, ex=STALE_AFTER_SECONDS):
            raise ImportAlreadyRunning(slug)
        path = self._path(import_id)
        try:
            job = ImportJob(import_id, slug, started_by, path, _spool(upload, path))
            writer = _ProgressWriter(self.connection, job, keys)
            writer.start()
            if self._queue is None:
                self.threads.start(self._db, job, writer)
            else:
                self._queue.enqueue(IMPORT_JOB, import_id)
        except BaseException:
            path.unlink(missing_ok=True)
            _release(self.connection, keys, slug, import_id)
            raise
        return job

    def run(self, import_id: str) -> None:
        """The RQ job: import the spooled file the id names (its campaign and size are in its
        progress hash). An id whose progress is gone or no longer running is left alone."""
        progress = (
            ImportProgress.load(self.connection, self.key_prefix, import_id)
            if _IMPORT_ID.fullmatch(import_id)
            else None
        )
        if progress is None or progress.state != RUNNING:
            log.warning("coupon import %s: nothing to run (unknown, expired or ended)", import_id)
            return
        keys = _Keys(self.key_prefix)
        job = _job_of(import_id, progress, self._path(import_id))
        writer = _ProgressWriter(self.connection, job, keys)
        if not job.path.exists():
            log.error("coupon import %s: its file is not in %s (do web and workers share it?)", import_id, self.folder)
            writer.finish(FAILED, "The uploaded file could not be found by the worker. Upload it again.")
            _release(self.connection, keys, job.slug, import_id)
            return
        _run_import(self._db, job, writer)

    def running(self, slug: str) -> str | None:
        """The id of the campaign's running import, if one runs."""
        running = self.connection.get(_Keys(self.key_prefix).running(slug))
        return _text(running) if running else None

    def progress(self, slug: str, import_id: str) -> ImportProgress | None:
        """The import's progress; None when unknown, expired, or another campaign's (the id says
        nothing about other campaigns)."""
        if not _IMPORT_ID.fullmatch(import_id):
            return None
        progress = ImportProgress.load(self.connection, self.key_prefix, import_id)
        if progress is None or progress.campaign != slug:
            return None
        return progress

    def remove_leftovers(self) -> int:
        """Remove files of imports whose process died with them; how many (the scheduler's)."""
        return _remove_leftovers(self.folder)

    def wait(self, timeout: float = 60.0) -> None:
        """Wait until the imports running in threads here have ended (tests, a clean shutdown)."""
        self.threads.wait(timeout)

    def _path(self, import_id: str) -> Path:
        return self.folder / f"{import_id}.csv"


@dataclass(frozen=True)
class _Keys:
    prefix: str

    def progress(self, import_id: str) -> str:
        return self.prefix + PROGRESS_KEY.format(id=import_id)

    def running(self, slug: str) -> str:
        return self.prefix + RUNNING_KEY.format(slug=slug)


def _job_of(import_id: str, progress: ImportProgress, path: Path) -> ImportJob:
    return ImportJob(import_id, progress.campaign, progress.started_by, path, progress.bytes_total)


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
    def load(cls, connection: redis.Redis, key_prefix: str, import_id: str) -> ImportProgress | None:
        raw = connection.hgetall(_Keys(key_prefix).progress(import_id))
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

    def __init__(self, connection: redis.Redis, job: ImportJob, keys: _Keys) -> None:
        self.connection = connection
        self.job = job
        self.keys = keys
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

    def _write(self, fields: dict[FieldT, EncodableT], *, done: bool = False, strict: bool = False) -> None:
        self._written_at = time.monotonic()
        report = self.report
        # Typed as redis-py's hset() takes it: a Mapping's keys are invariant, so str keys alone would not do.
        values: dict[FieldT, EncodableT] = {
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
        key = self.keys.progress(self.job.id)
        try:
            with self.connection.pipeline() as pipe:
                pipe.hset(key, mapping=values)
                pipe.expire(key, PROGRESS_TTL_SECONDS)
                if not done:
                    pipe.expire(self.keys.running(self.job.slug), STALE_AFTER_SECONDS)
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
        try:
            _run_import(db, job, writer)
        finally:
            self._threads.pop(job.id, None)


def _run_import(db: Database, job: ImportJob, writer: _ProgressWriter) -> None:
    """Import the spooled file, remove it, then say how it ended."""
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
        _release(writer.connection, writer.keys, job.slug, job.id)


def _spool(stream: IO[bytes], path: Path) -> int:
    """Copy the upload to `path`, readable by this user alone (codes are worth money); its size."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _remove_leftovers(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as spool:
        shutil.copyfileobj(stream, spool)
        return spool.tell()


def _remove_leftovers(folder: Path) -> int:
    """Files of imports whose process died with them (a finished import removes its own)."""
    too_old = time.time() - LEFTOVER_AFTER_SECONDS
    removed = 0
    for leftover in folder.glob("*.csv"):
        try:
            if leftover.stat().st_mtime < too_old:
                leftover.unlink()
                removed += 1
        except FileNotFoundError:
            pass  # removed by another process just now
    return removed


def _release(connection: redis.Redis, keys: _Keys, slug: str, import_id: str) -> None:
    """Let the campaign take another import, unless the key is already another import's (ours
    expired while a batch took long, and a new upload took it)."""
    key = keys.running(slug)
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
