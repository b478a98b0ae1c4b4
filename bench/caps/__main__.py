"""bench/caps: what a volume-cap check costs, and how closely workers keep to a paced rate.

    python -m bench.caps               # both measurements (about a minute)
    python -m bench.caps --quick       # smoke test: fewer rounds, 3 s per rate
    python -m bench.caps --only limiter

1. Limiter: `Limiter.acquire_with` for one submission (its caps all or nothing, then each
   friend's), against a PING on the same redis-py client, in alternating rounds; µs per call
   and their ratio (median of the rounds). Target: at most 1.5.
2. Pacing: W processes of T threads take turns from one `Pacer` key at a rate and send each
   text through the Twilio transport into the Twilio stub (its own process). The most
   segments the stub received in any sliding 1-second window, over the rate. Target: at
   most 1.02.

Everything it writes to Redis is in one database (12 by default) under `bench:caps:`, and is
deleted at the end. Results: bench/results/caps-<timestamp>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis

from bench.caps import limiter, pacing
from bench.common import REPO_ROOT
from bench.dispatch.measure import machine_load

RESULTS_DIR = REPO_ROOT / "bench" / "results"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
TARGET_RATIO = 1.5
TARGET_WINDOW = 1.02


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.caps", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_CAPS_REDIS_URL", DEFAULT_REDIS_URL),
        help=f"Redis to measure against; only keys under bench:caps: are written (default {DEFAULT_REDIS_URL})",
    )
    parser.add_argument("--only", choices=("limiter", "pacing"), help="run one measurement")
    parser.add_argument("--rounds", type=int, default=15, help="limiter: rounds of PING/check (default 15)")
    parser.add_argument("--iterations", type=int, default=2000, help="limiter: calls per kind per round (default 2000)")
    parser.add_argument("--warmup", type=int, default=500, help="limiter: calls of each kind before the rounds")
    parser.add_argument("--friends", type=int, default=3, help="limiter: friends in the submission (default 3)")
    parser.add_argument(
        "--rates", default="100,20,5", help="pacing: segments/s to pace at, comma-separated (default 100,20,5)"
    )
    parser.add_argument("--workers", type=int, default=4, help="pacing: sender processes (default 4)")
    parser.add_argument("--threads", type=int, default=4, help="pacing: threads per sender, as SMS_CONCURRENCY (4)")
    parser.add_argument("--seconds", type=float, default=10.0, help="pacing: seconds of sending per rate (default 10)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 5 rounds of 500 calls, 3 s per rate")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.iterations, args.warmup, args.seconds = 5, 500, 100, 3.0
    args.rate_list = [float(rate) for rate in args.rates.split(",") if rate.strip()]
    return args


def clean_up(connection: redis.Redis) -> int:
    """Delete every key this benchmark wrote (and nothing else in the database)."""
    keys = list(connection.scan_iter(match=f"{pacing.KEY_PREFIX}:*", count=1000))
    return int(connection.delete(*keys)) if keys else 0


def source_revision() -> dict[str, Any]:
    """The commit measured, and whether the caps' code differed from it."""

    def git(*arguments: str) -> str:
        completed = subprocess.run(["git", *arguments], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        return completed.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD") or "?",
        "caps_dirty": bool(git("status", "--porcelain", "engine/caps.py")),
    }


def machine_info(connection: redis.Redis, load: float) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "?")
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "cores_busy_before_start": round(load, 2),
        "python": platform.python_version(),
        "redis": str(connection.info("server").get("redis_version", "?")),
        "redis_py": version("redis"),
        "hiredis": _has_hiredis(),
    }


def _has_hiredis() -> bool:
    from redis.utils import HIREDIS_AVAILABLE

    return bool(HIREDIS_AVAILABLE)


def print_limiter(result: dict[str, Any]) -> None:
    summary, config = result["summary"], result["config"]
    print(
        f"\nlimiter: one submission of {config['friends']} friends = {config['keys']} keys, "
        f"{config['arguments']} arguments ({config['rounds']} rounds of {config['iterations']} calls)"
    )
    print(
        f"{'round':>6} {'PING µs':>9} {'no-op EVALSHA µs':>17} {'check µs':>9} {'ratio':>7} "
        f"{'one cap µs':>11} {'ratio':>7}"
    )
    rows = [(str(n), row) for n, row in enumerate(result["rounds"], 1)] + [("median", summary)]
    for label, row in rows:
        print(
            f"{label:>6} {row['ping']:>9.1f} {row['noop_evalsha']:>17.1f} {row['acquire']:>9.1f} {row['ratio']:>7.3f} "
            f"{row['acquire_one']:>11.1f} {row['ratio_one']:>7.3f}"
        )
    print(
        f"of the check's {summary['acquire'] - summary['ping']:.1f} µs over a PING: sending its keys and arguments "
        f"{summary['payload_us']:.1f}, the script and the Python around it {summary['script_and_wrapper_us']:.1f}; "
        f"Redis's own time per EVALSHA: no-op {summary['server_us_noop_evalsha']} µs, "
        f"check {summary['server_us_acquire']} µs"
    )


