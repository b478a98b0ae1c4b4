"""bench/forward: the forward POST under load, against a hello-world endpoint of the same app, in one run.

    python -m bench.forward              # full run: 3 rounds of 10 s per endpoint
    python -m bench.forward --quick      # smoke test: 1 round of 3 s
    python -m bench.forward --profile    # and then one more forward run under py-spy

One run: a fresh PostgreSQL database (migrated, demo campaign seeded), Redis for the
job queue, gunicorn on a free loopback port, and wrk alternating between
`GET /healthz` and `POST /c/demo/forward` (2 new friends per POST). It prints a table
and writes bench/results/forward-<timestamp>.json. See bench/README.md.

It fails (exit status 1) when more than 0.5% of the requests to either endpoint got
an unexpected status or a socket error, when the forwards and messages in PostgreSQL do
not match the POSTs that succeeded, or when no delivery job was left in Redis: a
benchmark of rejected forms or of skipped duplicates would measure the wrong thing.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import html
import json
import math
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import psycopg
import redis
import requests
from rq import Queue
from sqlalchemy.engine import make_url

from bench.common import REPO_ROOT, flask_command, libpq_url, recreate_database
from engine.tokens import Purpose, tokens_for

LUA_SCRIPT = Path(__file__).resolve().with_name("post.lua")
RESULTS_DIR = REPO_ROOT / "bench" / "results"

CAMPAIGN = "demo"
GOAL_RATIO = 0.5
MAX_BAD_FRACTION = 0.005
QUIET_CORES = 0.25  # machine load below which nothing else is taken to be running
MIN_FORM_SECONDS = 2  # given to the app: a form sent sooner after its page was rendered is refused
# Render stamps signed for each wrk run, per second of it: many times what the app can take.
STAMPS_PER_SECOND = 3000
# The demo campaign's volume caps, raised out of reach: wrk is one visitor on one IP address, where
# production has many. The caps stay on, so their check in Redis is part of what is measured.
UNREACHABLE_CAPS = {
    "friends_per_sender_per_day": 10**9,
    "submissions_per_ip_per_hour": 10**9,
    "submissions_per_network_per_hour": 10**9,
    "campaign_messages_per_day": 10**9,
    # The proof of work past the soft threshold (engine.challenge): checked, never reached.
    "challenge_after_submissions_per_ip_per_hour": 10**9,
}
RESULT_MARKER = "BENCH-RESULT "
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- options -------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.forward", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of healthz then forward (default 3)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per endpoint (default 3)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1: wrk shares the cores)")
    parser.add_argument("--friends", type=int, default=2, help="new friends per POST (default 2, at most 5)")
    parser.add_argument("--gunicorn-workers", type=int, default=4, help="gunicorn worker processes (default 4)")
    parser.add_argument(
        "--worker-class", default="sync", choices=("sync", "gthread"), help="gunicorn worker class (default sync)"
    )
    parser.add_argument("--threads", type=int, default=1, help="threads per gthread worker (default 1)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/fluister_bench"),
        help="PostgreSQL database to DROP and re-create (default: fluister_bench on 127.0.0.1; env BENCH_DATABASE_URL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
        help="a Redis database of its own, whose app keys are deleted afterwards "
        "(default: db 14 on 127.0.0.1; env BENCH_REDIS_URL)",
    )
    parser.add_argument("--queue-name", default="bench-forward", help="RQ queue name (default bench-forward)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="on a shared machine, wait up to this long for it to be idle before starting (default 0)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 round of 3 s, 1 s warm-up")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the measured rounds, one more forward run under py-spy (pip install py-spy)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.warmup = 3.0, 1, 1.0
    if not 1 <= args.friends <= 5:
        parser.error("--friends must be between 1 and 5 (the demo campaign's limit)")
    if args.worker_class == "sync" and args.threads != 1:
        # gunicorn silently turns a sync worker with --threads > 1 into gthread: say so instead.
        parser.error("--threads needs --worker-class gthread")
    if args.profile and not shutil.which("py-spy", path=_venv_path()):
        parser.error("--profile needs py-spy: pip install py-spy")
    return args


def _venv_path() -> str:
    # py-spy installed with the project's pip lands beside this interpreter, maybe not on PATH.
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


# -- wrk -----------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The wrk binary, installed from the distribution's packages when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found: installing it with apt-get", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
        found = shutil.which("wrk")
        if found:
            return found
    sys.exit("wrk is needed: install it (Debian/Ubuntu: sudo apt-get install wrk; macOS: brew install wrk)")


@dataclass
class WrkResult:
    endpoint: str
    duration_s: float
    requests: int  # responses received
    sent: int  # requests written; the last few may still have been in flight when wrk stopped
    ok: int  # responses with the expected status: 200 for healthz, 303 for forward
    bad: int
    bad_statuses: dict[str, int]
    socket_errors: dict[str, int]
    rps: float
    latency_ms: dict[str, float]
    cpu: dict[str, float] = field(default_factory=dict)  # cores busy on average, per component

    @property
    def failures(self) -> int:
        # wrk's own "status" error count is the non-2xx/3xx part of `bad`: not counted twice.
        return self.bad + sum(n for kind, n in self.socket_errors.items() if kind != "status")

    @property
    def failed_too_often(self) -> bool:
        return self.failures > MAX_BAD_FRACTION * max(self.requests, 1)

    def describe_failures(self) -> str:
        return (
            f"{self.failures} of {self.requests} requests failed "
            f"(unexpected statuses {self.bad_statuses}, socket errors {self.socket_errors})"
        )


def run_wrk(
    wrk: str, url: str, script_args: list[str], args: argparse.Namespace, duration: float, script: Path = LUA_SCRIPT
) -> WrkResult:
    command = [
        wrk,
        f"--threads={args.wrk_threads}",
        f"--connections={args.connections}",
        f"--duration={max(1, round(duration))}s",
        "--timeout=10s",
        f"--script={script}",
        url,
        "--",
        *script_args,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if completed.returncode != 0 or not lines:
        sys.stderr.write(completed.stdout + completed.stderr)
        raise RuntimeError(f"wrk failed on {url} (exit status {completed.returncode})")
    data = json.loads(lines[-1][len(RESULT_MARKER) :])
    duration_s = data["duration_us"] / 1e6
    return WrkResult(
        endpoint=script_args[0],
        duration_s=duration_s,
        requests=data["requests"],
        sent=data["sent"],
        ok=data["ok"],
        bad=data["bad"],
        bad_statuses=data["bad_statuses"],
        socket_errors=data["errors"],
        rps=data["requests"] / duration_s if duration_s else 0.0,
        latency_ms={name: us / 1000 for name, us in data["latency_us"].items()},
    )


# -- where the CPU goes --------------------------------------------------------------------------
# On a 2-core machine the load generator, the app, PostgreSQL and Redis compete for the same
# cores, so requests/s alone does not say what bounds them. Per component CPU does.


@dataclass(frozen=True)
class Watched:
    """How to tell our processes from the neighbours': the gunicorn master, our database, our Redis port."""

    gunicorn_pid: int
    database: str
    redis_port: int

    def component(self, pid: int, comm: str, ppid: int, title: str) -> str:
        if pid == self.gunicorn_pid or ppid == self.gunicorn_pid:
            return "app"
        if comm == "postgres":
            # A client backend's title is "postgres: <cluster>: <user> <database> <host>(<port>) <state>";
            # the server's own processes (checkpointer, WAL writer, ...) work for every database.
            is_backend = "(" in title or "[local]" in title
            return "postgres" if not is_backend or f" {self.database} " in title else "other"
        if comm.startswith("redis-server"):
            return "redis" if f":{self.redis_port}" in title else "other"
        return "other"


