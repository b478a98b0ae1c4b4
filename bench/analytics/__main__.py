"""bench/analytics: the campaign dashboard on a generated campaign, on PostgreSQL.

    python -m bench.analytics                       # 1,000,000 forwards, 5 runs of each query
    python -m bench.analytics --forwards 100000     # smaller
    python -m bench.analytics --simulate 2000       # and a small campaign through `flask simulate`

One run: drops and creates the database `fluister_bench_analytics`, migrates it, writes a
campaign of N forwards with its messages, clicks, coupons, redemptions and visits in bulk
(bench/analytics/generate.py), refreshes its roll-ups (`refresh_rollups`, timed), then times
each of the dashboard's queries and the whole dashboard (the HTML page and the JSON API,
through the app with an API key): the median of the runs. Target: the whole dashboard under
1 s at 1,000,000 forwards. Results: bench/results/analytics-<timestamp>.json. See bench/README.md.
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

from bench.analytics.generate import generate
from bench.common import REPO_ROOT, flask_command, libpq_url, recreate_database
from config import Settings
from engine import create_app
from engine.models import AmbassadorStats, Campaign
from engine.runtime import EXTENSION_KEY
from engine.services.analytics import dashboard, refresh_rollups
from engine.services.analytics.sql import find_campaign_id
from tests.helpers import staff_client

RESULTS_DIR = REPO_ROOT / "bench" / "results"
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/fluister_bench_analytics"
SLUG = "bench"
TARGET_SECONDS = 1.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_ANALYTICS_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--forwards", type=int, default=1_000_000, help="forwards to generate (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each query (default 5)")
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
    print("refreshing the roll-ups ...", flush=True)
    refresh = refresh_rollups(db, SLUG, datetime.now(UTC))
    with psycopg.connect(libpq_url(args.database_url), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
    print(f"  {refresh.forwards:,} forwards in {refresh.seconds:.1f} s", flush=True)

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
            "tree view": lambda: dashboard._tree_view(session, campaign_id),
            "projection": lambda: dashboard._projection(session, campaign, overall, datetime.now(UTC)),
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
    _print(results, refresh.seconds, args.forwards)
    whole = results["GET dashboard (HTML)"]["median"]
    report = {
        "benchmark": "analytics",
        "started": started.isoformat(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "postgresql": server},
        "forwards": args.forwards,
        "rows": counts,
        "deepest_generation": deepest,
        "generate_seconds": generated,
        "refresh_seconds": refresh.seconds,
        "runs": args.runs,
        "seconds": results,
        "simulation": simulation,
        "target": {"dashboard_seconds": TARGET_SECONDS, "met": whole < TARGET_SECONDS},
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"analytics-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {out.relative_to(REPO_ROOT)}")
    return 0


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


def _print(results: dict[str, dict[str, float]], refresh_seconds: float, forwards: int) -> None:
    print(f"\n{forwards:,} forwards; roll-up refresh {refresh_seconds:.1f} s")
    print(f"{'query':<40} {'median ms':>10} {'min':>8} {'max':>8}")
    for name, figures in results.items():
        print(
            f"{name:<40} {figures['median'] * 1000:>10.1f} {figures['min'] * 1000:>8.1f} {figures['max'] * 1000:>8.1f}"
        )
    whole = results["GET dashboard (HTML)"]["median"]
    verdict = "met" if whole < TARGET_SECONDS else "MISSED"
    print(f"target: the whole dashboard under {TARGET_SECONDS:.0f} s: {whole * 1000:.0f} ms, {verdict}")


if __name__ == "__main__":
    sys.exit(main())
