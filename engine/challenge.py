"""A proof of work for clients past a soft threshold (ALTCHA), instead of a CAPTCHA.

A person forwarding an offer to a few friends never meets it. A client whose address has
sent more than `CapSettings.challenge_after_submissions_per_ip_per_hour` forwards in an hour
must let its browser solve a small puzzle before the next one is accepted: a second or two
for a phone, a real cost for a script that sends thousands. Nothing about the person is
collected or sent anywhere else, which is why it is ALTCHA and not a third-party CAPTCHA.

The puzzle is ALTCHA's proof of work v2 in its deterministic mode, through the `altcha`
package: the server picks a counter, derives a PBKDF2 key from it, and hands out only the
first half of that key; the browser must find the counter by trying them all from zero.
Challenges are signed (HMAC, keys derived from SECRET_KEYS), expire after a few minutes,
and a solved one is accepted once: its signature is recorded in Redis with SET NX.

The threshold is a Limiter rule (GCRA, like the caps) on the same per-address key space.
The forward POST checks it inside the caps' one Redis call; the landing page reads it to
decide whether to show the widget.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

import altcha
import redis

from engine.caps import HOUR, CapSettings, CapsUnavailable, Limiter, Rule
from engine.contacts import ContactHasher

ALGORITHM = "PBKDF2/SHA-256"  # WebCrypto runs it natively on every phone; no WASM needed
# Difficulty: each attempt is a PBKDF2 of COST iterations, and the answer lies between
# MIN_COUNTER and twice that, so a solve takes about 1.5 * MIN_COUNTER * COST iterations
# (1.5 million): a few tenths of a second on a laptop, a second or two on a mid-range phone.
COST = 500
MIN_COUNTER = 2_000
# Long enough to solve and send; the widget fetches its challenge when the form is sent.
CHALLENGE_TTL = timedelta(minutes=5)
# A payload is about 700 characters; anything much longer is not from the widget.
MAX_PAYLOAD_CHARS = 4_096

# The reason a submission is refused (and recorded in `rejections`) when it needed a solution.
CHALLENGE_REQUIRED = "challenge required"


class ChallengeUnavailable(CapsUnavailable):
    """Redis could not record a solution as used: it is refused, like a cap that cannot be checked."""


class Verdict(StrEnum):
    SOLVED = "solved"
    EXPIRED = "expired"
    REPLAYED = "replayed"  # solved before: each solution is good for one submission
    INVALID = "invalid"  # malformed, forged, tampered with or wrong


@dataclass(frozen=True)
class _Keys:
    """The two HMAC keys of one secret: one signs the challenge, one the expected answer."""

    challenge: str
    answer: str

    @classmethod
    def derived_from(cls, secret: str) -> _Keys:
        # Keys of their own, so that nothing else signed with SECRET_KEYS passes for a challenge.
        def derive(purpose: str) -> str:
            return hmac.new(secret.encode(), f"fluister.altcha.{purpose}".encode(), hashlib.sha256).hexdigest()

        return cls(challenge=derive("challenge"), answer=derive("answer"))


class ProofOfWork:
    """Makes ALTCHA challenges and redeems their solutions, once each."""

    def __init__(
        self,
        secret_keys: Sequence[str],
        connection: redis.Redis,
        *,
        cost: int = COST,
        min_counter: int = MIN_COUNTER,
        ttl: timedelta = CHALLENGE_TTL,
        clock: Callable[[], float] = time.time,
        prefix: str = "fluister:challenge",
    ) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is needed to sign challenges")
        # Oldest first, as in SECRET_KEYS: the newest signs, every one of them verifies.
        self._keys = [_Keys.derived_from(secret) for secret in secret_keys]
        self._redis = connection
        self._cost = cost
        self._min_counter = min_counter
        self._ttl = ttl
        self._clock = clock
        self._prefix = prefix

    def new_challenge(self) -> dict[str, object]:
        """A fresh challenge, as the widget fetches it (JSON). Stores nothing."""
        counter = self._min_counter + secrets.randbelow(self._min_counter)
        challenge = altcha.create_challenge(
            ALGORITHM,
            self._cost,
            counter=counter,
            expires_at=int(self._clock() + self._ttl.total_seconds()),
            hmac_secret=self._keys[-1].challenge,
            hmac_key_secret=self._keys[-1].answer,
        )
        return challenge.to_dict()

    def redeem(self, payload: str) -> Verdict:
        """Check a solution the widget sent and, if it is good, use it up.

        Raises ChallengeUnavailable when Redis cannot record it: without that, a solution
        could be replayed, so it is not accepted."""
        if not payload or len(payload) > MAX_PAYLOAD_CHARS:
            return Verdict.INVALID
        verdict, signature = self._verify(payload)
        if verdict is not Verdict.SOLVED:
            return verdict
        return Verdict.SOLVED if self._first_use(signature) else Verdict.REPLAYED

    def _verify(self, payload: str) -> tuple[Verdict, str]:
        for keys in reversed(self._keys):  # the newest key is the likeliest
            result = altcha.verify_solution(payload, keys.challenge, hmac_key_secret=keys.answer)
            if result.verified:
                return Verdict.SOLVED, altcha.Payload.from_base64(payload).challenge.signature or ""
            if result.expired:
                return Verdict.EXPIRED, ""
            if not result.invalid_signature:
                return Verdict.INVALID, ""  # signed by this key, but the answer is wrong
        return Verdict.INVALID, ""

    def _first_use(self, signature: str) -> bool:
        # The key outlives the challenge by a minute (clocks differ a little); by then the
        # challenge is refused as expired anyway.
        return self.spend_once(signature, int(self._ttl.total_seconds()) + 60)

    def spend_once(self, key: str, seconds: int) -> bool:
        """True the first time `key` is spent within `seconds`, False after: what makes a solved
        challenge (or something carrying one, as a preview token does) count once."""
        try:
            return bool(self._redis.set(f"{self._prefix}:spent:{key}", 1, nx=True, ex=seconds))
        except redis.RedisError as error:
            raise ChallengeUnavailable(f"cannot record a solved challenge: {error}") from error


# -- the soft threshold --------------------------------------------------------------------


def threshold_rule(caps: CapSettings, ip_hash: str | None) -> Rule | None:
    """The rule that decides whether a client must solve a challenge: `limit` submissions an
    hour from one address (GCRA: one more frees up every hour/limit). None when the campaign
    never asks, or the address is unknown."""
    limit = caps.challenge_after_submissions_per_ip_per_hour
    if limit is None or ip_hash is None:
        return None
    return Rule(CHALLENGE_REQUIRED, f"ip:{ip_hash}:challenge", limit, HOUR)


def over_threshold(limiter: Limiter, rule: Rule | None) -> bool:
    """True when the next submission counted against `rule` would need a solved challenge.
    One Redis read; raises CapsUnavailable."""
    if rule is None:
        return False
    (usage,) = limiter.usage([rule])
    return usage.remaining == 0


class ChallengeGate:
    """What the public pages ask: must this client solve a challenge, and is its solution good.

    The forward POST itself does not ask `required`: the threshold is checked with the caps
    (ForwardingService), at no extra cost. Pages that show the form ask, to show the widget."""

    def __init__(self, hasher: ContactHasher, limiter: Limiter, proof_of_work: ProofOfWork) -> None:
        self._hasher = hasher
        self._limiter = limiter
        self.proof_of_work = proof_of_work

    def required(self, overrides: Mapping[str, Any] | None, client_ip: str | None) -> bool:
        """True when this client's next forward to a campaign with these cap overrides needs a
        solved challenge. One Redis read; raises CapsUnavailable."""
        if not client_ip:
            return False
        try:
            caps = CapSettings.from_overrides(overrides)
        except ValueError:
            return False  # the form refuses the forward with its own message
        # The same key as ForwardingService gives the address (`ip:` + address, keyed hash).
        return over_threshold(self._limiter, threshold_rule(caps, self._hasher.hash_text(f"ip:{client_ip}")))
