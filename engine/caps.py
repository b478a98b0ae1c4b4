"""Volume caps in Redis: one atomic script checks every cap a request touches.

Each cap is a `Rule`: a key, a limit and a period. Periodic caps use GCRA (the
generic cell rate algorithm: one timestamp a key, smooth, no burst at a window's
edge); caps without a period ("ever") are plain counters. `Limiter.acquire` checks
all the rules of a request in one round trip and consumes them only if every one
of them allows it, so a refused submission uses up nothing. The clock is Redis's
own (TIME), so every web process and worker agrees on it.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from functools import cached_property

import redis
from redis.exceptions import NoScriptError

from engine import metrics

# KEYS: one a rule. ARGV[1]: how many of the rules, from the first, are all-or-nothing;
# ARGV[2]: 1 for a dry run (check only); then three a rule: limit, period in ms (0: ever),
# cost. The all-or-nothing rules are checked first: if one refuses, the answer is {index of
# that rule (1-based), ms until it allows or -1 for never} and nothing is consumed. Then
# each remaining rule is taken on its own; the answer is {0, indices of those that refused}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local together = tonumber(ARGV[1])
local dry = ARGV[2] == '1'
local stored = redis.call('MGET', unpack(KEYS))

local function check(i)
  local base = 2 + (i - 1) * 3
  local limit = tonumber(ARGV[base + 1])
  local period = tonumber(ARGV[base + 2])
  local cost = tonumber(ARGV[base + 3])
  if cost > limit then
    return nil, -1
  end
  local current = tonumber(stored[i] or '0')
  if period == 0 then
    if current + cost > limit then
      return nil, -1
    end
    return {current + cost, 0}
  end
  if current < now then current = now end
  local new_tat = current + (period / limit) * cost
  if new_tat - now > period then
    return nil, math.ceil(new_tat - now - period)
  end
  return {new_tat, math.ceil(new_tat - now)}
end

local function store(i, update)
  if dry then return end
  if update[2] == 0 then
    redis.call('SET', KEYS[i], update[1])
  elseif update[2] > 0 then
    redis.call('SET', KEYS[i], string.format('%.0f', update[1]), 'PX', update[2])
  end
end

local updates = {}
for i = 1, together do
  local update, wait = check(i)
  if update == nil then
    return {i, wait}
  end
  updates[i] = update
end
for i = 1, together do
  store(i, updates[i])
end
local answer = {0}
for i = together + 1, #KEYS do
  local update = check(i)
  if update == nil then
    table.insert(answer, i)
  else
    store(i, update)
  end
end
return answer
"""

# ARGV as for _ACQUIRE without the cost; returns for each rule: what is used of its limit now.
_USAGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[(i - 1) * 2 + 1])
  local period = tonumber(ARGV[(i - 1) * 2 + 2])
  local stored = tonumber(redis.call('GET', key) or '0')
  if period == 0 then
    out[i] = stored
  else
    local ahead = stored - now
    if ahead < 0 then ahead = 0 end
    out[i] = math.ceil(ahead * limit / period)
  end
