"""bench/dispatch: messages/s through real workers, against a naive baseline, in one run.

    python -m bench.dispatch                # 20,000 messages for Fluister, 2,000 for the baseline, 3 rounds
    python -m bench.dispatch --channel sms  # texts through Twilio's SDK into the Twilio stub instead
    python -m bench.dispatch --quick        # smoke test: 2,000 and 300, 1 round
    python -m bench.dispatch --profile      # and the workers under py-spy (numbers then perturbed)
    python -m bench.dispatch --scaling 1,2,4  # Fluister only, with 1, 2 and 4 worker processes

Per variant: a fresh PostgreSQL database, a campaign, N queued email messages (or texts)
written by the real ForwardingService (1 to 5 friends per submission), the SendGrid stub
(or the Twilio stub) over TLS in a process of its own, and W real workers
(`python -m workers`). Each round, the clock
starts when the jobs the submissions enqueued are handed to the idle workers and stops
when the last message is `sent`. Fluister: the submissions ask for a dispatcher (one
SET NX each) and the dispatch job sends in batches. Baseline: one RQ job per message
(`bench.dispatch.naive.send_one`, or `send_one_text`), one SDK call each.

It prints messages/s, worker CPU µs per message and Redis commands per message (enqueue
side included) for both, and writes bench/results/dispatch-<timestamp>.json. It fails
(exit status 1) unless every message was accepted by the stub exactly once. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, TextIO

import psycopg
import redis
from sqlalchemy import update
from sqlalchemy.engine import make_url

from bench.common import REPO_ROOT, flask_command, libpq_url, recreate_database
from bench.dispatch import naive
from bench.dispatch.measure import RedisCounter, cpu_delta, cpu_snapshot, machine_load, process_cpu

RESULTS_DIR = REPO_ROOT / "bench" / "results"
CAMPAIGN = "bench"
PARKED_KEY = "bench:dispatch:parked"
VARIANTS = ("fluister", "baseline")
SUBMIT_THREADS = 8
LATE_START_SECONDS = 2.0

# What the issue asks of Fluister on a 2-core machine.
TARGET_RATIO = 4.0
TARGET_RATE = 2000.0
TARGET_REDIS = 4.0

CHANNELS = ("email", "sms")
# The Twilio stub's magic sender number: the texts' From.
TEXT_SENDER = "+15005550006"
# Pacing out of reach: every text still takes its turn from the pacer (one Redis script),
# which never makes it wait.
UNREACHABLE_RATE = "1000000000"


# -- options -------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dispatch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000, help="messages for Fluister (default 20000)")
    parser.add_argument(
        "--baseline-messages",
        type=int,
        default=2000,
        help="messages for the baseline (default 2000: it is far slower, and its rate does not depend on N)",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes per variant (default 2)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="measured runs per variant, the same messages queued again; medians are reported (default 3)",
    )
    parser.add_argument("--max-friends", type=int, default=5, help="friends per submission cycle 1..N (default 5)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="DISPATCH_BATCH_SIZE for the workers (default: the engine's)"
    )
    parser.add_argument("--only", choices=VARIANTS, help="run one variant only")
    parser.add_argument(
        "--channel",
        choices=CHANNELS,
        default="email",
        help="email (SendGrid SDK and stub, the default) or sms (texts through Twilio's SDK into its stub)",
    )
    parser.add_argument(
        "--scaling",
        type=_worker_counts,
        default=None,
        metavar="W1,W2,...",
        help="Fluister only, once per number of worker processes (e.g. 1,2,4): the scaling curve",
    )
    parser.add_argument("--plain", action="store_true", help="the stub over plain HTTP instead of TLS")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up a variant after this many s")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each measured run, wait up to this long for the machine to be idle (default 0: no wait)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DISPATCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/fluister_bench_dispatch"
        ),
        help="PostgreSQL database to DROP and re-create per variant (env BENCH_DISPATCH_DATABASE_URL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_DISPATCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
        help="Redis database to FLUSH and use for the queue (default db 13; env BENCH_DISPATCH_REDIS_URL)",
    )
    parser.add_argument("--queue-name", default="bench-dispatch", help="RQ queue name (default bench-dispatch)")
    parser.add_argument(
        "--private-redis",
        action="store_true",
        help="start a redis-server of its own on a free loopback port instead of --redis-url: Redis counts "
        "its commands server-wide, so this keeps others' commands out of the count",
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: 2000 and 300 messages, 1 round")
    parser.add_argument("--keep-logs", action="store_true", help="keep the workers' logs (the path is printed)")
    parser.add_argument(
        "--profile", action="store_true", help="record the workers with py-spy during each variant (slows them)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.baseline_messages, args.rounds = 2000, 300, 1
    if min(args.messages, args.baseline_messages, args.workers, args.rounds) < 1:
        parser.error("--messages, --baseline-messages, --workers and --rounds must be positive")
    if not 1 <= args.max_friends <= 5:
        parser.error("--max-friends must be between 1 and 5 (the campaign's limit)")
    if args.profile and not shutil.which("py-spy", path=_venv_path()):
        parser.error("--profile needs py-spy: pip install py-spy")
    if args.private_redis and not shutil.which("redis-server"):
        parser.error("--private-redis needs redis-server on the PATH")
    if args.scaling and args.only == "baseline":
        parser.error("--scaling runs Fluister only")
    return args


def _worker_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("worker counts must be positive")
    return counts


def start_private_redis(stack: ExitStack) -> tuple[str, int]:
    """A throwaway redis-server on a free port: its URL (db 13) and its pid."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    stack.callback(stop)
    url = f"redis://127.0.0.1:{port}/13"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            return url, process.pid
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("the private redis-server did not start")