@dataclass(frozen=True)
class Snapshot:
    processes: dict[int, tuple[str, float]]  # pid: (component, CPU seconds so far)
    wrk: float
    machine: float


def _processes() -> Iterator[tuple[int, str, int, str, float]]:
    """(pid, comm, ppid, title, cpu seconds) of every process we can read in /proc."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
            title = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # exited while we looked
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        # After the comm: state, ppid, ...; utime and stime are the 12th and 13th.
        yield int(entry.name), comm, int(fields[1]), title, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _machine_busy_seconds() -> float:
    # The first line of /proc/stat: the whole machine's time per state, in clock ticks.
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def machine_load(seconds: float = 1.0) -> float:
    """Cores busy on the whole machine for a moment, before anything of ours runs."""
    before = _machine_busy_seconds()
    time.sleep(seconds)
    return (_machine_busy_seconds() - before) / seconds


def wait_for_quiet(limit: float) -> float:
    """The machine's load once it is idle (or when `limit` seconds have passed): busy neighbours skew everything."""
    deadline = time.monotonic() + limit
    load = machine_load()
    if load > QUIET_CORES and limit > 0:
        print(f"the machine is busy ({load:.2f} cores): waiting up to {limit:.0f} s for it to be idle", flush=True)
        while load > QUIET_CORES and time.monotonic() < deadline:
            load = machine_load(2.0)
    return load