end
return out
"""


class CapsUnavailable(RuntimeError):
    """Redis could not be asked: callers fail closed (nothing sent, nothing accepted)."""


@dataclass(frozen=True)
class Rule:
    """`limit` uses of `key` per `period` (None: ever), each use costing `cost`."""

    name: str
    key: str
    limit: int
    period: timedelta | None
    cost: int = 1

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"cap {self.name}: the limit must be at least 1")
        if self.cost < 0:
            raise ValueError(f"cap {self.name}: the cost cannot be negative")
        if self.period is not None and self.period.total_seconds() <= 0:
            raise ValueError(f"cap {self.name}: the period must be positive")

    @property
    def period_ms(self) -> int:
        return 0 if self.period is None else int(self.period.total_seconds() * 1000)

    @cached_property
    def arguments(self) -> tuple[int, int, int]:
        """What the acquire script reads of this rule (computed once: checks are a hot path)."""
        return (self.limit, self.period_ms, self.cost)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: Rule | None = None  # the first cap that refused
    retry_after: timedelta | None = None  # None: never within this cap (an "ever" cap)


@dataclass(frozen=True)
class Usage:
    rule: Rule
    used: int

    @property
    def remaining(self) -> int:
        return max(0, self.rule.limit - self.used)


def _count_refusals(rules: Sequence[Rule]) -> None:
    for rule in rules:
        metrics.cap_refused(rule.name)  # the cap's name, a constant: never its key


class Limiter:
    def __init__(self, connection: redis.Redis, prefix: str = "fluister:cap") -> None:
        self._redis = connection
        self._prefix = prefix
        self._acquire = connection.register_script(_ACQUIRE)
        self._usage = connection.register_script(_USAGE)
        self._acquire_sha = self._acquire.sha

    def acquire(self, rules: Sequence[Rule], *, dry_run: bool = False) -> Decision:
        """Take one use of every rule, or none of them; the Decision says which refused."""
        decision, _ = self.acquire_with(rules, (), dry_run=dry_run)
        return decision

    def acquire_with(
        self, together: Sequence[Rule], each: Sequence[Rule], *, dry_run: bool = False
    ) -> tuple[Decision, list[Rule]]:
        """The `together` rules all or none; then, if they allowed it, each of the `each` rules on
        its own. Returns the decision on `together` and the `each` rules that refused. One round trip."""
        rules = [*together, *each]
        if not rules:
            return Decision(True), []
        args: list[int | str] = [len(together), "1" if dry_run else "0"]
        for rule in rules:
            args.extend(rule.arguments)
        prefix = self._prefix
        keys = [f"{prefix}:{r.key}" for r in rules]
        try:
            answer = self._evalsha(keys, args)
        except redis.RedisError as error:
            raise CapsUnavailable(f"cannot check caps: {error}") from error
        if int(answer[0]) != 0:
            rule = rules[int(answer[0]) - 1]
            wait_ms = int(answer[1])
            _count_refusals([] if dry_run else [rule])
            return Decision(False, rule, None if wait_ms < 0 else timedelta(milliseconds=wait_ms)), []
        refused = [rules[int(i) - 1] for i in answer[1:]]
        _count_refusals([] if dry_run else refused)
        return Decision(True), refused

    def _evalsha(self, keys: list[str], args: list[int | str]) -> list[int]:
        """The acquire script, on a connection of the client's pool.

        Every form submission makes this call, and redis-py's general command path (retries,
        instrumentation hooks, response callbacks) costs more than the round trip itself:
        sending the one command on a pooled connection halves the check's cost. A connection
        that fails before the command went is replaced once; after it went, the script may
        have run, so it is not sent again (that would count the caps twice): the caller fails
        closed. A script Redis has forgotten (a restart, SCRIPT FLUSH) is sent again in full."""
        pool = self._redis.connection_pool
        for attempt in (1, 2):
            connection = pool.get_connection()
            try:
                try:
                    connection.send_command("EVALSHA", self._acquire_sha, len(keys), *keys, *args)
                except (redis.ConnectionError, redis.TimeoutError):
                    connection.disconnect()
                    if attempt == 2:
                        raise
                    continue
                try:
                    return connection.read_response()
                except (redis.ConnectionError, redis.TimeoutError):
                    connection.disconnect()
                    raise
            except NoScriptError:
                return self._acquire(keys=keys, args=args)
            finally:
                pool.release(connection)
        raise AssertionError("unreachable")

    def usage(self, rules: Sequence[Rule]) -> list[Usage]:
        if not rules:
            return []
        args: list[int] = []
        for rule in rules:
            args += [rule.limit, rule.period_ms]
        try:
            used = self._usage(keys=[self._key(r) for r in rules], args=args)
        except redis.RedisError as error:
            raise CapsUnavailable(f"cannot read caps: {error}") from error
        return [Usage(rule, int(value)) for rule, value in zip(rules, used, strict=True)]

    @property
    def connection(self) -> redis.Redis:
        return self._redis

    @property
    def prefix(self) -> str:
        return self._prefix

    def _key(self, rule: Rule) -> str:
        return f"{self._prefix}:{rule.key}"


# -- the cap matrix ------------------------------------------------------------------------

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class CapSettings:
    """A campaign's caps; each can be set per campaign (Campaign.caps), None meaning no cap."""

    friends_per_sender_per_day: int | None = 10
    submissions_per_ip_per_hour: int | None = 30
    # A /24 (IPv4) or /64 (IPv6) is one household, office or mobile carrier gateway.
    submissions_per_network_per_hour: int | None = 300
    # Across all campaigns: nobody gets more than this many forwarded offers a month.
    messages_per_recipient_per_30_days: int | None = 3
    campaign_messages_per_day: int | None = 10_000
    campaign_messages_total: int | None = None
    # A soft threshold, not a cap: past this many submissions from one address in an hour,
    # the next one needs a proof of work solved by the browser (engine.challenge).
    challenge_after_submissions_per_ip_per_hour: int | None = 5

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, object] | None) -> CapSettings:
        """The defaults with a campaign's overrides; an unknown name or a bad value is refused."""
        values: dict[str, int | None] = {}
        known = {f.name for f in fields(cls)}
        for name, value in (overrides or {}).items():
            if name not in known:
                raise ValueError(f"unknown cap {name!r}")
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"cap {name} must be a whole number of at least 1, or null for no cap")
            values[name] = value
        return replace(cls(), **values)


