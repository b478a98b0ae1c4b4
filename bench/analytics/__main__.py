"""bench/analytics: the campaign dashboard on a generated campaign, on PostgreSQL.

    python -m bench.analytics                       # 1,000,000 forwards, 5 runs of each query
    python -m bench.analytics --forwards 100000     # smaller
    python -m bench.analytics --simulate 2000       # and a small campaign through `flask simulate`

One run: drops and creates the database `fluister_bench_analytics`, migrates it, writes a
campaign of N forwards with its messages, clicks, coupons, redemptions and visits in bulk
(bench/analytics/generate.py), builds its roll-ups (the first refresh, a full rebuild, timed),
then `--rounds` times adds `--new-forwards` forwards with their messages, clicks, redemptions
and late delivery reports and refreshes incrementally (timed); checks that the incremental
roll-ups equal a full rebuild's (a digest of every row, before and after a rebuild, which is
timed too); then times each of the dashboard's queries and the whole dashboard (the HTML page
and the JSON API, through the app with an API key): the median of the runs. Targets: an
incremental refresh under 1 s, the whole dashboard under 50 ms, at 1,000,000 forwards. The
machine's load average is printed beside each phase. Results:
bench/results/analytics-<timestamp>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from flask.testing import FlaskClient

from bench.analytics.generate import add_activity, generate
from bench.common import REPO_ROOT, flask_command, libpq_url, recreate_database
from config import Settings
from engine import create_app
from engine.models import AmbassadorStats, Campaign
from engine.runtime import EXTENSION_KEY
from engine.services.analytics import dashboard, rebuild_rollups, refresh_rollups
from engine.services.analytics.maturity import mature_k
from engine.services.analytics.revenue import campaign_revenue
from engine.services.analytics.sql import find_campaign_id
from tests.helpers import staff_client

RESULTS_DIR = REPO_ROOT / "bench" / "results"
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/fluister_bench_analytics"
SLUG = "bench"
TARGET_SECONDS = 0.05  # the whole dashboard
REFRESH_TARGET_SECONDS = 1.0  # an incremental refresh after --new-forwards forwards
ROLLUP_TABLES = (
    "forward_stats",
    "forward_reach",
    "metric_cells",
    "daily_forwards",
    "daily_cohorts",
    "ambassador_stats",
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_ANALYTICS_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--forwards", type=int, default=1_000_000, help="forwards to generate (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each query (default 5)")
    parser.add_argument("--new-forwards", type=int, default=1000, help="forwards added before each incremental refresh")
    parser.add_argument("--rounds", type=int, default=3, help="incremental refreshes, each after new forwards (3)")
    parser.add_argument("--simulate", type=int, default=0, help="also run `flask simulate` with this many people")
    return parser.parse_args(argv)


def timed(runs: int, call: Callable[[], Any]) -> dict[str, float]:
    call()  # warm: the first run reads the pages from disk
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = datetime.now(UTC)
    server = recreate_database(args.database_url)
    env = {**os.environ, "DATABASE_URL": args.database_url, "FLUISTER_ENV": "development"}
    env.pop("REDIS_URL", None)
    flask_command(env, "db", "upgrade")

    print(f"generating {args.forwards:,} forwards (PostgreSQL {server}) ...", flush=True)
    clock = time.perf_counter()
    with psycopg.connect(libpq_url(args.database_url), autocommit=True) as connection:
        generate(connection, SLUG, args.forwards)
        connection.execute("VACUUM ANALYZE")
        counts = {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]  # noqa: S608
            for table in ("forwards", "messages", "clicks", "redemptions")
        }
        deepest = connection.execute("SELECT max(generation) FROM forwards").fetchone()[0]  # type: ignore[index]
    generated = time.perf_counter() - clock
    print(f"  {counts} deepest generation {deepest}, in {generated:.1f} s", flush=True)

    app = create_app(_settings(args.database_url))
    runtime = app.extensions[EXTENSION_KEY]
    db = runtime.db
    print(f"building the roll-ups (the first refresh: a full rebuild), load {_load()} ...", flush=True)
    first = refresh_rollups(db, SLUG, datetime.now(UTC))
    _vacuum(args.database_url)
    print(f"  {first.forwards:,} forwards in {first.seconds:.2f} s", flush=True)
    incremental: list[dict[str, Any]] = []
    for round_number in range(1, args.rounds + 1):
        with psycopg.connect(libpq_url(args.database_url), autocommit=True) as connection:
            campaign_id = int(connection.execute("SELECT id FROM campaigns WHERE slug = %s", (SLUG,)).fetchone()[0])  # type: ignore[index]
            added = add_activity(connection, campaign_id, args.new_forwards)
        load = _load()
        report = refresh_rollups(db, SLUG, datetime.now(UTC))
        assert not report.full, "an incremental refresh rebuilt"
        incremental.append({"seconds": report.seconds, "rederived": report.rederived, "added": added, "load": load})
        print(
            f"  round {round_number}: {added} -> incremental refresh of {report.rederived:,} forwards"
            f" in {report.seconds:.3f} s (load {load})",
            flush=True,
        )
    before = _digest(args.database_url)
    load = _load()
    rebuild = rebuild_rollups(db, SLUG, datetime.now(UTC))
    print(f"  full rebuild of {rebuild.forwards:,} forwards in {rebuild.seconds:.2f} s (load {load})", flush=True)
    same = before == _digest(args.database_url)
    print(f"  incremental roll-ups {'equal' if same else 'DIFFER FROM'} the full rebuild's, row by row", flush=True)
    _vacuum(args.database_url)

    results: dict[str, dict[str, float]] = {}
    with db.reading() as session:
        campaign_id = find_campaign_id(session, SLUG)
        campaign = session.get(Campaign, campaign_id)
        overall, _, _ = dashboard._slices(session, campaign_id)
        queries: dict[str, Callable[[], Any]] = {
            "slices (metric cells + visits)": lambda: dashboard._slices(session, campaign_id),
            "reach over time": lambda: dashboard._reach_over_time(session, campaign_id),
            "ambassadors by reach": lambda: dashboard._ambassadors(session, campaign_id, AmbassadorStats.reach),
            "ambassadors by conversions": lambda: dashboard._ambassadors(
                session, campaign_id, AmbassadorStats.conversions
            ),
            "largest chains": lambda: dashboard._chains(session, campaign_id),
            "projection": lambda: dashboard._projection(session, campaign, overall, datetime.now(UTC)),
            "revenue": lambda: campaign_revenue(session, campaign_id),
            # Uncached: a large campaign's is kept per worker between refreshes (dashboard._mature).
            "K on mature forwards": lambda: mature_k(
                session, campaign_id, datetime.now(UTC), overall.cycle_time_seconds
            ),
        }
        for name, call in queries.items():
            results[name] = timed(args.runs, call)
        top_root = dashboard._chains(session, campaign_id)[0].root
    results["campaign_metrics (all of the above)"] = timed(
        args.runs, lambda: dashboard.campaign_metrics(db, SLUG, datetime.now(UTC))
    )

    key = runtime.staff.create_api_key("bench", "marketer").secret
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    # The console takes a signed-in session, never an API key (those are for /api/ only).
    marketer = staff_client(app, "marketer")

    def get(path: str, as_client: FlaskClient = client) -> None:
        response = as_client.get(path, headers=headers if as_client is client else {})
        assert response.status_code == 200, (path, response.status_code, response.text[:500])

    results["GET dashboard (HTML)"] = timed(
        args.runs, lambda: get(f"/console/campaigns/{SLUG}/dashboard", as_client=marketer)
    )
    results["GET metrics (JSON)"] = timed(args.runs, lambda: get(f"/api/v1/campaigns/{SLUG}/metrics"))
    results["GET metrics.csv?figure=slices"] = timed(args.runs, lambda: get(f"/api/v1/campaigns/{SLUG}/metrics.csv"))
    results["GET tree of the largest chain"] = timed(
        args.runs, lambda: get(f"/api/v1/campaigns/{SLUG}/forwards/{top_root}/tree")
    )
    db.dispose()

    simulation = _simulate(args, env) if args.simulate else None
    refresh_median = statistics.median(r["seconds"] for r in incremental) if incremental else float("nan")
    _print(results, rebuild.seconds, refresh_median, args.forwards)
    whole = results["GET dashboard (HTML)"]["median"]
    summary = {
        "benchmark": "analytics",
        "started": started.isoformat(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "postgresql": server},
        "forwards": args.forwards,
        "rows": counts,
        "deepest_generation": deepest,
        "generate_seconds": generated,
        "first_refresh_seconds": first.seconds,
        "rebuild_seconds": rebuild.seconds,
        "rebuild_load": load,
        "incremental": incremental,
        "incremental_equals_rebuild": same,
        "runs": args.runs,
        "seconds": results,
        "simulation": simulation,
        "load_at_end": _load(),
        "target": {
            "dashboard_seconds": TARGET_SECONDS,
            "met": whole < TARGET_SECONDS,
            "refresh_seconds": REFRESH_TARGET_SECONDS,
            "refresh_met": refresh_median < REFRESH_TARGET_SECONDS,
        },
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"analytics-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nwritten to {out.relative_to(REPO_ROOT)}")
    return 0 if same else 1


def _load() -> str:
    """The machine's load average (1, 5, 15 minutes), as `uptime` shows it: the machine is shared."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def _vacuum(database_url: str) -> None:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")