def cpu_snapshot(watched: Watched) -> Snapshot:
    """CPU seconds used so far by each process of ours, by wrk (once waited for) and by the whole machine."""
    processes = {}
    for pid, comm, ppid, title, seconds in _processes():
        component = watched.component(pid, comm, ppid, title)
        if component != "other":
            processes[pid] = (component, seconds)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Snapshot(processes, children.ru_utime + children.ru_stime, _machine_busy_seconds())


def cores_busy(before: Snapshot, after: Snapshot, seconds: float) -> dict[str, float]:
    """Cores busy on average between two snapshots: app, postgres, redis, wrk, other and the whole machine.

    Per process, so that a process exiting in between does not make a sum go down; one that
    started in between counts from zero, one that exited is lost (ours live through a run).
    """
    used = {"app": 0.0, "postgres": 0.0, "redis": 0.0}
    for pid, (component, cpu) in after.processes.items():
        used[component] += max(0.0, cpu - before.processes.get(pid, (component, 0.0))[1])
    used["wrk"] = after.wrk - before.wrk
    machine = after.machine - before.machine
    busy = {name: round(value / seconds, 2) for name, value in used.items()}
    busy["machine"] = round(machine / seconds, 2)
    # Whatever else ran meanwhile: a busy neighbour makes the numbers worthless, so it is shown.
    busy["other"] = round(max(0.0, machine - sum(used.values())) / seconds, 2)
    return busy


# -- database and queue --------------------------------------------------------------------------


def raise_caps(url: str) -> None:
    with psycopg.connect(libpq_url(url)) as connection:
        updated = connection.execute(
            "UPDATE campaigns SET caps = %s WHERE slug = %s", (json.dumps(UNREACHABLE_CAPS), CAMPAIGN)
        ).rowcount
    if updated != 1:
        raise RuntimeError(f"no campaign {CAMPAIGN!r} to raise the caps of")


def rows_by_tag(url: str) -> dict[str, tuple[int, int]]:
    """(forwards, queued messages) per wrk run, read off the friend addresses f-<tag>-<thread>-<n>-<i>@…"""
    query = """
        SELECT split_part(f.recipient_contact, '-', 2) AS tag, count(DISTINCT f.id), count(m.id)
        FROM forwards f LEFT JOIN messages m ON m.forward_id = f.id AND m.status = 'queued'
        GROUP BY 1
    """
    with psycopg.connect(libpq_url(url)) as connection:
        return {str(tag): (int(f), int(m)) for tag, f, m in connection.execute(query).fetchall()}


def clear_redis(connection: redis.Redis, queue_name: str) -> None:
    """Delete what the run left in Redis: the queue, its jobs and registries, the app's flags and caps.

    The caps' keys are not named after the queue: that is why the run needs a Redis database of its own.
    """
    Queue(f"fluister:{queue_name}", connection=connection).delete(delete_jobs=True)  # REDIS_KEY_PREFIX + name
    # RQ's keys (rq:queue:fluister:<name>, ...), the app's (fluister:<name>:dispatch-pending, ...)
    # and the volume caps' counters (fluister:cap:...), some of which would otherwise live for weeks.
    for pattern in (f"*{queue_name}*", "fluister:cap:*"):
        leftovers = list(connection.scan_iter(match=pattern, count=1000))
        for start in range(0, len(leftovers), 1000):
            connection.delete(*leftovers[start : start + 1000])


