"""The job queue: RQ on Redis, or RQ on fakeredis with a worker thread in the web process.

Jobs are named by dotted path (`workers.jobs.dispatch`), so the engine never
imports `workers/`, and carry ids, never payloads. They are serialised as JSON
rather than pickle, so that whoever can write to Redis cannot run code in our
workers.

Delivery is asked for, not assigned: a forward only makes sure that a dispatch job
is on its way (one SET NX in Redis; a job is enqueued only when none is pending),
and the dispatch job claims whatever is due from the database, in batches. That
keeps Redis work per message to a fraction of a command, and lets any number of
workers share a backlog.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import redis
from flask import Flask
from rq import Queue, SimpleWorker
from rq.exceptions import InvalidJobOperation, StopRequested
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from engine.logs import job_log_context, job_meta
from engine.resilience import REDIS, RetryLog, dependency_of, wait_until_reachable

log = logging.getLogger(__name__)

DISPATCH = "workers.jobs.dispatch"
# A dispatch job hands over to a fresh one after this long (see DeliveryService.dispatch);
# the timeout only stops a job that hangs.
DISPATCH_BUDGET_SECONDS = 120
JOB_TIMEOUT_SECONDS = 900
# While this key exists a dispatch job is pending or running; it expires in case a job is lost.
PENDING_TTL_SECONDS = 300
# Results are of no use after the job; failures are kept a week for inspection.
RESULT_TTL_SECONDS = 0
FAILURE_TTL_SECONDS = 7 * 24 * 3600


class JobQueue(Protocol):
    def request_dispatch(self, *, extra: bool = False) -> bool: ...

    def dispatch_done(self) -> None: ...


class QueueUnavailable(RuntimeError):
    """Redis could not take the job; the rows it names stay `queued` for the sweeper."""


# What a person is told when a change is done but no dispatch could be asked for (a resume).
SWEEPER_SENDS = "Redis cannot be reached, so the sweeper sends what waited once it is back."


class RQJobQueue:
    def __init__(
        self,
        app: Flask,
        connection: redis.Redis,
        name: str,
        worker_connection: redis.Redis | None = None,
        *,
        key_prefix: str = "fluister:",
    ) -> None:
        # Jobs run inside this app's context, so they use its database and transports.
        self._app = app
        self.connection = connection
        # A worker blocks on Redis for minutes waiting for jobs: it needs a connection without a read timeout.
        self.worker_connection = worker_connection or connection
        # RQ names its keys after the queue (rq:queue:<name>, rq:job:<id>...) and has no prefix
        # option: the queue's name carries the installation's prefix instead.
        self.queue = Queue(f"{key_prefix}{name}", connection=connection, serializer=JSONSerializer)
        self.key_prefix = key_prefix
        # Jobs are RQ keys too (rq:job:<id>): their ids start with the prefix, in the characters
        # RQ allows in an id.
        self._job_id_prefix = re.sub(r"[^A-Za-z0-9_-]", "-", key_prefix)
        self._pending_key = f"{key_prefix}{name}:dispatch-pending"

    def request_dispatch(self, *, extra: bool = False) -> bool:
        """Make sure a dispatch job is on its way; True when this call enqueued one.

        `extra` asks for one more even though one is running (a backlog to share, or the
        sweeper, which cannot trust the flag), unless one is already waiting in the queue.
        """
        try:
            if extra:
                if self.queue.count > 0:
                    return False
            elif not self.connection.set(self._pending_key, 1, nx=True, ex=PENDING_TTL_SECONDS):
                return False
        except redis.RedisError as error:
            raise QueueUnavailable(f"could not ask for a dispatch: {error}") from error
        self.enqueue(DISPATCH)
        return True

    def dispatch_done(self) -> None:
        """The running dispatch job found nothing due: the next forward must ask again."""
        try:
            self.connection.delete(self._pending_key)
        except redis.RedisError:
            log.warning("could not clear the dispatch flag; it expires in %d s", PENDING_TTL_SECONDS)

    def enqueue(self, function: str, *args: Any) -> None:
        try:
            self.queue.enqueue(
                function,
                *args,
                job_id=f"{self._job_id_prefix}{uuid.uuid4().hex}",
                job_timeout=JOB_TIMEOUT_SECONDS,
                result_ttl=RESULT_TTL_SECONDS,
                failure_ttl=FAILURE_TTL_SECONDS,
                meta=job_meta(),  # the request id, for the job's log lines
            )
        except redis.RedisError as error:
            raise QueueUnavailable(f"could not enqueue {function}: {error}") from error

    def drain(self) -> int:
        """Run every job queued now, in the calling thread; how many ran."""
        worker = self.make_worker()
        ran = 0
        with self._app.app_context():
            while worker.work(burst=True, max_jobs=1, logging_level="WARNING"):
                ran += 1
        return ran

    def make_worker(self, worker_class: type[ThreadSafeWorker] | None = None) -> ThreadSafeWorker:
        # SimpleWorker runs jobs in this process: no fork per job, so connections to the
        # database and to providers stay open from one job to the next.
        queue = Queue(self.queue.name, connection=self.worker_connection, serializer=JSONSerializer)
        return (worker_class or ThreadSafeWorker)(
            [queue],
            connection=self.worker_connection,
            serializer=JSONSerializer,
            name=f"{self._job_id_prefix}{uuid.uuid4().hex}",  # its key, rq:worker:<name>, says whose it is
        )

    def work(
        self,
        retry_log: RetryLog,
        *,
        burst: bool = False,
        on_reconnect: Callable[[], None] = lambda: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Work the queue until stopped (or, with `burst`, until it is empty), through outages of
        Redis: RQ's worker quits when Redis fails it in the middle of a job, so a new one takes
        over once Redis answers again. `on_reconnect` runs after each outage (the sweeper: jobs
        asked for while Redis was away, or lost with it, are asked for again)."""
        while True:
            worker = self.make_worker(OutageProofWorker)
            assert isinstance(worker, OutageProofWorker)
            worker.retry_log, worker.on_reconnect = retry_log, on_reconnect
            try:
                worker.work(burst=burst, logging_level="INFO")
            except StopRequested:
                return
            except Exception as error:  # RQ's start or end, which need Redis, could not reach it
                if dependency_of(error) != REDIS:
                    raise
                worker.lost_redis = worker.lost_redis or error
            if worker.stopping or worker.lost_redis is None:
                return  # stopped on request, a burst done, or a fault that is not an outage (RQ logged it)
            try:
                wait_until_reachable(
                    REDIS, self.worker_connection.ping, retry_log, error=worker.lost_redis, sleep=sleep
                )
            except StopRequested:
                return
            on_reconnect()