def _digest(database_url: str) -> dict[str, str]:
    """A digest of every roll-up row, in key order: equal digests, equal tables."""
    digests = {}
    with psycopg.connect(libpq_url(database_url), autocommit=True) as connection:
        for table in ROLLUP_TABLES:
            key = {
                "forward_stats": "forward_id",
                "forward_reach": "forward_id",
                "metric_cells": "generation, channel",
            }.get(table, "")
            order = key or ("day, generation" if table in ("daily_forwards", "daily_cohorts") else "sender_key")
            row = connection.execute(f"SELECT md5(string_agg(t::text, '|' ORDER BY {order})) FROM {table} t").fetchone()  # noqa: S608
            digests[table] = str(row[0]) if row else ""
    return digests


def _simulate(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    clock = time.perf_counter()
    flask_command(env, "simulate", "--campaign", "simulated", "--people", str(args.simulate), "--k", "0.8")
    return {"people": args.simulate, "seconds": time.perf_counter() - clock}


def _settings(database_url: str) -> Settings:
    return Settings(
        env="development",
        instance_path=Path(tempfile.mkdtemp(prefix="bench-analytics-")),
        database_url=database_url,
        redis_url=None,
        secret_keys=("bench-analytics-secret-0123456789",),
        contact_hash_key="bench-analytics-contact-hash-key-0123",
        public_base_url="http://127.0.0.1:5000",
        inprocess_worker=False,
    )


def _print(results: dict[str, dict[str, float]], rebuild_seconds: float, refresh_seconds: float, forwards: int) -> None:
    print(
        f"\n{forwards:,} forwards; full rebuild {rebuild_seconds:.2f} s;"
        f" incremental refresh (median) {refresh_seconds:.3f} s"
    )
    print(f"{'query':<40} {'median ms':>10} {'min':>8} {'max':>8}")
    for name, figures in results.items():
        print(
            f"{name:<40} {figures['median'] * 1000:>10.1f} {figures['min'] * 1000:>8.1f} {figures['max'] * 1000:>8.1f}"
        )
    whole = results["GET dashboard (HTML)"]["median"]
    verdict = "met" if whole < TARGET_SECONDS else "MISSED"
    print(f"target: the whole dashboard under {TARGET_SECONDS * 1000:.0f} ms: {whole * 1000:.1f} ms, {verdict}")
    verdict = "met" if refresh_seconds < REFRESH_TARGET_SECONDS else "MISSED"
    print(f"target: an incremental refresh under {REFRESH_TARGET_SECONDS:.0f} s: {refresh_seconds:.3f} s, {verdict}")
    print(f"load average at the end: {_load()}")


if __name__ == "__main__":
    sys.exit(main())