def _venv_path() -> str:
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


# -- the stub ------------------------------------------------------------------------------------


class StubProcess:
    """`python -m bench.dispatch.stub` in its own process: its CPU is not the workers'."""

    def __init__(self, tls: bool, texts: bool = False) -> None:
        options = [*([] if tls else ["--plain"]), *(["--twilio"] if texts else [])]
        command = [sys.executable, "-m", "bench.dispatch.stub", *options]
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        first = self._read()
        self.url: str = first["url"]
        self.api_key: str = first.get("api_key", "")
        self.account_sid: str = first.get("account_sid", "")
        self.auth_token: str = first.get("auth_token", "")
        self.ca_bundle: str | None = first["ca_bundle"]
        self.pid = self.process.pid

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the stub process exited")
        return json.loads(line)

    def ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._read()

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
                self.process.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


# -- database, app and queue ---------------------------------------------------------------------


def app_environment(args: argparse.Namespace, instance: Path, stub: StubProcess) -> dict[str, str]:
    """What the workers (and this process's app) run with. Every setting that changes what is
    measured is given, so that a developer's .env cannot."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLASK_")}
    env.update(
        FLUISTER_ENV="development",
        INSTANCE_PATH=str(instance),
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        QUEUE_NAME=args.queue_name,
        SECRET_KEYS=secrets.token_urlsafe(32),
        CONTACT_HASH_KEY=secrets.token_urlsafe(32),
        PUBLIC_BASE_URL="https://offers.example.com",
        EMAIL_TRANSPORT="sendgrid",
        SENDGRID_API_KEY=stub.api_key,
        SENDGRID_API_HOST=stub.url,
        SMS_TRANSPORT="outbox",
        SMS_SEGMENTS_PER_SECOND="",
        UNSUBSCRIBE_MAILTO="",
        DISPATCH_BATCH_SIZE=str(args.batch_size or ""),
        SMS_CONCURRENCY="",
        SENDING_STALE_AFTER_SECONDS="",
        PYTHONUNBUFFERED="1",
    )
    if args.channel == "sms":
        # Texts through Twilio into its stub; emails (none are sent) to the outbox.
        env.update(
            EMAIL_TRANSPORT="outbox",
            SENDGRID_API_KEY="",
            SENDGRID_API_HOST="",
            SMS_TRANSPORT="twilio",
            TWILIO_ACCOUNT_SID=stub.account_sid,
            TWILIO_AUTH_TOKEN=stub.auth_token,
            TWILIO_FROM=TEXT_SENDER,
            TWILIO_MESSAGING_SERVICE_SID="",
            TWILIO_API_BASE=stub.url,
            SMS_SEGMENTS_PER_SECOND=UNREACHABLE_RATE,
        )
        # With either, Twilio's SDK rewrites the stub's host into a twilio.com name.
        env.pop("TWILIO_EDGE", None)
        env.pop("TWILIO_REGION", None)
    if stub.ca_bundle:
        # The SendGrid SDK (urllib) and the engine's pooled urllib3 both load OpenSSL's default
        # verify paths, which SSL_CERT_FILE replaces: the stub's private CA is trusted this way.
        # requests (under Twilio's SDK) reads REQUESTS_CA_BUNDLE instead.
        env["SSL_CERT_FILE"] = stub.ca_bundle
        env["REQUESTS_CA_BUNDLE"] = stub.ca_bundle
    return env


class NoDispatch:
    """The baseline's submissions: rows written by the real service, no dispatch job asked for
    (the baseline enqueues one job per message instead)."""

    def request_dispatch(self, *, extra: bool = False) -> bool:
        return False

    def dispatch_done(self) -> None:
        pass


def client_ip(number: int) -> str:
    """A sender address per submission, as the web path passes one: from the benchmarking range
    198.18.0.0/15 (never contacted, only hashed), a different one each time and a few dozen at
    most per /24, so that the per-address and per-network caps are checked but never reached."""
    return f"198.{18 + (number // 256) % 2}.{number % 256}.{(number // 512) % 254 + 1}"


def friends_per_submission(total: int, max_friends: int) -> list[int]:
    """1, 2, ..., max_friends, 1, 2, ... until `total` friends."""
    sizes: list[int] = []
    left = total
    while left > 0:
        size = min(1 + len(sizes) % max_friends, left)
        sizes.append(size)
        left -= size
    return sizes


# -- one variant ---------------------------------------------------------------------------------


@dataclass
class RoundResult:
    """One measured run: the queued messages handed to W idle workers, until all are sent."""

    seconds: float = 0.0  # from handing the jobs to the idle workers to the last `sent`
    rate: float = 0.0
    first_claim_s: float = 0.0  # from the start to the first message claimed
    worker_cpu_us_per_message: float = 0.0
    cpu_us_per_message: dict[str, float] = field(default_factory=dict)
    cores_busy: dict[str, float] = field(default_factory=dict)
    redis_per_message: float = 0.0  # enqueue side included
    redis_commands: dict[str, dict[str, int]] = field(default_factory=dict)  # phase -> command -> calls
    redis_totals: dict[str, int] = field(default_factory=dict)
    load_before: float = 0.0  # cores busy on the machine just before the workers started
    worker_start: dict[str, float] = field(default_factory=dict)  # wall and CPU from spawn to idle
    worker_cpu_total_s: float = 0.0  # whole lifetime, start-up and shutdown included
    statuses: dict[str, int] = field(default_factory=dict)
    stub: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)


@dataclass
class VariantResult:
    variant: str
    messages: int
    submissions: int = 0
    setup_seconds: float = 0.0
    enqueue_redis: dict[str, int] = field(default_factory=dict)  # the submissions' commands, by command
    rounds: list[RoundResult] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [f"round {n}: {p}" for n, r in enumerate(self.rounds, start=1) for p in r.problems]

    def median(self, name: str) -> float:
        return statistics.median(getattr(r, name) for r in self.rounds) if self.rounds else 0.0

    @property
    def rate(self) -> float:
        return self.median("rate")

    @property
    def worker_cpu_us_per_message(self) -> float:
        return self.median("worker_cpu_us_per_message")

    @property
    def redis_per_message(self) -> float:
        return self.median("redis_per_message")

    @property
    def seconds(self) -> float:
        return self.median("seconds")

    def median_of(self, name: str, key: str) -> float:
        return statistics.median(getattr(r, name).get(key, 0) for r in self.rounds) if self.rounds else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "messages_per_s": round(self.rate, 1),
            "worker_cpu_us_per_message": round(self.worker_cpu_us_per_message, 1),
            "redis_commands_per_message": round(self.redis_per_message, 3),
            "seconds": round(self.seconds, 3),
        }


BENCH_POLICY = {
    "version": 1,
    "server_email": True,
    "server_sms": "never",
    "incentives": False,
    "retention": "days_after_send",
    "retention_days": 30,
    "justification": "Benchmark campaign: sends only to a local stub.",
}
# Texts: allowed without a consent of the friend's own, and quiet hours off (the whole day
# is allowed, on the app's clock): the benchmark measures sending, whatever the hour.
TEXT_POLICY = {**BENCH_POLICY, "server_email": False, "server_sms": "allowed", "sms_hours": [0, 24]}


def friend_contact(channel: str, number: int) -> str:
    """The `number`th friend's address: an example.com mailbox, or a Dutch mobile number."""
    if channel == "sms":
        return f"+316{10000000 + number:08d}"
    return f"friend-{number}@example.com"


