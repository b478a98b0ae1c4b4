"""bench/landing: the landing page GET under load, against a hello-world endpoint of the same app, in one run.

    python -m bench.landing              # full run: 3 rounds of 10 s per endpoint
    python -m bench.landing --quick      # smoke test: 1 round of 3 s
    python -m bench.landing --profile    # and then one more run of each visit under py-spy

One run: a fresh PostgreSQL database (migrated, demo campaign seeded, with 1 forward), a copy
of the demo campaign with 1,000,000 forwards written by PostgreSQL itself, Redis, gunicorn on a
free loopback port, and wrk alternating between `GET /healthz` and four visits: a first visit
(`GET /c/demo`, no cookie) and a visit through a tracked link (the referral cookie that
`/f/<token>` sets), on the small campaign and on the big one. It prints a table and writes
bench/results/landing-<timestamp>.json. See bench/README.md.

It fails (exit status 1) when more than 0.5% of the requests to an endpoint got an unexpected
status or a socket error, or when the landing views counted in Redis do not match the 200s:
every visit is counted once, no more, no less.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis
from sqlalchemy.engine import make_url

from bench.common import REPO_ROOT, flask_command, libpq_url, recreate_database
from bench.forward.__main__ import (
    GOAL_RATIO,
    QUIET_CORES,
    Server,
    Watched,
    WrkResult,
    _venv_path,
    app_environment,
    clear_redis,
    cores_busy,
    cpu_ratio,
    cpu_snapshot,
    ensure_wrk,
    free_port,
    gunicorn,
    gunicorn_options,
    machine_info,
    py_spy_recording,
    run_wrk,
    source_revision,
    summarise,
    summarise_stacks,
    wait_for_quiet,
)
from engine.tokens import Purpose, tokens_for
from engine.web.public.pages import REF_COOKIE

LUA_SCRIPT = Path(__file__).resolve().with_name("visit.lua")
RESULTS_DIR = REPO_ROOT / "bench" / "results"

SMALL, BIG = "demo", "demo-big"
BIG_FORWARDS = 1_000_000
# The visits measured, each against the healthz of its round: (name, campaign, with a referral cookie).
VISITS = (
    ("first", SMALL, False),
    ("referred", SMALL, True),
    ("first-big", BIG, False),
    ("referred-big", BIG, True),
)
VISIT_KEYS = "fluister:analytics:visits:*"  # the landing views' counters (engine.services.analytics.visits)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.landing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of healthz then each visit (default 3)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per endpoint (default 3)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1: wrk shares the cores)")
    parser.add_argument("--gunicorn-workers", type=int, default=4, help="gunicorn worker processes (default 4)")
    parser.add_argument("--worker-class", default="sync", choices=("sync", "gthread"))
    parser.add_argument("--threads", type=int, default=1, help="threads per gthread worker (default 1)")
    parser.add_argument(
        "--forwards", type=int, default=BIG_FORWARDS, help=f"forwards of the big campaign (default {BIG_FORWARDS:,})"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_LANDING_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/fluister_bench_landing"
        ),
        help="PostgreSQL database to DROP and re-create (default: fluister_bench_landing on 127.0.0.1; "
        "env BENCH_LANDING_DATABASE_URL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_LANDING_REDIS_URL", "redis://127.0.0.1:6379/13"),
        help="a Redis database of its own, whose app keys are deleted afterwards (default: db 13; "
        "env BENCH_LANDING_REDIS_URL)",
    )
    parser.add_argument("--queue-name", default="bench-landing", help="RQ queue name (default bench-landing)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 round of 3 s, 1 s warm-up")
    parser.add_argument("--profile", action="store_true", help="then one more run of each visit under py-spy")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.warmup = 3.0, 1, 1.0
    if args.worker_class == "sync" and args.threads != 1:
        parser.error("--threads needs --worker-class gthread")
    if args.profile and not shutil.which("py-spy", path=_venv_path()):
        parser.error("--profile needs py-spy: pip install py-spy")
    return args


# -- the campaigns -------------------------------------------------------------------------------


def prepare_campaigns(url: str, forwards: int) -> dict[str, tuple[int, str]]:
    """One forward on the demo campaign, a copy of it with `forwards` forwards: each campaign's
    id, and the public id of one of its forwards, whose link the referred visitor came through."""
    with psycopg.connect(libpq_url(url)) as connection:
        small = _campaign_id(connection, SMALL)
        big = _copy_campaign(connection, small, BIG)
        _forwards(connection, small, "small", 1)
        _forwards(connection, big, "big", forwards)
        connection.execute("ANALYZE forwards")
    return {SMALL: (small, "small-1"), BIG: (big, f"big-{max(1, forwards // 2)}")}


def _campaign_id(connection: psycopg.Connection, slug: str) -> int:
    row = connection.execute("SELECT id FROM campaigns WHERE slug = %s", (slug,)).fetchone()
    if row is None:
        raise RuntimeError(f"no campaign {slug!r}")
    return int(row[0])


def _columns(connection: psycopg.Connection, table: str, leave_out: set[str]) -> list[str]:
    rows = connection.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [str(name) for (name,) in rows if name not in leave_out]


def _copy_campaign(connection: psycopg.Connection, source: int, slug: str) -> int:
    """The demo campaign under another slug, with its templates: the same page, another size."""
    columns = _columns(connection, "campaigns", {"id", "slug"})
    listed = ", ".join(f'"{c}"' for c in columns)
    row = connection.execute(
        f'INSERT INTO campaigns ("slug", {listed}) SELECT %s, {listed} FROM campaigns WHERE id = %s RETURNING id',  # noqa: S608
        (slug, source),
    ).fetchone()
    assert row is not None
    copy = int(row[0])
    template_columns = _columns(connection, "campaign_templates", {"id", "campaign_id"})
    listed = ", ".join(f'"{c}"' for c in template_columns)
    connection.execute(
        f'INSERT INTO campaign_templates ("campaign_id", {listed}) '  # noqa: S608
        f"SELECT %s, {listed} FROM campaign_templates WHERE campaign_id = %s",
        (copy, source),
    )
    return copy


def _forwards(connection: psycopg.Connection, campaign_id: int, prefix: str, count: int) -> None:
    """`count` forwards of generation 1, written by PostgreSQL (generate_series): public ids
    `<prefix>-1` … `<prefix>-<count>`."""
    connection.execute(
        """INSERT INTO forwards (public_id, campaign_id, parent_id, generation, channel, sender_name,
               sender_contact_hash, recipient_contact_hash, policy_name, policy_version, client_ip_hash, locale,
               created_at)
           SELECT %(prefix)s || '-' || n, %(c)s, NULL, 1, 'email', 'Sender ' || (n / 3), md5('s' || (n / 3)),
                  md5(%(prefix)s || n), 'us', 1, md5('ip' || (n / 3)), 'en', now() - interval '1 day'
           FROM generate_series(1, %(count)s) AS n""",
        {"c": campaign_id, "prefix": prefix, "count": count},
    )


# -- the runs ------------------------------------------------------------------------------------


@dataclass
class Run:
    rounds: list[dict[str, Any]] = field(default_factory=list)
    visit_runs: dict[str, WrkResult] = field(default_factory=dict)  # "<visit>/<round tag>": result
    profile: dict[str, Any] | None = None


class Bench:
    def __init__(self, args: argparse.Namespace, wrk: str, server: Server, cookies: dict[str, str]) -> None:
        self.args, self.wrk, self.server, self.cookies = args, wrk, server, cookies
        self.watched = Watched(
            server.process.pid, make_url(args.database_url).database or "", make_url(args.redis_url).port or 6379
        )
        self.redis = redis.Redis.from_url(args.redis_url)

    def healthz(self, tag: str, duration: float) -> WrkResult:
        return self._measure(f"{self.server.base_url}/healthz", ["healthz", tag], duration)

    def visit(self, name: str, tag: str, duration: float) -> WrkResult:
        _, slug, referred = next(v for v in VISITS if v[0] == name)
        cookie = self.cookies[slug] if referred else ""
        result = self._measure(f"{self.server.base_url}/c/{slug}", ["visit", tag, cookie], duration)
        result.endpoint = name
        return result

    def _measure(self, url: str, script_args: list[str], duration: float) -> WrkResult:
        before = cpu_snapshot(self.watched)
        result = run_wrk(self.wrk, url, script_args, self.args, duration, script=LUA_SCRIPT)
        result.cpu = cores_busy(before, cpu_snapshot(self.watched), result.duration_s)
        if result.failed_too_often:
            raise RuntimeError(f"{url} ({script_args[1]}): {result.describe_failures()}")
        return result


def views_counted(connection: redis.Redis) -> dict[tuple[int, str], int]:
    """The landing views in Redis by campaign id and slice ("1:direct": a first visit; "2:email":
    through a forward of generation 1 sent by e-mail)."""
    counted: collections.Counter[tuple[int, str]] = collections.Counter()
    for key in connection.scan_iter(match=VISIT_KEYS):
        campaign_id = int(key.decode().split(":")[-2])  # fluister:analytics:visits:<campaign id>:<day>
        for slice_name, value in connection.hgetall(key).items():
            counted[(campaign_id, slice_name.decode())] += int(value)
    return dict(counted)


def run_rounds(args: argparse.Namespace, bench: Bench) -> Run:
    run = Run()
    bench.healthz("w", args.warmup)
    for name, _, _ in VISITS:
        run.visit_runs[f"{name}/w"] = bench.visit(name, "w", args.warmup)
    for number in range(1, args.rounds + 1):
        health = bench.healthz(f"h{number}", args.duration)
        item: dict[str, Any] = {"round": number, "healthz": asdict(health)}
        for name, _, _ in VISITS:
            result = run.visit_runs[f"{name}/r{number}"] = bench.visit(name, f"r{number}", args.duration)
            item[name] = asdict(result)
            item[f"ratio_{name}"] = result.rps / health.rps if health.rps else 0.0
        run.rounds.append(item)
        print(
            f"round {number}: healthz {health.rps:.1f} req/s, "
            + ", ".join(f"{name} {item[name]['rps']:.1f} ({item[f'ratio_{name}']:.3f})" for name, _, _ in VISITS),
            flush=True,
        )
    if args.profile:
        run.profile = profile_visits(args, bench, run)
    return run


def profile_visits(args: argparse.Namespace, bench: Bench, run: Run) -> dict[str, Any]:
    """One more run of each visit (not part of the results) with py-spy sampling every gunicorn worker."""
    with py_spy_recording("landing", bench.server.process.pid) as stacks:
        for name, _, _ in VISITS:
            run.visit_runs[f"{name}/p"] = bench.visit(name, "p", args.duration)
    return {"stacks_file": str(stacks.relative_to(REPO_ROOT)), **summarise_stacks(stacks, "landing")}


# -- checks and report ---------------------------------------------------------------------------


def verify(run: Run, counted: dict[tuple[int, str], int], campaign_ids: dict[str, int]) -> list[str]:
    """Every visit answered 200 counted once in Redis, in its slice: no more than wrk sent, no
    fewer than it got answered (requests still in flight when wrk stopped were answered to nobody,
    but gunicorn finished and counted them)."""
    problems = []
    for name, slug, referred in VISITS:
        results = [result for key, result in run.visit_runs.items() if key.startswith(f"{name}/")]
        views = counted.get((campaign_ids[slug], "2:email" if referred else "1:direct"), 0)
        low, high = sum(r.ok for r in results), sum(r.sent for r in results)
        if not low <= views <= high:
            problems.append(f"{name}: {views} views counted for {low} pages answered ({high} sent)")
    return problems


def print_table(summary: dict[str, Any], rounds: list[dict[str, Any]], cores: int, load: str) -> None:
    names = [name for name, _, _ in VISITS]
    print()
    print(f"{'round':<7}{'healthz req/s':>15}" + "".join(f"{name + ' req/s':>20}" for name in names))
    for item in rounds:
        print(
            f"{item['round']:<7}{item['healthz']['rps']:>15.1f}"
            + "".join(f"{item[name]['rps']:>12.1f} ({item[f'ratio_{name}']:.3f})" for name in names)
        )
    print()
    print(
        f"{'endpoint':<30}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}   "
        f"cores busy (of {cores}): app / pg / redis / wrk / other / all"
    )
    labels = {"healthz": "GET /healthz"} | {
        name: f"GET /c/{slug}" + (" (ref cookie)" if referred else "") for name, slug, referred in VISITS
    }
    for name in ("healthz", *names):
        s = summary[name]
        c = s["cpu_cores_busy"]
        print(
            f"{labels[name]:<30}{s['rps']:>10.1f}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}   "
            f"{c['app']:.2f} / {c['postgres']:.2f} / {c['redis']:.2f} / {c['wrk']:.2f} / {c['other']:.2f} / "
            f"{c['machine']:.2f}"
        )
    print()
    for name in names:
        print(
            f"ratio {name}/healthz (median of rounds): {summary['ratio'][name]:.3f}   goal: {GOAL_RATIO} or better   "
            f"(CPU per request predicts {summary['cpu_ratio'][name]:.3f})"
        )
    for name in ("healthz", *names):
        per = summary[name]["cpu_ms_per_request"]
        print(
            f"CPU ms per {name} request: app {per['app']:.2f}, PostgreSQL {per['postgres']:.2f}, "
            f"Redis {per['redis']:.2f}, wrk {per['wrk']:.2f}"
        )
    print(f"load average before the run: {load}")


def print_profile(profile: dict[str, Any]) -> None:
    print(f"\nprofile of the landing GET ({profile['samples']} samples in gunicorn workers):")
    for name, percent in profile["engine_inclusive_percent"][:15]:
        print(f"{percent:7.1f}%  {name}")
    print(f"stacks (for a flame graph): {profile['stacks_file']}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    wrk = ensure_wrk()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    idle_load = wait_for_quiet(args.wait_quiet)
    load_average = " ".join(f"{value:.2f}" for value in os.getloadavg())
    started = datetime.now(UTC)
    if idle_load > QUIET_CORES:
        print(f"warning: the machine is already busy ({idle_load:.2f} cores) before the benchmark starts", flush=True)
    connection = redis.Redis.from_url(args.redis_url)
    clear(connection, args.queue_name)

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="fluister-bench-") as tmp:
        instance_path = Path(tmp)
        log_path = instance_path / "gunicorn.log"
        env = app_environment(args, instance_path, port)
        print(
            f"database {make_url(args.database_url).database}: dropped, created, migrated, seeded, "
            f"{args.forwards:,} forwards written",
            flush=True,
        )
        pg_version = recreate_database(args.database_url)
        flask_command(env, "db", "upgrade")
        flask_command(env, "seed-demo")
        campaigns = prepare_campaigns(args.database_url, args.forwards)
        tokens = tokens_for(env["SECRET_KEYS"].split(","), 1, 1)
        cookies = {slug: f"{REF_COOKIE}={tokens.sign(Purpose.FORWARD, ref)}" for slug, (_, ref) in campaigns.items()}
        print(f"gunicorn {' '.join(gunicorn_options(args, port))} wsgi:app", flush=True)
        try:
            # Four workers importing the app on a busy shared machine may take more than half a minute.
            with gunicorn(args, env, port, log_path, startup_timeout=180.0) as server:
                run = run_rounds(args, Bench(args, wrk, server, cookies))
            # gunicorn has stopped gracefully: every view it answered is counted.
            counted = views_counted(connection)
            problems = verify(run, counted, {slug: campaign_id for slug, (campaign_id, _) in campaigns.items()})
        except Exception as error:
            if log_path.is_file():
                sys.stderr.write("--- gunicorn log, last 40 lines\n")
                sys.stderr.write("".join(log_path.read_text().splitlines(True)[-40:]))
            if not isinstance(error, RuntimeError):
                raise
            print(f"FAILED: {error}", file=sys.stderr)
            return 1
        finally:
            clear(connection, args.queue_name)

    names = [name for name, _, _ in VISITS]
    healthz = summarise([WrkResult(**item["healthz"]) for item in run.rounds])
    summary: dict[str, Any] = {"healthz": healthz, "ratio": {}, "cpu_ratio": {}, "goal_ratio": GOAL_RATIO}
    for name in names:
        summary[name] = summarise([WrkResult(**item[name]) for item in run.rounds])
        summary["ratio"][name] = round(statistics.median(item[f"ratio_{name}"] for item in run.rounds), 3)
        summary["cpu_ratio"][name] = cpu_ratio(healthz, summary[name])
    report = {
        "benchmark": "landing",
        "started_at": started.isoformat(timespec="seconds"),
        "source": source_revision(),
        "machine": machine_info(wrk, pg_version, connection, idle_load) | {"load_average_before": load_average},
        "config": {
            "gunicorn": {"workers": args.gunicorn_workers, "worker_class": args.worker_class, "threads": args.threads},
            "wrk": {"threads": args.wrk_threads, "connections": args.connections, "duration_s": args.duration},
            "rounds": args.rounds,
            "warmup_s": args.warmup,
            "big_campaign_forwards": args.forwards,
            "quick": args.quick,
        },
        "summary": summary,
        "rounds": run.rounds,
        "profile": run.profile,
        "checks": {"problems": problems, "views_counted": {f"{c}/{s}": n for (c, s), n in counted.items()}},
    }
    out = RESULTS_DIR / f"landing-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")

    print_table(summary, run.rounds, os.cpu_count() or 1, load_average)
    if run.profile:
        print_profile(run.profile)
    print(f"\nresults: {out.relative_to(REPO_ROOT)}")
    if problems:
        print("FAILED checks:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("checks: every landing page answered was counted once as a view in Redis")
    return 0


def clear(connection: redis.Redis, queue_name: str) -> None:
    """What the run left in Redis: bench/forward's leftovers, and the landing views' counters."""
    clear_redis(connection, queue_name)
    leftovers = list(connection.scan_iter(match=VISIT_KEYS, count=1000))
    if leftovers:
        connection.delete(*leftovers)


if __name__ == "__main__":
    sys.exit(main())