def _embedded_redis() -> redis.Redis:
    # fakeredis is the `embedded` extra: a production install, on Redis, does without it.
    try:
        import fakeredis
    except ImportError:
        from config import ConfigError

        raise ConfigError(
            "REDIS_URL is not set, and the in-process queue used without it needs fakeredis: "
            "set REDIS_URL, or install Fluister with its embedded extra (pip install 'fluister[embedded]')"
        ) from None
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


class InProcessJobQueue(RQJobQueue):
    """The embedded default: fakeredis, drained by one worker thread inside the app process.

    The thread starts with the first job (so commands and tests that never enqueue
    start none) and sleeps until a job arrives, waking every `sweep_seconds` to run
    `on_idle` (the sweeper that requeues stragglers).
    """

    def __init__(
        self,
        app: Flask,
        name: str,
        on_idle: Callable[[], object] | None = None,
        sweep_seconds: float = 30.0,
        autostart: bool = True,
        key_prefix: str = "fluister:",
    ) -> None:
        super().__init__(app, _embedded_redis(), name, key_prefix=key_prefix)
        self._autostart = autostart
        self._on_idle = on_idle
        self._sweep_seconds = sweep_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def enqueue(self, function: str, *args: Any) -> None:
        super().enqueue(function, *args)
        if self._autostart:
            self._ensure_thread()
            self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Let the worker thread finish the job in hand and end (tests, and a clean shutdown)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._stopping.is_set():
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="fluister-inprocess-worker", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=self._sweep_seconds)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                self.drain()
                if self._on_idle is not None:
                    with self._app.app_context():
                        self._on_idle()
            except Exception:  # the thread must outlive any one bad job or sweep
                log.exception("in-process worker: unexpected error")