# -- the server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def app_environment(args: argparse.Namespace, instance_path: Path, port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLASK_")}
    env.update(
        # development, not production: production refuses the outbox transport. Every setting the
        # app reads is given here, so that a developer's .env cannot change what is measured.
        FLUISTER_ENV="development",
        INSTANCE_PATH=str(instance_path),
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,  # with a Redis URL, no worker runs in the web process
        QUEUE_NAME=args.queue_name,
        SECRET_KEYS=secrets.token_urlsafe(32),
        CONTACT_HASH_KEY=secrets.token_urlsafe(32),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        EMAIL_TRANSPORT="outbox",
        SMS_TRANSPORT="outbox",
        TRUSTED_PROXY_COUNT="0",
        MIN_FORM_SECONDS=str(MIN_FORM_SECONDS),
        PYTHONUNBUFFERED="1",
    )
    return env


def gunicorn_options(args: argparse.Namespace, port: int) -> list[str]:
    return [
        f"--bind=127.0.0.1:{port}",
        f"--workers={args.gunicorn_workers}",
        f"--worker-class={args.worker_class}",
        f"--threads={args.threads}",
        # No access log (gunicorn's default): a line per request would be part of what we measure.
        "--log-level=warning",
    ]


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path


@contextmanager
def gunicorn(
    args: argparse.Namespace, env: dict[str, str], port: int, log_path: Path, startup_timeout: float = 30.0
) -> Iterator[Server]:
    command = [sys.executable, "-m", "gunicorn", *gunicorn_options(args, port), "wsgi:app"]
    # The app logs to stderr: into the file too, so that it does not interleave with the table.
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_until_up(server, startup_timeout)
        yield server
    finally:
        stop(process)