def naive_job(channel: str) -> str:
    return naive.TEXT_JOB if channel == "sms" else naive.JOB


def run_variant(
    variant: str, count: int, args: argparse.Namespace, stub: StubProcess, counter: RedisCounter, work: Path
) -> VariantResult:
    from config import load_settings
    from engine import create_app
    from engine.runtime import EXTENSION_KEY, Runtime
    from tests.helpers import make_campaign, submission

    result = VariantResult(variant, count)
    what = "texts" if args.channel == "sms" else "email messages"
    print(f"\n== {variant}: {count} {what}, {args.workers} workers, {args.rounds} round(s)", flush=True)
    work = work / f"{variant}-{args.workers}-workers"
    work.mkdir()
    instance = work / variant
    instance.mkdir()
    env = app_environment(args, instance, stub)
    counter.connection.flushdb()
    counter.own("flushdb")
    stub.ask("reset")

    setup_started = time.monotonic()
    recreate_database(args.database_url)
    flask_command(env, "db", "upgrade")
    app = create_app(load_settings(environ=env))
    runtime: Runtime = app.extensions[EXTENSION_KEY]
    try:
        from engine.models import Campaign

        # The daily cap on a campaign's messages (10,000 by default) would stop the submissions
        # half-way: lifted, the other caps stay as they are.
        caps = {"caps": {"campaign_messages_per_day": None}} if hasattr(Campaign, "caps") else {}
        policy = TEXT_POLICY if args.channel == "sms" else BENCH_POLICY
        make_campaign(runtime.db, CAMPAIGN, channels=[args.channel], policy_settings=policy, **caps)

        # The enqueue side, counted: what the web process does for these messages.
        redis_start = counter.snapshot()
        forwarding = runtime.forwarding
        if variant == "baseline":
            # The same service, but asking for no dispatch job: the baseline enqueues its own.
            forwarding = copy.copy(runtime.forwarding)
            assert hasattr(forwarding, "_queue"), "ForwardingService keeps its queue elsewhere now"
            forwarding._queue = NoDispatch()  # type: ignore[attr-defined]
        sizes = friends_per_submission(count, args.max_friends)
        offsets = [0]
        for size in sizes[:-1]:
            offsets.append(offsets[-1] + size)

        def submit(number: int) -> None:
            size, first = sizes[number], offsets[number]
            friends = [friend_contact(args.channel, first + i) for i in range(size)]
            note = "You will like this one." if number % 3 == 0 else None
            receipt = forwarding.submit(
                CAMPAIGN,
                submission(*friends, sender_name=f"Sender {number}", note=note, client_ip=client_ip(number)),
            )
            if len(receipt.message_ids) != size:
                raise RuntimeError(f"submission {number}: {len(receipt.message_ids)} messages queued, not {size}")
            if variant == "baseline":
                for message_id in receipt.message_ids:
                    runtime.queue.enqueue(naive_job(args.channel), message_id)

        # A submission mostly waits for PostgreSQL: a few at once, as a web server would take them.
        with ThreadPoolExecutor(max_workers=SUBMIT_THREADS) as pool:
            for done, _ in enumerate(pool.map(submit, range(len(sizes))), start=1):
                if done % 2000 == 0:
                    print(f"   {done} of {len(sizes)} submissions", flush=True)
        result.submissions = len(sizes)
        result.enqueue_redis = counter.delta(redis_start, counter.snapshot())
        result.setup_seconds = round(time.monotonic() - setup_started, 1)
        print(f"   setup {result.setup_seconds:.1f} s ({result.submissions} submissions)", flush=True)

        for number in range(1, args.rounds + 1):
            if number > 1:
                requeue(runtime, variant, args.database_url, naive_job(args.channel))
            outcome = run_round(variant, number, count, args, stub, counter, work, runtime, env, result.enqueue_redis)
            result.rounds.append(outcome)
            print(
                f"   round {number}: {outcome.rate:.1f} messages/s, {outcome.worker_cpu_us_per_message:.0f} worker "
                f"CPU µs/message, {outcome.redis_per_message:.2f} Redis commands/message, "
                f"other processes {outcome.cores_busy.get('other', 0):.2f} cores",
                flush=True,
            )
            if outcome.problems:
                break  # the next round would start from a state nobody understands
        return result
    finally:
        runtime.db.dispose()
        counter.connection.flushdb()
        counter.own("flushdb")


