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

import redis

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


class Limiter:
    def __init__(self, connection: redis.Redis, prefix: str = "fluister:cap") -> None:
        self._redis = connection
        self._prefix = prefix
        self._acquire = connection.register_script(_ACQUIRE)
        self._usage = connection.register_script(_USAGE)

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
            args += [rule.limit, rule.period_ms, rule.cost]
        try:
            answer = self._acquire(keys=[self._key(r) for r in rules], args=args)
        except redis.RedisError as error:
            raise CapsUnavailable(f"cannot check caps: {error}") from error
        if int(answer[0]) != 0:
            rule = rules[int(answer[0]) - 1]
            wait_ms = int(answer[1])
            return Decision(False, rule, None if wait_ms < 0 else timedelta(milliseconds=wait_ms)), []
        return Decision(True), [rules[int(i) - 1] for i in answer[1:]]

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


def network_of(ip: str) -> str:
    """The /24 or /64 an address belongs to (the address itself when it is not one)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


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
        (
            "friends per sender per day",
            f"c{campaign_id}:sender:{sender_key}",
            caps.friends_per_sender_per_day,
            DAY,
            friends,
            sender_key,
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


class Pacer:
    """Spaces sends evenly at a rate shared by every worker (a provider's per-number limit:
    Twilio long codes take one segment a second). Workers wait their turn instead of failing."""

    def __init__(self, limiter: Limiter, key: str, per_second: float, *, max_wait: float = 30.0) -> None:
        if per_second <= 0:
            raise ValueError("a send rate must be positive")
        self._limiter = limiter
        self._key = f"pace:{key}"
        self._per_second = per_second
        self._max_wait = max_wait

    def wait_turn(self, cost: int = 1) -> bool:
        """Block until `cost` units may go; False when the turn did not come within max_wait.

        Raises CapsUnavailable when Redis cannot be asked: nothing is sent unpaced.
        """
        # GCRA with a tolerance of exactly this send: no bursts, one unit every 1/rate seconds.
        rule = Rule("send rate", self._key, limit=cost, period=timedelta(seconds=cost / self._per_second), cost=cost)
        deadline = time.monotonic() + self._max_wait
        while True:
            decision = self._limiter.acquire([rule])
            if decision.allowed:
                return True
            wait = decision.retry_after.total_seconds() if decision.retry_after else 0.05
            if time.monotonic() + wait > deadline:
                return False
            time.sleep(max(wait, 0.001))