def wait_until_up(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {server.process.returncode}")
        try:
            if requests.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or the workers are still booting
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer /healthz within {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM is gunicorn's graceful stop: workers finish the requests in flight, so the rows are final."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the form ------------------------------------------------------------------------------------

_HIDDEN_INPUT = re.compile(r"<input\b[^>]*\btype=\"hidden\"[^>]*>")
_ATTRIBUTE = re.compile(r"\b(name|value)=\"([^\"]*)\"")


@dataclass(frozen=True)
class Form:
    """What a browser that loaded the landing page sends back with every POST."""

    cookie: str  # the Cookie header: Flask's session, which holds the CSRF secret
    hidden: list[tuple[str, str]]  # the form's hidden fields: CSRF token, render stamp, referral
    loaded_at: float  # time.monotonic() of the GET

    def body(self, friends: list[str]) -> list[tuple[str, str]]:
        # "website" is the honeypot: a person leaves it empty, as the page rendered it.
        return [*self.hidden, ("website", ""), ("sender_name", "Bench"), *(("friend", f) for f in friends)]

    def encoded_hidden(self) -> str:
        """The hidden fields but the render stamp, which post.lua adds: one stamp sends one forward."""
        return urlencode([*((name, value) for name, value in self.hidden if name != "rendered"), ("website", "")])

    def stamps(self, secret_keys: str, count: int) -> list[str]:
        """`count` render stamps for this visitor's session, as the landing page would sign them
        for as many page loads (the app spends each one on the forward it sends)."""
        tokens = tokens_for(secret_keys.split(","), 1, 1)
        visitor = tokens.verify(Purpose.FORM, dict(self.hidden)["rendered"]).partition(":")[0]
        return [tokens.sign(Purpose.FORM, f"{visitor}:{secrets.token_urlsafe(12)}") for _ in range(count)]


def fetch_form(base_url: str) -> Form:
    """The session cookie and hidden fields from one GET of the landing page, as a browser gets them.

    Flask-WTF keeps the CSRF secret in the signed session cookie and signs the form's token
    with it, and the page stamps the form with a signed render time; every POST of the run
    reuses them, like one visitor with many tabs open.
    """
    response = requests.get(f"{base_url}/c/{CAMPAIGN}", timeout=10)
    response.raise_for_status()
    hidden = []
    for tag in _HIDDEN_INPUT.findall(response.text):
        attributes = dict(_ATTRIBUTE.findall(tag))
        if "name" in attributes:
            hidden.append((attributes["name"], html.unescape(attributes.get("value", ""))))
    if "csrf_token" not in dict(hidden) or "session" not in response.cookies:
        raise RuntimeError("the landing page has no csrf_token input, or set no session cookie")
    return Form(f"session={response.cookies['session']}", hidden, time.monotonic())


def wait_like_a_person(form: Form) -> None:
    """A form sent sooner than MIN_FORM_SECONDS after its page was rendered is taken for a bot's."""
    time.sleep(max(0.0, form.loaded_at + MIN_FORM_SECONDS + 0.5 - time.monotonic()))


def check_one_post(base_url: str, form: Form, friends: int) -> None:
    """One POST before the load, so that a broken form fails with a readable error, not 100% bad statuses."""
    body = form.body([f"f-s-0-1-{i}@bench.example" for i in range(1, friends + 1)])
    response = requests.post(
        f"{base_url}/c/{CAMPAIGN}/forward",
        data=body,
        headers={"Cookie": form.cookie},
        allow_redirects=False,
        timeout=10,
    )
    if response.status_code != 303:
        errors = re.findall(r"<li>(.*?)</li>", response.text)
        raise RuntimeError(
            f"a single forward POST got {response.status_code}, not 303: {errors or response.text[:500]}"
        )


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Run:
    """Everything measured while the server was up."""

    rounds: list[dict[str, Any]] = field(default_factory=list)
    forward_runs: dict[str, WrkResult] = field(default_factory=dict)  # by tag, warm-up included
    profile: dict[str, Any] | None = None


class Bench:
    def __init__(self, args: argparse.Namespace, wrk: str, server: Server, secret_keys: str, stamps_dir: Path) -> None:
        self.args = args
        self.secret_keys = secret_keys
        self.stamps_dir = stamps_dir
        self.wrk = wrk
        self.server = server
        self.watched = Watched(
            server.process.pid, str(make_url(args.database_url).database), urlsplit(args.redis_url).port or 6379
        )
        self.form = fetch_form(server.base_url)
        wait_like_a_person(self.form)
        check_one_post(server.base_url, self.form, args.friends)

    def healthz(self, tag: str, duration: float) -> WrkResult:
        return self._measure(f"{self.server.base_url}/healthz", ["healthz", tag], duration)

    def forward(self, tag: str, duration: float) -> WrkResult:
        # A render stamp sends one forward: far more than the run can use, signed before it starts
        # (and old enough, as a person's would be, when it does).
        stamps = self.form.stamps(self.secret_keys, math.ceil(max(1.0, duration) * STAMPS_PER_SECOND))
        stamps_file = self.stamps_dir / f"stamps-{tag}.txt"
        stamps_file.write_text("\n".join(stamps) + "\n")
        time.sleep(MIN_FORM_SECONDS + 0.5)
        # The tag goes into every friend address: each wrk run writes rows that can be counted apart.
        script_args = [
            "forward",
            tag,
            self.form.cookie,
            self.form.encoded_hidden(),
            str(self.args.friends),
            str(stamps_file),
            str(self.args.wrk_threads),
        ]
        return self._measure(f"{self.server.base_url}/c/{CAMPAIGN}/forward", script_args, duration)

    def _measure(self, url: str, script_args: list[str], duration: float) -> WrkResult:
        before = cpu_snapshot(self.watched)
        result = run_wrk(self.wrk, url, script_args, self.args, duration)
        result.cpu = cores_busy(before, cpu_snapshot(self.watched), result.duration_s)
        if result.failed_too_often:
            raise RuntimeError(f"{result.endpoint} ({script_args[1]}): {result.describe_failures()}")
        return result


def run_rounds(args: argparse.Namespace, bench: Bench) -> Run:
    run = Run()
    # Warm-up: workers' first requests, database pools, compiled templates, PostgreSQL's caches.
    bench.healthz("w", args.warmup)
    run.forward_runs["w"] = bench.forward("w", args.warmup)
    # Alternating in one run, so that both endpoints see the same machine, state and noise.
    for number in range(1, args.rounds + 1):
        health = bench.healthz(f"h{number}", args.duration)
        forward = run.forward_runs[f"r{number}"] = bench.forward(f"r{number}", args.duration)
        ratio = forward.rps / health.rps if health.rps else 0.0
        run.rounds.append({"round": number, "healthz": asdict(health), "forward": asdict(forward), "ratio": ratio})
        print(
            f"round {number}: healthz {health.rps:.1f} req/s, forward {forward.rps:.1f} req/s, ratio {ratio:.3f}",
            flush=True,
        )
    if args.profile:
        run.profile = profile_forward(args, bench, run)
    return run


def profile_forward(args: argparse.Namespace, bench: Bench, run: Run) -> dict[str, Any]:
    """One more forward run (not part of the results) with py-spy sampling every gunicorn worker."""
    with py_spy_recording("forward", bench.server.process.pid) as stacks:
        run.forward_runs["p"] = bench.forward("p", args.duration)
    return {"stacks_file": str(stacks.relative_to(REPO_ROOT)), **summarise_stacks(stacks, "forward")}


@contextmanager
def py_spy_recording(name: str, pid: int) -> Iterator[Path]:
    """py-spy sampling the process `pid` and its children while the body runs; yields the file
    its raw stacks are in once the body is done (bench/results/<name>-<time>-profile.txt)."""
    py_spy = shutil.which("py-spy", path=_venv_path())
    assert py_spy is not None
    stacks = RESULTS_DIR / f"{name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-profile.txt"
    spy = subprocess.Popen(
        [py_spy, "record", "--subprocesses", "--gil", "--full-filenames", "--format=raw", "--rate=200",
         f"--output={stacks}", f"--pid={pid}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1)  # let it attach before the load starts
    try:
        yield stacks
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        spy.wait(timeout=30)
    # Paths relative to the repository or to site-packages, so that the file can be shared as it is.
    stacks.write_text(_LIBRARY_PREFIX.sub("(", stacks.read_text().replace(f"{REPO_ROOT}/", "")))


_LIBRARY_PREFIX = re.compile(r"\((?:[^();]*/)?(?:site-packages|lib/python3\.\d+)/")


def summarise_stacks(path: Path, view: str, top: int = 25) -> dict[str, Any]:
    """Share of the samples in the view function `view` (of engine/web/public/pages.py) per
    function of ours (inclusive: engine/ and templates/) and per leaf function."""
    inclusive: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_frame_name(frame) for frame in stack.split(";")]
        if not any(frame.startswith(f"{view} (engine/web/public/pages.py") for frame in frames):
            continue  # idle workers, healthz probes, gunicorn itself
        n = int(count)
        total += n
        for name in set(frames):
            if "(engine/" in name or "(templates/" in name:
                inclusive[name] += n
        leaves[frames[-1]] += n
    return {
        "samples": total,
        "engine_inclusive_percent": _shares(inclusive, total, top),
        "leaf_percent": _shares(leaves, total, top),
    }


def _shares(counter: collections.Counter[str], total: int, top: int) -> list[tuple[str, float]]:
    return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)] if total else []


def _frame_name(frame: str) -> str:
    # py-spy's raw frames look like "function (path/to/file.py:line)": the line number goes.
    name, _, where = frame.partition(" (")
    return f"{name} ({where.split(':')[0]})"


# -- checks and report ---------------------------------------------------------------------------


def verify(args: argparse.Namespace, run: Run, jobs_in_redis: int) -> list[str]:
    """What does not add up: rows in PostgreSQL and jobs in Redis against the POSTs that succeeded."""
    problems = []
    rows = rows_by_tag(args.database_url)
    for tag, result in run.forward_runs.items():
        forwards, messages = rows.get(tag, (0, 0))
        # Requests still in flight when wrk stopped were answered to nobody, but gunicorn
        # finished them: there may be rows beyond the 303s wrk counted, never beyond what it sent.
        low, high = result.ok * args.friends, result.sent * args.friends
        if not low <= forwards <= high:
            problems.append(f"run {tag}: {forwards} forwards in PostgreSQL, expected {low} to {high}")
        if messages != forwards:
            problems.append(f"run {tag}: {messages} queued messages for {forwards} forwards")
    # Delivery is asked for after each commit: a dispatch job must be waiting in the queue (the
    # forward enqueues one only when none is pending, so there is one job, not one per POST).
    if jobs_in_redis < 1:
        problems.append("no dispatch job in Redis: the forwards did not ask for delivery")
    return problems


def summarise(results: list[WrkResult]) -> dict[str, Any]:
    def median(values: list[float]) -> float:
        return round(statistics.median(values), 2)

    return {
        "rps": median([r.rps for r in results]),
        "p50_ms": median([r.latency_ms["p50"] for r in results]),
        "p99_ms": median([r.latency_ms["p99"] for r in results]),
        "cpu_cores_busy": {name: median([r.cpu[name] for r in results]) for name in results[0].cpu},
        "cpu_ms_per_request": {
            name: round(statistics.median([r.cpu[name] * r.duration_s * 1000 / r.requests for r in results]), 3)
            for name in ("app", "postgres", "redis", "wrk")
        },
    }


def cpu_ratio(healthz: dict[str, Any], forward: dict[str, Any]) -> float:
    """The ratio the CPU cost per request predicts: healthz's CPU per request over the forward's.

    On a machine where both endpoints are CPU-bound, req/s is cores / CPU per request, so this
    is what the ratio tends to; it moves less than req/s when a neighbour steals cores.
    """
    total = {name: sum(s["cpu_ms_per_request"].values()) for name, s in (("h", healthz), ("f", forward))}
    return round(total["h"] / total["f"], 3) if total["f"] else 0.0


def print_table(summary: dict[str, Any], rounds: list[dict[str, Any]], cores: int) -> None:
    print()
    print(f"{'round':<7}{'healthz req/s':>15}{'forward req/s':>15}{'ratio':>8}")
    for item in rounds:
        print(f"{item['round']:<7}{item['healthz']['rps']:>15.1f}{item['forward']['rps']:>15.1f}{item['ratio']:>8.3f}")
    print()
    print(
        f"{'endpoint':<24}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}   "
        f"cores busy (of {cores}): app / pg / redis / wrk / other / all"
    )
    for name, label in (("healthz", "GET /healthz"), ("forward", f"POST /c/{CAMPAIGN}/forward")):
        s = summary[name]
        c = s["cpu_cores_busy"]
        print(
            f"{label:<24}{s['rps']:>10.1f}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}   "
            f"{c['app']:.2f} / {c['postgres']:.2f} / {c['redis']:.2f} / {c['wrk']:.2f} / {c['other']:.2f} / "
            f"{c['machine']:.2f}"
        )
    print()
    print(
        f"ratio forward/healthz (median of rounds): {summary['ratio']:.3f}   goal: {GOAL_RATIO} or better   "
        f"(CPU per request predicts {summary['cpu_ratio']:.3f})"
    )
    for name in ("healthz", "forward"):
        per = summary[name]["cpu_ms_per_request"]
        print(
            f"CPU ms per {name} request: app {per['app']:.2f}, PostgreSQL {per['postgres']:.2f}, "
            f"Redis {per['redis']:.2f}, wrk {per['wrk']:.2f}"
        )


def print_profile(profile: dict[str, Any]) -> None:
    print(f"\nprofile of the forward POST ({profile['samples']} samples in gunicorn workers):")
    for name, percent in profile["engine_inclusive_percent"][:15]:
        print(f"{percent:7.1f}%  {name}")
    print(f"stacks (for a flame graph): {profile['stacks_file']}")


def machine_info(wrk: str, pg_version: str, queue_redis: redis.Redis, idle_load: float) -> dict[str, Any]:
    cpu_model = "?"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        cpu_model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            "?",
        )
    wrk_version = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False).stdout
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model,
        "cores_busy_before_start": round(idle_load, 2),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "redis": str(queue_redis.info("server").get("redis_version", "?")),
        "gunicorn": version("gunicorn"),
        "wrk": wrk_version.split("\n")[0].strip(),
    }