def requeue(runtime: Any, variant: str, url: str, job: str) -> None:
    """Back to what the submissions left: every message queued, and the jobs they enqueued
    (Fluister: the one dispatch job and its pending flag, through the engine's own call;
    baseline: one job per message)."""
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        connection.execute(
            "UPDATE messages SET status = 'queued', attempts = 0, claimed_at = NULL, sent_at = NULL,"
            " provider_id = NULL, error = NULL, error_code = NULL, updated_at = now()"
        )
        ids = [int(row[0]) for row in connection.execute("SELECT id FROM messages ORDER BY id").fetchall()]
    runtime.queue.connection.flushdb()
    if variant == "fluister":
        runtime.queue.request_dispatch()
    else:
        for message_id in ids:
            runtime.queue.enqueue(job, message_id)


def run_round(
    variant: str,
    number: int,
    count: int,
    args: argparse.Namespace,
    stub: StubProcess,
    counter: RedisCounter,
    work: Path,
    runtime: Any,
    env: dict[str, str],
    enqueue_redis: dict[str, int],
) -> RoundResult:
    from engine.models import Campaign, CampaignStatus

    result = RoundResult()
    redis_db = int(make_url(args.redis_url).database or 0)
    workers: list[subprocess.Popen[bytes]] = []
    logs: list[TextIO] = []
    profilers: list[subprocess.Popen[bytes]] = []

    def set_campaign(status: CampaignStatus) -> None:
        with runtime.db.transaction() as session:
            session.execute(update(Campaign).where(Campaign.slug == CAMPAIGN).values(status=status))

    try:
        # Hold the jobs back while the workers start, so that the clock measures sending, not
        # Python start-up; and pause the campaign, so that the workers' sweeps do not enqueue a
        # dispatch job of their own for the messages they find waiting.
        queue_key = runtime.queue.queue.key
        counter.connection.rename(queue_key, PARKED_KEY)
        counter.own("rename")
        set_campaign(CampaignStatus.PAUSED)
        with psycopg.connect(libpq_url(args.database_url), autocommit=True) as connection:
            connection.execute("VACUUM (ANALYZE) messages")  # every round starts from the same table state
        result.load_before = wait_for_quiet(args.wait_quiet)

        redis_spawn = counter.snapshot()
        spawned = time.monotonic()
        for worker_number in range(args.workers):
            log = (work / f"{variant}-round{number}-worker{worker_number}.log").open("w")
            logs.append(log)
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "workers"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
        pids = [worker.pid for worker in workers]
        wait_until_idle(counter, redis_db, workers, timeout=120)
        result.worker_start = {
            "seconds": round(time.monotonic() - spawned, 3),
            "cpu_s_per_worker": round(sum(process_cpu(pid) or 0.0 for pid in pids) / len(pids), 3),
        }
        if args.profile:
            profilers = start_profilers(pids, work, f"{variant}-round{number}")

        # Go: the jobs reach the idle workers (and Fluister's campaign resumes).
        redis_before = counter.snapshot()
        cpu_before = cpu_snapshot(pids, stub.pid, args.redis_pid)
        started = time.time()
        if variant == "fluister":
            # The baseline's campaign stays paused: its naive job does not look, and the workers'
            # sweeps then never hand its messages to a dispatch job.
            set_campaign(CampaignStatus.ACTIVE)
        job_ids = counter.connection.lrange(PARKED_KEY, 0, -1)
        expected_jobs = 1 if variant == "fluister" else count
        if len(job_ids) != expected_jobs:
            raise RuntimeError(f"{len(job_ids)} jobs were waiting in the queue, not {expected_jobs}")
        for start in range(0, len(job_ids), 10000):
            counter.connection.rpush(queue_key, *job_ids[start : start + 10000])
            counter.own("rpush")
        counter.connection.delete(PARKED_KEY)
        counter.own("lrange")
        counter.own("del")

        result.statuses = wait_until_sent(args.database_url, count, workers, started + args.timeout)
        # Let the workers finish what they have (a dispatch job that finds nothing left, say):
        # it is part of the cost of these messages.
        wait_until_idle(counter, redis_db, workers, timeout=60, queue_key=queue_key)
        cpu_after = cpu_snapshot(pids, stub.pid, args.redis_pid)
        quiet = time.time()
        redis_after = counter.snapshot()
        if profilers:
            result.profile = stop_profilers(profilers, work, f"{variant}-round{number}")
            profilers = []
        result.worker_cpu_total_s = round(stop_workers(workers), 3)
        redis_stopped = counter.snapshot()

        first_claim, last_sent = sent_window(args.database_url)
        result.seconds = last_sent - started
        result.rate = count / result.seconds
        result.first_claim_s = round(first_claim - started, 4)
        cpu = cpu_delta(cpu_before, cpu_after)
        result.worker_cpu_us_per_message = cpu["workers"] / count * 1e6
        result.cpu_us_per_message = {name: round(value / count * 1e6, 1) for name, value in cpu.items()}
        result.cores_busy = {name: round(value / (quiet - started), 2) for name, value in cpu.items()}
        phases = {
            "enqueue": enqueue_redis,
            "worker_start": counter.delta(redis_spawn, redis_before),
            "run": counter.delta(redis_before, redis_after),
            "worker_stop": counter.delta(redis_after, redis_stopped),
        }
        result.redis_commands = phases
        result.redis_totals = {phase: sum(calls.values()) for phase, calls in phases.items()}
        result.redis_per_message = sum(result.redis_totals.values()) / count

        report = stub.ask("report")
        stub.ask("reset")
        check_deliveries(result, report, args.database_url, count)
        if result.first_claim_s > LATE_START_SECONDS:
            # Something else than the jobs handed over started the sending (a sweep, say): the
            # clock measured waiting, not sending.
            result.checks["work started when the jobs were handed over"] = False
            result.problems.append(f"the first message was claimed only {result.first_claim_s:.1f} s after the start")
        report.pop("references", None)
        result.stub = report
        return result
    finally:
        for profiler in profilers:
            if profiler.poll() is None:
                profiler.kill()
                profiler.wait()
        stop_workers(workers)
        for log in logs:
            log.close()