def network_of(ip: str, *, ipv4_prefix: int = 24) -> str:
    """The /24 (or `ipv4_prefix`) or /64 an address belongs to (the address itself when it is
    not one). An IPv6 client usually has a whole /64: one address of it is no one in particular."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        # `::ffff:a.b.c.d`: an IPv4 client on a dual-stack listener is an IPv4 client.
        address = address.ipv4_mapped
    prefix = ipv4_prefix if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


# How many senders' allowance of friends a day one address, and one network, get.
SENDERS_PER_ADDRESS = 10
SENDERS_PER_NETWORK = 100


def _times(limit: int | None, factor: int) -> int | None:
    return None if limit is None else limit * factor


def submission_rules(
    caps: CapSettings,
    campaign_id: int,
    *,
    ip_hash: str | None,
    network_hash: str | None,
    sender_key: str | None,
    friends: int,
) -> list[Rule]:
    """The caps one submission of `friends` friends counts against (all or nothing)."""
    candidates = [
        ("submissions per IP per hour", f"ip:{ip_hash}", caps.submissions_per_ip_per_hour, HOUR, 1, ip_hash),
        (
            "submissions per network per hour",
            f"net:{network_hash}",
            caps.submissions_per_network_per_hour,
            HOUR,
            1,
            network_hash,
        ),
        # A sender is counted by the contact they type (anonymous ones by their address), and
        # also by their address and their network: typing a new contact each time must not give
        # a fresh allowance. An address or a network is shared (an office, a carrier's gateway),
        # so it gets the allowance of several senders.
        (
            "friends per sender per day",
            f"c{campaign_id}:sender:{sender_key or ip_hash}",
            caps.friends_per_sender_per_day,
            DAY,
            friends,
            sender_key or ip_hash,
        ),
        (
            "friends per sender per day",
            f"c{campaign_id}:sender-ip:{ip_hash}",
            _times(caps.friends_per_sender_per_day, SENDERS_PER_ADDRESS),
            DAY,
            friends,
            sender_key and ip_hash,
        ),
        (
            "friends per sender per day",
            f"c{campaign_id}:sender-net:{network_hash}",
            _times(caps.friends_per_sender_per_day, SENDERS_PER_NETWORK),
            DAY,
            friends,
            network_hash,
        ),
        ("campaign messages per day", f"c{campaign_id}:day", caps.campaign_messages_per_day, DAY, friends, True),
        ("campaign messages in total", f"c{campaign_id}:total", caps.campaign_messages_total, None, friends, True),
    ]
    return [
        Rule(name, key, limit, period, cost)
        for name, key, limit, period, cost, present in candidates
        if limit is not None and present
    ]


def recipient_rule(caps: CapSettings, recipient_hash: str) -> Rule | None:
    if caps.messages_per_recipient_per_30_days is None:
        return None
    return Rule(
        "messages per recipient per 30 days",
        f"recipient:{recipient_hash}",
        caps.messages_per_recipient_per_30_days,
        timedelta(days=30),
    )


# KEYS[1]: a send rate's key. ARGV[1]: µs this send takes of the rate; ARGV[2]: the longest
# wait (µs) worth reserving. Reserves the next free slot, at or after now, and answers the µs
# to wait for it, or -1 (nothing reserved) when it is further away than that.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local free = tonumber(redis.call('GET', KEYS[1]) or '0')
if free < now then free = now end
local wait = free - now
if wait > tonumber(ARGV[2]) then
  return -1
end
local next_free = free + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', next_free), 'PX', math.ceil((next_free - now) / 1000) + 1000)
return wait
"""


class Pacer:
    """Spaces sends evenly at a rate shared by every worker (a provider's per-number limit:
    Twilio long codes take one segment a second). Workers wait their turn instead of failing.

    Each send reserves the next free slot in Redis (one round trip, on Redis's clock in
    microseconds) and sleeps until it: slots follow each other exactly, so time spent asking
    is not lost, and no two sends share one. The rate is undershot by `margin` (1%), so that
    the jitter of the hop to the provider never puts one send too many in any second.
    """

    MARGIN = 0.01

    def __init__(
        self, limiter: Limiter, key: str, per_second: float, *, max_wait: float = 30.0, margin: float = MARGIN
    ) -> None:
        if per_second <= 0:
            raise ValueError("a send rate must be positive")
        if not 0 <= margin < 0.5:
            raise ValueError("the safety margin must be between 0 and 0.5")
        self.per_second = per_second
        self._redis = limiter.connection
        self._reserve = self._redis.register_script(_RESERVE)
        self._key = f"{limiter.prefix}:pace:{key}"
        self._unit_us = 1_000_000 / (per_second * (1 - margin))
        self._max_wait_us = int(max_wait * 1_000_000)

    def wait_turn(self, cost: int = 1) -> bool:
        """Block until `cost` units may go; False (nothing reserved) when that is more than
        max_wait away. Raises CapsUnavailable when Redis cannot be asked: nothing is sent unpaced."""
        try:
            wait_us = int(self._reserve(keys=[self._key], args=[round(cost * self._unit_us), self._max_wait_us]))
        except redis.RedisError as error:
            raise CapsUnavailable(f"cannot pace sends: {error}") from error
        if wait_us < 0:
            return False
        if wait_us:
            time.sleep(wait_us / 1_000_000)
        return True