def source_revision() -> dict[str, Any]:
    """Which code was measured: the commit, and whether the app's files differed from it (bench/ and tests/ aside)."""

    def git(*arguments: str) -> str:
        completed = subprocess.run(["git", *arguments], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        return completed.stdout.strip()

    app_files = ["--", ".", ":!bench", ":!tests"]
    changed = (
        git("diff", "HEAD", "--name-only", *app_files).split()
        + git("ls-files", "--others", "--exclude-standard", *app_files).split()
    )
    revision: dict[str, Any] = {"commit": git("rev-parse", "HEAD") or "?", "dirty": bool(changed)}
    if changed:
        # Which uncommitted changes: runs with the same digest measured the same code.
        revision["changed_files"] = sorted(changed)
        revision["diff_sha256"] = hashlib.sha256(git("diff", "HEAD", *app_files).encode()).hexdigest()[:16]
    return revision


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    wrk = ensure_wrk()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)

    idle_load = wait_for_quiet(args.wait_quiet)
    started = datetime.now(UTC)
    if idle_load > QUIET_CORES:
        print(f"warning: the machine is already busy ({idle_load:.2f} cores) before the benchmark starts", flush=True)
    queue_redis = redis.Redis.from_url(args.redis_url)
    clear_redis(queue_redis, args.queue_name)  # a run killed half-way may have left jobs behind

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="fluister-bench-") as tmp:
        instance_path = Path(tmp)
        log_path = instance_path / "gunicorn.log"
        env = app_environment(args, instance_path, port)
        print(f"database {make_url(args.database_url).database}: dropped, created, migrated, seeded", flush=True)
        pg_version = recreate_database(args.database_url)
        flask_command(env, "db", "upgrade")
        flask_command(env, "seed-demo")
        raise_caps(args.database_url)
        print(f"gunicorn {' '.join(gunicorn_options(args, port))} wsgi:app", flush=True)
        try:
            with gunicorn(args, env, port, log_path) as server:
                run = run_rounds(args, Bench(args, wrk, server, env["SECRET_KEYS"], instance_path))
            # gunicorn has stopped gracefully: every request it took is committed and enqueued.
            jobs_in_redis = Queue(f"fluister:{args.queue_name}", connection=queue_redis).count
            problems = verify(args, run, jobs_in_redis)
        except Exception as error:
            if log_path.is_file():
                sys.stderr.write("--- gunicorn log, last 40 lines\n")
                sys.stderr.write("".join(log_path.read_text().splitlines(True)[-40:]))
            if not isinstance(error, RuntimeError):
                raise
            # Our own failures (bad statuses, wrk or gunicorn not working) need no traceback.
            print(f"FAILED: {error}", file=sys.stderr)
            return 1
        finally:
            clear_redis(queue_redis, args.queue_name)

    healthz = summarise([WrkResult(**item["healthz"]) for item in run.rounds])
    forward = summarise([WrkResult(**item["forward"]) for item in run.rounds])
    summary = {
        "healthz": healthz,
        "forward": forward,
        "ratio": round(statistics.median(item["ratio"] for item in run.rounds), 3),
        "cpu_ratio": cpu_ratio(healthz, forward),
        "goal_ratio": GOAL_RATIO,
    }
    report = {
        "benchmark": "forward",
        "started_at": started.isoformat(timespec="seconds"),
        "source": source_revision(),
        "machine": machine_info(wrk, pg_version, queue_redis, idle_load),
        "config": {
            "gunicorn": {"workers": args.gunicorn_workers, "worker_class": args.worker_class, "threads": args.threads},
            "wrk": {"threads": args.wrk_threads, "connections": args.connections, "duration_s": args.duration},
            "rounds": args.rounds,
            "warmup_s": args.warmup,
            "friends_per_post": args.friends,
            "quick": args.quick,
        },
        "summary": summary,
        "rounds": run.rounds,
        "profile": run.profile,
        "checks": {"problems": problems, "jobs_in_redis": jobs_in_redis},
    }
    out = RESULTS_DIR / f"forward-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")

    print_table(summary, run.rounds, os.cpu_count() or 1)
    if run.profile:
        print_profile(run.profile)
    print(f"\nresults: {out.relative_to(REPO_ROOT)}")
    if problems:
        print("FAILED checks:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(
        "checks: the forwards and queued messages in PostgreSQL match the POSTs that succeeded; "
        f"{jobs_in_redis} dispatch job(s) waiting in Redis"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