def wait_for_quiet(patience: float, quiet: float = 0.25) -> float:
    """Cores busy on the machine, sampled for a second; resampled until below `quiet` or for
    `patience` seconds. Anything else running would compete with the workers for 2 cores."""
    deadline = time.monotonic() + patience
    load = machine_load(1.0)
    while load > quiet and time.monotonic() < deadline:
        load = machine_load(1.0)
    if load > quiet:
        print(f"   warning: {load:.2f} cores busy before the run: the numbers will be low", flush=True)
    return round(load, 2)


def wait_until_idle(
    counter: RedisCounter,
    db: int,
    workers: list[subprocess.Popen[bytes]],
    timeout: float,
    queue_key: str | None = None,
) -> None:
    """Until every worker waits in BLPOP (and, if given, the queue is empty), twice in a row."""
    deadline = time.monotonic() + timeout
    settled = 0
    while settled < 2:
        if time.monotonic() > deadline:
            raise RuntimeError("the workers did not become idle in time (see their logs)")
        dead = [w.pid for w in workers if w.poll() is not None]
        if dead:
            raise RuntimeError(f"worker(s) {dead} exited (see their logs)")
        idle = counter.blocked_clients(db) >= len(workers)
        if queue_key is not None:
            counter.own("llen")
            idle = idle and counter.connection.llen(queue_key) == 0
        settled = settled + 1 if idle else 0
        time.sleep(0.05)


def wait_until_sent(url: str, count: int, workers: list[subprocess.Popen[bytes]], deadline: float) -> dict[str, int]:
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        while True:
            rows = connection.execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall()
            statuses = {str(status): int(n) for status, n in rows}
            if statuses.get("sent", 0) >= count:
                return statuses
            if statuses.get("queued", 0) + statuses.get("sending", 0) == 0:
                raise RuntimeError(f"messages settled without all being sent: {statuses}")
            if all(worker.poll() is not None for worker in workers):
                raise RuntimeError(f"every worker exited before the messages were sent: {statuses}")
            if time.time() > deadline:
                raise RuntimeError(f"timed out: {statuses}")
            time.sleep(0.1)


