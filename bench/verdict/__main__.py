"""bench/verdict: the wall time of one verdict (`engine.verdict.judge`) on 3 variants of 10,000
chains each, simulated with the campaign model of `flask simulate --variant`.

    python -m bench.verdict                  # 3 variants x 10,000 chains, 7 repetitions
    python -m bench.verdict --chains 50000 --repeat 3

Prints the median and the fastest wall time of the repetitions, the median CPU time (on a
loaded machine the wall time is mostly waiting for a core), and how many chains have senders
and cycle times (the chains the bootstrap weighs). Pure Python, no services.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time

from engine.services.simulation import ExperimentPlan, parse_variant, simulate_experiment
from engine.verdict import DecisionRule, judge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chains", type=int, default=10_000, help="seed visitors per variant")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    variants = tuple(map(parse_variant, ("a:share=0.20", "b:share=0.22", "c:share=0.21")))
    plan = ExperimentPlan(variants, args.chains, seed=args.seed)
    evidence = simulate_experiment(plan, random.Random(args.seed))
    rule = DecisionRule()
    times, cpu = [], []
    for repetition in range(args.repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        verdict = judge(evidence, rule, random.Random(repetition))
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    senders = [sum(1 for c in v.chains if c.senders) for v in evidence.variants]
    cycles = [sum(1 for c in v.chains if c.cycle_hours) for v in evidence.variants]
    machine = f"Python {platform.python_version()} on {platform.machine()}"
    print(f"{machine}, {len(variants)} variants x {args.chains} chains")
    print(f"chains with senders per variant: {senders}; with cycle times: {cycles}")
    print(f"verdict: {verdict.outcome.value} {verdict.winner or ''}".rstrip())
    print(f"judge: median {statistics.median(times):.3f} s, fastest {min(times):.3f} s over {args.repeat} runs")
    print(f"  CPU: median {statistics.median(cpu):.3f} s (the wall time, less the waits of a loaded machine)")


if __name__ == "__main__":
    main()
