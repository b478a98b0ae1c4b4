"""The cost of one cap check (`Limiter.acquire_with` for a submission) against a PING.

Both go through the same redis-py client and connection, in alternating rounds, so that a
neighbour slowing the machine down slows both. A third call in each round, the same EVALSHA
payload (keys and arguments) sent to a script that does nothing, splits the difference into
what sending the payload costs and what the script's work costs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from engine.caps import CapSettings, Limiter, Rule, recipient_rule, submission_rules
from engine.contacts import ContactHasher

KEY_PREFIX = "bench:caps:limiter"
# Limits no run reaches: every check is allowed, so each one writes all its keys (the most
# work the script does; a refused check stops at the first cap that refuses).
UNREACHED = 10**12
NOOP_SCRIPT = "return {0}"


@dataclass(frozen=True)
class Submission:
    """The rules the forwarding service checks for one submission: all or nothing, then each friend."""

    together: list[Rule]
    each: list[Rule]

    @property
    def keys(self) -> int:
        return len(self.together) + len(self.each)


def realistic_submission(friends: int) -> Submission:
    """As ForwardingService builds them: HMAC hex digests for the client, its network, the sender
    and each friend, with the default caps (raised out of reach)."""
    hasher = ContactHasher("bench-caps-contact-hash-key")
    caps = CapSettings(
        friends_per_sender_per_day=UNREACHED,
        submissions_per_ip_per_hour=UNREACHED,
        submissions_per_network_per_hour=UNREACHED,
        messages_per_recipient_per_30_days=UNREACHED,
        campaign_messages_per_day=UNREACHED,
    )
    together = submission_rules(
        caps,
        1,
        ip_hash=hasher.hash_text("ip:198.18.0.1"),
        network_hash=hasher.hash_text("net:198.18.0.0/24"),
        sender_key=hasher.hash_text("sender:anna@example.com"),
        friends=friends,
    )
    each = [rule for n in range(friends) if (rule := recipient_rule(caps, hasher.hash_text(f"friend{n}")))]
    return Submission(together, each)


def per_call_us(call: Callable[[], object], iterations: int) -> float:
    started = time.perf_counter()
    for _ in range(iterations):
        call()
    return (time.perf_counter() - started) / iterations * 1e6


def evalsha_server_us(client: redis.Redis) -> tuple[int, float]:
    """Calls and server-side µs of EVALSHA so far (INFO commandstats: every client's, not only ours)."""
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)), float(stats.get("usec", 0))


def measure(client: redis.Redis, *, friends: int, rounds: int, iterations: int, warmup: int) -> dict[str, Any]:
    limiter = Limiter(client, prefix=KEY_PREFIX)
    submission = realistic_submission(friends)
    keys, args = _payload(limiter, submission)
    noop = client.script_load(NOOP_SCRIPT)
    decision, refused = limiter.acquire_with(submission.together, submission.each)
    if not decision.allowed or refused:
        raise RuntimeError(f"the benchmark's submission was refused ({decision}, {refused}): caps not out of reach")

    calls: dict[str, Callable[[], object]] = {
        "ping": client.ping,
        "noop_evalsha": lambda: client.evalsha(noop, len(keys), *keys, *args),
        "acquire": lambda: limiter.acquire_with(submission.together, submission.each),
        # One cap on its own (the address's submissions per hour): the unit the caps are made of.
        "acquire_one": lambda: limiter.acquire(submission.together[:1]),
    }
    for call in calls.values():
        per_call_us(call, warmup)
    results: list[dict[str, float]] = []
    server = {"noop_evalsha": [0, 0.0], "acquire": [0, 0.0], "acquire_one": [0, 0.0]}
    for _ in range(rounds):
        # Alternating within a round: a slow moment hits every kind of call alike.
        result: dict[str, float] = {}
        for name, call in calls.items():
            before = evalsha_server_us(client)
            result[name] = per_call_us(call, iterations)
            after = evalsha_server_us(client)
            if name in server:
                server[name][0] += after[0] - before[0]
                server[name][1] += after[1] - before[1]
        result["ratio"] = result["acquire"] / result["ping"]
        result["ratio_one"] = result["acquire_one"] / result["ping"]
        results.append(result)

    summary = {name: round(statistics.median(r[name] for r in results), 1) for name in calls}
    summary["ratio"] = round(statistics.median(r["ratio"] for r in results), 3)
    summary["ratio_one"] = round(statistics.median(r["ratio_one"] for r in results), 3)
    summary["payload_us"] = round(summary["noop_evalsha"] - summary["ping"], 1)
    summary["script_and_wrapper_us"] = round(summary["acquire"] - summary["noop_evalsha"], 1)
    # Redis's own time per EVALSHA (INFO commandstats; another client's EVALSHAs during a batch
    # would be counted too, so with a shared Redis it is a hint).
    for name, (count, usec) in server.items():
        summary[f"server_us_{name}"] = round(usec / count, 1) if count else None
    return {
        "config": {
            "friends": friends,
            "keys": submission.keys,
            "arguments": len(args),
            "key_bytes": sum(len(k) for k in keys),
            "rounds": rounds,
            "iterations": iterations,
            "warmup": warmup,
        },
        "summary": summary,
        "rounds": [{name: round(value, 2) for name, value in r.items()} for r in results],
    }


def _payload(limiter: Limiter, submission: Submission) -> tuple[list[str], list[int | str]]:
    """The keys and arguments `acquire_with` sends (as engine.caps builds them), for the no-op script."""
    rules = [*submission.together, *submission.each]
    args: list[int | str] = [len(submission.together), "0"]
    for rule in rules:
        args += [rule.limit, rule.period_ms, rule.cost]
    return [limiter._key(rule) for rule in rules], args