def sent_window(url: str) -> tuple[float, float]:
    """Epoch seconds of the first claim and of the last send, as the workers recorded them."""
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        row = connection.execute(
            "SELECT extract(epoch FROM min(claimed_at)), extract(epoch FROM max(sent_at)) FROM messages"
        ).fetchone()
    assert row is not None
    return float(row[0]), float(row[1])


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> float:
    """SIGTERM (RQ's warm shutdown), then reap them; their whole CPU time in seconds."""
    total = 0.0
    for worker in workers:
        if worker.returncode is None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        if worker.returncode is not None:
            continue
        deadline = time.monotonic() + 20
        while True:
            pid, status, usage = os.wait4(worker.pid, os.WNOHANG)
            if pid:
                worker.returncode = os.waitstatus_to_exitcode(status)
                total += usage.ru_utime + usage.ru_stime
                break
            if time.monotonic() > deadline:
                worker.kill()
                deadline = time.monotonic() + 10
            time.sleep(0.05)
    return total


def check_deliveries(result: RoundResult, report: dict[str, Any], url: str, count: int) -> None:
    """Every message accepted by the stub exactly once, under its own reference."""
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        public_ids = {str(row[0]) for row in connection.execute("SELECT public_id FROM messages").fetchall()}
        sent = connection.execute("SELECT count(*) FROM messages WHERE status = 'sent'").fetchone()
    references = report["references"]
    checks = {
        "all messages sent": bool(sent and int(sent[0]) == count),
        "stub accepted one recipient per message": report["recipients"] == count,
        "no reference accepted twice": report["duplicate_count"] == 0,
        "references are exactly the messages": set(references) == public_ids and len(public_ids) == count,
        "every placeholder substituted": report["unsubstituted_recipients"] == 0,
    }
    result.checks = checks
    result.problems = [name for name, ok in checks.items() if not ok]
    for problem in result.problems:
        print(f"   FAILED: {problem}", file=sys.stderr, flush=True)


# -- profiling -----------------------------------------------------------------------------------


def start_profilers(pids: list[int], work: Path, variant: str) -> list[subprocess.Popen[bytes]]:
    py_spy = shutil.which("py-spy", path=_venv_path())
    assert py_spy
    options = ["--format", "raw", "--rate", "200", "--nonblocking", "--gil"]
    return [
        subprocess.Popen(
            [py_spy, "record", "--pid", str(pid), *options, "--output", str(work / f"{variant}-{pid}.stacks")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]


# Where a worker's CPU goes. py-spy samples only threads that run (not those blocked in BLMOVE
# or waiting for a socket). A sample goes to the bucket of its outermost frame whose function
# is named here; failing that, to the innermost frame of a library named in LIBRARY_BUCKETS;
# failing that, to the job it ran in. (py-spy shortens some paths, so functions are matched
# by name: "Class.method (".)
PROFILE_BUCKETS = (
    ("claim (UPDATE ... SKIP LOCKED)", ("DeliveryService._claim (",)),
    ("load messages, suppression check", ("DeliveryService._load (", "DeliveryService._suppressed (")),
    ("record outcomes (_write)", ("DeliveryService._write (",)),
    ("context: links, tokens, headers", ("DeliveryService._context (", "DeliveryService._email_headers (", "Links.")),
    ("outcome per message (_sent: policy_for)", ("DeliveryService._sent (", "DeliveryService._failure (")),
    (
        "render (Jinja, CSS inlining)",
        ("TemplateRenderer.", "DeliveryService._email_groups ("),
    ),
    ("per-recipient subject and substitutions", ("EmailBatchTemplate.",)),
    ("SDK: Mail helper objects", ("_batch_mail (", "_mail (")),
    ("SDK: Mail.get() to dict", ("Mail.get (",)),
    ("SDK: json.dumps", ("dumps (",)),
    ("HTTP to SendGrid (TLS, socket)", ("PooledClient._make_request (", "Client._make_request (")),
    ("SDK: client construction", ("SendGridAPIClient.__init__ (", "Client.__init__ (")),
    ("pacing (Redis)", ("DeliveryService._wait_turn (",)),
    ("hand-over and acceptance writes", ("DeliveryService._hand_over (", "DeliveryService._record_acceptance (")),
    ("HTTP to Twilio (TLS, socket)", ("TwilioHttpClient.request (",)),
)
LIBRARY_BUCKETS = (
    ("SDK: Mail helper objects", ("(sendgrid/",)),
    ("SDK: Twilio parameters and resource", ("(twilio/",)),
    ("database (ORM, driver)", ("(sqlalchemy/", "(psycopg/", "(db.py", "(engine/db.py")),
)
JOB_BUCKETS = (
    ("dispatch job, rest", "DeliveryService.dispatch ("),
    ("naive job, rest", "send_one (bench"),
    ("naive job, rest", "send_one_text ("),
    ("RQ job handling", "(rq/"),
)


def profile_bucket(frames: list[str]) -> str:
    for frame in frames:
        for name, keys in PROFILE_BUCKETS:
            if frame.startswith(keys):
                return name
    for frame in reversed(frames):
        for name, keys in LIBRARY_BUCKETS:
            if any(key in frame for key in keys):
                return name
    for name, key in JOB_BUCKETS:
        if any(key in frame for frame in frames):
            return name
    return "other"


def stop_profilers(profilers: list[subprocess.Popen[bytes]], work: Path, variant: str) -> dict[str, Any]:
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)
    for profiler in profilers:
        try:
            profiler.wait(timeout=30)
        except subprocess.TimeoutExpired:
            profiler.kill()
    buckets: dict[str, int] = {}
    total = 0
    stacks_out = RESULTS_DIR / f"dispatch-{variant}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.stacks"
    with stacks_out.open("w") as merged:
        for path in sorted(work.glob(f"{variant}-*.stacks")):
            for line in path.read_text().splitlines():
                merged.write(line + "\n")
                stack, _, samples = line.rpartition(" ")
                if not samples.isdigit():
                    continue
                n = int(samples)
                total += n
                bucket = profile_bucket(stack.split(";"))
                buckets[bucket] = buckets.get(bucket, 0) + n
    share = {name: round(100 * n / total, 1) for name, n in sorted(buckets.items(), key=lambda kv: -kv[1])}
    return {"samples": total, "share_percent": share, "stacks": str(stacks_out.relative_to(REPO_ROOT))}


# -- output --------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    packages = {}
    for name in (
        "sendgrid",
        "python-http-client",
        "twilio",
        "requests",
        "urllib3",
        "rq",
        "redis",
        "SQLAlchemy",
        "psycopg",
    ):
        try:
            packages[name] = version(name)
        except Exception:
            packages[name] = "?"
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model,
        "python": platform.python_version(),
        "packages": packages,
    }