def print_pacing(results: list[dict[str, Any]]) -> None:
    print("\npacing: the most segments in any sliding 1-second window [t, t+1 s), over the rate")
    print(
        f"{'rate/s':>7} {'clock':>8} {'sends':>6} {'worst 1 s':>10} {'/rate':>7} {'average/s':>10} "
        f"{'/rate':>7} {'min gap ms':>11} {'late/turn ms':>13} {'whole s min-max':>16}"
    )
    for result in results:
        for clock in ("arrivals", "grants"):
            row = result[clock]
            if row is None:
                continue
            seconds = row["whole_seconds"]
            print(
                f"{result['rate']:>7g} {clock:>8} {row['sends']:>6} {row['worst_window']:>10} "
                f"{row['worst_window_over_rate']:>7.3f} {row['average_rate']:>10.2f} {row['average_over_rate']:>7.3f} "
                f"{row['gap_ms']['min']:>11.1f} {row['late_per_turn_ms']:>13.2f} "
                f"{seconds['min']:>8}-{seconds['max']:<7}"
            )


def print_targets(summary: dict[str, Any]) -> None:
    print("\ntargets:")
    if "limiter_ratio" in summary:
        for label, ratio in (("one cap", summary["limiter_ratio_one"]), ("submission", summary["limiter_ratio"])):
            verdict = "met" if ratio <= TARGET_RATIO else "missed"
            print(f"  check / PING <= {TARGET_RATIO} ({label + '):':<12} {ratio:>7.3f}  {verdict}")
    for rate, worst in summary.get("worst_window_over_rate", {}).items():
        verdict = "met" if worst <= TARGET_WINDOW else "missed"
        print(f"  worst 1 s / rate <= {TARGET_WINDOW} at {rate + '/s:':<5} {worst:>7.3f}  {verdict}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    connection = redis.Redis.from_url(args.redis_url)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    load = machine_load()
    started = datetime.now(UTC)
    if load > 0.2:
        print(f"warning: the machine is already busy ({load:.2f} cores) before the benchmark starts", flush=True)
    clean_up(connection)  # a run killed half-way may have left keys behind
    report: dict[str, Any] = {
        "benchmark": "caps",
        "started_at": started.isoformat(timespec="seconds"),
        "source": source_revision(),
        "machine": machine_info(connection, load),
        "config": {key: getattr(args, key) for key in ("rounds", "iterations", "warmup", "friends", "workers")}
        | {"threads": args.threads, "seconds": args.seconds, "rates": args.rate_list, "quick": args.quick},
    }
    summary: dict[str, Any] = {}
    problems: list[str] = []
    try:
        if args.only in (None, "limiter"):
            print("limiter: measuring", flush=True)
            report["limiter"] = limiter.measure(
                connection, friends=args.friends, rounds=args.rounds, iterations=args.iterations, warmup=args.warmup
            )
            summary["limiter_ratio"] = report["limiter"]["summary"]["ratio"]
            summary["limiter_ratio_one"] = report["limiter"]["summary"]["ratio_one"]
        if args.only in (None, "pacing"):
            report["pacing"] = []
            with pacing.StubProcess() as stub:
                for rate in args.rate_list:
                    print(f"pacing: {rate:g}/s, {args.workers} processes of {args.threads} threads", flush=True)
                    result = pacing.measure_rate(
                        stub,
                        args.redis_url,
                        rate=rate,
                        workers=args.workers,
                        threads=args.threads,
                        seconds=args.seconds,
                    )
                    report["pacing"].append(result)
                    problems += [f"{rate:g}/s: {problem}" for problem in result["problems"]]
            summary["worst_window_over_rate"] = {
                f"{r['rate']:g}": r["arrivals"]["worst_window_over_rate"] for r in report["pacing"] if r["arrivals"]
            }
    finally:
        report["redis_keys_deleted"] = clean_up(connection)
    summary["targets"] = {"limiter_ratio": TARGET_RATIO, "worst_window_over_rate": TARGET_WINDOW}
    report["summary"] = summary
    report["problems"] = problems
    out = RESULTS_DIR / f"caps-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")

    if "limiter" in report:
        print_limiter(report["limiter"])
    if "pacing" in report:
        print_pacing(report["pacing"])
    print_targets(summary)
    print(f"\nresults: {out.relative_to(REPO_ROOT)}")
    if problems:
        print("FAILED checks:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