class ThreadSafeWorker(SimpleWorker):
    """A SimpleWorker that can also run outside the main thread: timer-based job timeouts, and
    signal handlers (for a graceful stop on SIGTERM) only where Python allows them."""

    death_penalty_class = TimerDeathPenalty

    def perform_job(self, job: Job, *args: Any, **kwargs: Any) -> bool:
        # The job's lines carry the id of the request that enqueued it (engine.logs).
        with job_log_context(job.id, job.meta):
            return super().perform_job(job, *args, **kwargs)

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():
            super()._install_signal_handlers()


class OutageProofWorker(ThreadSafeWorker):
    """A worker that reports a Redis outage through a RetryLog (one line a minute) instead of
    RQ's line per retry and its traceback when it quits; RQJobQueue.work starts another."""

    retry_log: RetryLog
    on_reconnect: Callable[[], None]
    # RQ's own pause between tries while it waits for a job grows to this (its default: 60 s).
    max_connection_wait_time = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log = _OutageAwareLog(self.log, self)  # type: ignore[assignment]
        self.lost_redis: BaseException | None = None
        self.stopping = False

    def request_stop(self, signum: Any, frame: Any) -> None:
        self.stopping = True
        try:
            super().request_stop(signum, frame)
        except redis.RedisError:
            # RQ notes the request in Redis; while Redis is out, stop without noting it.
            raise StopRequested() from None

    def teardown(self) -> None:
        try:
            super().teardown()
        except redis.RedisError:
            # RQ unregisters the worker first, which needs Redis, and only then stops its thread
            # that listens for commands: stop it here, or each outage would leave one behind.
            if self.pubsub_thread is not None:
                self.pubsub_thread.stop()
                self.pubsub_thread.join(timeout=5)
            raise

    def handle_exception(self, job: Any, *exc_info: Any) -> None:
        error = exc_info[1] if len(exc_info) > 1 else None
        if isinstance(error, InvalidJobOperation) or (error is not None and dependency_of(error) == REDIS):
            # The job ran (what it did is in the database), but Redis lost its record meanwhile
            # (an outage, a restart without persistence): not a failure of the job.
            log.warning("job %s: Redis lost its record while it ran (%s); its work is done", job.id, error)
            return
        super().handle_exception(job, *exc_info)

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        # RQ retried while it waited for a job, and Redis answered again.
        if self.retry_log.recovered(REDIS):
            self.on_reconnect()
        return result


class _OutageAwareLog:
    """RQ's worker logger, except for its lines about Redis being unreachable, which go to the
    worker's RetryLog (and its "unhandled exception, quitting", when that is all it was)."""

    def __init__(self, logger: logging.Logger, worker: OutageProofWorker) -> None:
        self._logger = logger
        self._worker = worker

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)

    def error(self, message: str, *args: Any, **kwargs: Any) -> None:
        if message.startswith("Worker %s: could not connect to Redis"):
            self._worker.retry_log.failed(REDIS, args[1], retry_in=float(args[2]))
            return
        if message.endswith("quitting..."):
            error = sys.exc_info()[1] or redis.TimeoutError("Redis connection timeout")
            if dependency_of(error) == REDIS:
                self._worker.lost_redis = error
                return
        self._logger.error(message, *args, **kwargs)


def build_queue(
    app: Flask,
    redis_url: str | None,
    name: str,
    on_idle: Callable[[], object],
    *,
    autostart: bool = True,
    key_prefix: str = "fluister:",
) -> RQJobQueue:
    if redis_url:
        return RQJobQueue(
            app,
            redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5),
            name,
            worker_connection=redis.Redis.from_url(redis_url, socket_connect_timeout=5, health_check_interval=30),
            key_prefix=key_prefix,
        )
    return InProcessJobQueue(app, name, on_idle=on_idle, autostart=autostart, key_prefix=key_prefix)