def git_state() -> dict[str, Any]:
    def git(*arguments: str) -> str:
        completed = subprocess.run(["git", *arguments], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        return completed.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "engine_dirty": bool(git("status", "--porcelain", "engine"))}


def print_table(results: dict[str, VariantResult], channel: str = "email") -> dict[str, Any]:
    print()
    header = (
        f"{'variant':<9} {'round':>5} {'messages':>8} {'seconds':>8} {'messages/s':>11} {'worker CPU µs/msg':>18}"
        f" {'Redis cmds/msg':>15} {'requests':>9} {'TLS conns':>10} {'other cores':>12}"
    )
    print(header)
    for name, variant in results.items():
        for number, r in enumerate(variant.rounds, start=1):
            print(
                f"{name:<9} {number:>5} {variant.messages:>8} {r.seconds:>8.2f} {r.rate:>11.1f}"
                f" {r.worker_cpu_us_per_message:>18.0f} {r.redis_per_message:>15.2f}"
                f" {r.stub.get('requests', 0):>9} {r.stub.get('connections_accepted', 0):>10}"
                f" {r.cores_busy.get('other', 0):>12.2f}"
            )
        if len(variant.rounds) > 1:
            print(
                f"{name:<9} {'median':>5} {variant.messages:>8} {variant.seconds:>8.2f} {variant.rate:>11.1f}"
                f" {variant.worker_cpu_us_per_message:>18.0f} {variant.redis_per_message:>15.2f}"
            )
    print()
    for name, variant in results.items():
        if not variant.rounds:
            continue
        busy = " / ".join(
            f"{variant.median_of('cores_busy', k):.2f}" for k in ("workers", "stub", "postgres", "redis", "bench")
        )
        per = ", ".join(f"{k} {variant.median_of('cpu_us_per_message', k):.0f}" for k in ("stub", "postgres", "redis"))
        print(
            f"{name}: cores busy (of {os.cpu_count()}) workers / stub / postgres / redis / bench: {busy}, "
            f"other {variant.median_of('cores_busy', 'other'):.2f}; CPU µs/message elsewhere: {per}"
        )
        last = variant.rounds[-1]
        print(
            f"{name}: Redis commands enqueue / worker start / run / stop: "
            + " / ".join(str(last.redis_totals.get(p, 0)) for p in ("enqueue", "worker_start", "run", "worker_stop"))
            + f" (last round); worker start-up {last.worker_start.get('seconds', 0):.1f} s and "
            f"{last.worker_start.get('cpu_s_per_worker', 0):.2f} CPU s each (not in the numbers above)"
        )
        for number, r in enumerate(variant.rounds, start=1):
            if r.profile:
                top = ", ".join(f"{k} {v}%" for k, v in list(r.profile["share_percent"].items())[:9])
                print(f"{name} round {number}: profile ({r.profile['samples']} samples): {top}")

    summary: dict[str, Any] = {name: variant.summary() for name, variant in results.items()}
    if all(results.get(v) and results[v].rounds for v in VARIANTS):
        fl, base = results["fluister"], results["baseline"]
        summary["fluister_vs_baseline"] = {
            "rate_ratio": round(fl.rate / base.rate, 2),
            "worker_cpu_ratio": round(base.worker_cpu_us_per_message / fl.worker_cpu_us_per_message, 2),
            "redis_ratio": round(base.redis_per_message / fl.redis_per_message, 2) if fl.redis_per_message else None,
        }
        ratios = summary["fluister_vs_baseline"]
        print(
            f"\nfluister/baseline (medians): {ratios['rate_ratio']:.1f}x the messages/s, "
            f"{ratios['worker_cpu_ratio']:.1f}x less worker CPU per message"
            + (f", {ratios['redis_ratio']:.1f}x fewer Redis commands per message" if ratios["redis_ratio"] else "")
        )
        if base.messages != fl.messages:
            print(
                f"(the baseline sent {base.messages} messages a round, Fluister {fl.messages}: "
                "both rates are steady, compared as such)"
            )
    if results.get("fluister") and results["fluister"].rounds:
        fl = results["fluister"]
        ratio = summary.get("fluister_vs_baseline", {}).get("rate_ratio")
        targets: dict[str, tuple[float | None, float, bool]] = {
            f">= {TARGET_RATIO:g}x the baseline's messages/s": (ratio, TARGET_RATIO, True),
        }
        if channel == "email":
            # The figures for emails; texts are held to the ratio only.
            targets[f">= {TARGET_RATE:,.0f} email messages/s"] = (fl.rate, TARGET_RATE, True)
            targets[f"<= {TARGET_REDIS:g} Redis commands/message"] = (fl.redis_per_message, TARGET_REDIS, False)
        summary["targets"] = {}
        print("targets (medians):")
        for label, (value, goal, at_least) in targets.items():
            if value is None:
                verdict = "not measured"
            else:
                verdict = "met" if (value >= goal if at_least else value <= goal) else "MISSED"
            summary["targets"][label] = {"value": value, "verdict": verdict}
            shown = "-" if value is None else f"{value:,.2f}"
            print(f"  {label:<40} {shown:>10}  {verdict}")
    return summary


def plan_runs(args: argparse.Namespace) -> list[tuple[str, str, argparse.Namespace]]:
    """(result name, variant, options) per run: each variant once, or Fluister once per worker count."""
    if args.scaling:
        return [
            (f"fluister-{w}-workers", "fluister", argparse.Namespace(**{**vars(args), "workers": w}))
            for w in args.scaling
        ]
    variants = [args.only] if args.only else list(VARIANTS)
    return [(variant, variant, args) for variant in variants]


def print_scaling(results: dict[str, VariantResult], counts: list[int]) -> dict[str, Any]:
    """The scaling curve: messages/s per number of worker processes, against the first count's."""
    print(
        f"\n{'workers':>7} {'messages':>8} {'seconds':>8} {'messages/s':>11} {'speed-up':>9} {'worker CPU µs/msg':>18}"
    )
    curve: dict[str, Any] = {}
    base = results.get(f"fluister-{counts[0]}-workers")
    for count in counts:
        run = results.get(f"fluister-{count}-workers")
        if run is None or not run.rounds:
            continue
        speedup = run.rate / base.rate if base and base.rate else 0.0
        curve[str(count)] = {**run.summary(), "speedup": round(speedup, 2)}
        print(
            f"{count:>7} {run.messages:>8} {run.seconds:>8.2f} {run.rate:>11.1f} {speedup:>8.2f}x"
            f" {run.worker_cpu_us_per_message:>18.0f}"
        )
    print(
        f"(medians of the rounds; the machine has {os.cpu_count()} cores, shared with the stub, PostgreSQL and Redis)"
    )
    return {"scaling": curve}


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.chdir(REPO_ROOT)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    load = machine_load(1.0)
    if load > 0.3:
        print(f"warning: the machine is already busy ({load:.2f} cores): the numbers will be low", flush=True)

    results: dict[str, VariantResult] = {}
    with ExitStack() as stack:
        redis_pid = None
        if args.private_redis:
            args.redis_url, redis_pid = start_private_redis(stack)
            print(f"private Redis at {args.redis_url}", flush=True)
        args.redis_pid = redis_pid
        connection = redis.Redis.from_url(args.redis_url, socket_timeout=30)
        counter = RedisCounter(connection)
        background = counter.background_rate(1.0)
        if background > 1:
            print(f"warning: Redis serves {background:.0f} commands/s for others: they are counted too", flush=True)
        work = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
        if args.keep_logs:
            print(f"worker logs in {work}", flush=True)
        else:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        texts = args.channel == "sms"
        stub = StubProcess(tls=not args.plain, texts=texts)
        stack.callback(stub.stop)
        provider = "Twilio" if texts else "SendGrid"
        print(f"{provider} stub at {stub.url} (pid {stub.pid}){'' if args.plain else ', TLS'}", flush=True)
        runs = plan_runs(args)
        for name, variant, run_args in runs:
            count = args.messages if variant == "fluister" else args.baseline_messages
            try:
                results[name] = run_variant(variant, count, run_args, stub, counter, work)
            except Exception:
                for log in sorted(work.glob(f"*/{variant}-round*-worker*.log")):
                    sys.stderr.write(f"--- {log.name} (last lines)\n")
                    sys.stderr.write("\n".join(log.read_text().splitlines()[-30:]) + "\n")
                raise

    summary = print_scaling(results, args.scaling) if args.scaling else print_table(results, args.channel)
    output = RESULTS_DIR / f"dispatch-{'' if args.channel == 'email' else args.channel + '-'}{stamp}.json"
    payload = {
        "started": stamp,
        "config": {k: v for k, v in vars(args).items()},
        "tls": not args.plain,
        "machine": {**machine_info(), "load_before": round(load, 2), "redis_background_cps": round(background, 1)},
        "git": git_state(),
        "results": {name: asdict(r) for name, r in results.items()},
        "summary": summary,
    }
    output.write_text(json.dumps(payload, indent=2, default=str))
    print(f"\nresults: {output.relative_to(REPO_ROOT)}")
    failed = [f"{name} {problem}" for name, r in results.items() for problem in r.problems]
    if failed:
        print("FAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
