"""The proof-of-work challenge (engine.challenge): made, solved, verified once, refused when
expired, tampered with, forged or replayed. Redis is fakeredis here: no services needed."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from pathlib import Path

import altcha
import fakeredis
import pytest

from engine.caps import HOUR, CapSettings
from engine.challenge import (
    ALGORITHM,
    CHALLENGE_REQUIRED,
    CHALLENGE_TTL,
    ChallengeUnavailable,
    ProofOfWork,
    Verdict,
    threshold_rule,
)

KEY = "test-secret-key-0123456789"
OTHER_KEY = "another-secret-key-0123456789"
VENDOR = Path(__file__).resolve().parents[2] / "static" / "vendor" / "altcha"


def easy(secret_keys: tuple[str, ...] = (KEY,), **options) -> ProofOfWork:  # type: ignore[no-untyped-def]
    """A ProofOfWork with a tiny difficulty, so that tests solve in milliseconds."""
    server = options.pop("server", None) or fakeredis.FakeServer()
    return ProofOfWork(secret_keys, fakeredis.FakeRedis(server=server), cost=1, min_counter=10, **options)


def solve(challenge_json: dict[str, object]) -> str:
    """What the widget posts: the challenge and the counter found by brute force, in base64."""
    challenge = altcha.Challenge.from_dict(challenge_json)
    solution = altcha.solve_challenge(challenge, timeout=30)
    assert solution is not None
    return altcha.Payload(challenge, solution).to_base64()


def edited(payload: str, change) -> str:  # type: ignore[no-untyped-def]
    data = json.loads(base64.b64decode(payload))
    change(data)
    return base64.b64encode(json.dumps(data).encode()).decode()


def test_a_challenge_is_what_the_widget_expects_and_expires_in_minutes() -> None:
    challenge = easy().new_challenge()
    parameters = challenge["parameters"]
    assert isinstance(parameters, dict)
    assert parameters["algorithm"] == ALGORITHM == "PBKDF2/SHA-256"
    # Deterministic mode: half the expected key is given, and its HMAC lets the server check fast.
    assert len(parameters["keyPrefix"]) == 32 and len(parameters["keySignature"]) == 64
    assert 0 < parameters["expiresAt"] - time.time() <= CHALLENGE_TTL.total_seconds()
    assert re.fullmatch(r"[0-9a-f]{64}", str(challenge["signature"]))


def test_the_answer_lies_between_the_minimum_counter_and_twice_it() -> None:
    proof_of_work = easy()
    for _ in range(5):
        solution = altcha.solve_challenge(altcha.Challenge.from_dict(proof_of_work.new_challenge()))
        assert solution is not None and 10 <= solution.counter < 20


def test_a_solution_is_accepted_once() -> None:
    proof_of_work = easy()
    payload = solve(proof_of_work.new_challenge())
    assert proof_of_work.redeem(payload) is Verdict.SOLVED
    assert proof_of_work.redeem(payload) is Verdict.REPLAYED


def test_a_solution_is_used_up_for_every_web_process_sharing_redis() -> None:
    server = fakeredis.FakeServer()
    first, second = easy(server=server), easy(server=server)
    payload = solve(first.new_challenge())
    assert first.redeem(payload) is Verdict.SOLVED
    assert second.redeem(payload) is Verdict.REPLAYED


def test_an_expired_challenge_is_refused() -> None:
    an_hour_ago = easy(clock=lambda: time.time() - 3600)
    assert an_hour_ago.redeem(solve(an_hour_ago.new_challenge())) is Verdict.EXPIRED


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda d: d["challenge"]["parameters"].update(cost=1_000_000), id="cost-changed"),
        pytest.param(lambda d: d["challenge"]["parameters"].update(keyPrefix="00"), id="easier-prefix"),
        pytest.param(lambda d: d["challenge"]["parameters"].pop("keySignature"), id="key-signature-dropped"),
        pytest.param(
            lambda d: d["challenge"]["parameters"].update(expiresAt=int(time.time()) + 86_400), id="expiry-extended"
        ),
        pytest.param(lambda d: d["solution"].update(derivedKey="00" * 32), id="wrong-derived-key"),
        pytest.param(lambda d: d["solution"].update(derivedKey="not hex"), id="malformed-derived-key"),
        pytest.param(lambda d: d["challenge"].update(signature="0" * 64), id="forged-signature"),
    ],
)
def test_a_tampered_payload_is_refused_and_does_not_use_up_the_solution(tamper) -> None:  # type: ignore[no-untyped-def]
    proof_of_work = easy()
    payload = solve(proof_of_work.new_challenge())
    assert proof_of_work.redeem(edited(payload, tamper)) is Verdict.INVALID
    assert proof_of_work.redeem(payload) is Verdict.SOLVED


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("not base64 at all!", id="garbage"),
        pytest.param(base64.b64encode(b"[1, 2]").decode(), id="not-an-object"),
        # What the widget sends in its test mode: no challenge, no solution.
        pytest.param(
            base64.b64encode(b'{"challenge": null, "solution": null, "test": true}').decode(), id="widget-test-mode"
        ),
        pytest.param("A" * 5000, id="far-too-long"),
    ],
)
def test_a_malformed_payload_is_refused(payload: str) -> None:
    assert easy().redeem(payload) is Verdict.INVALID


def test_a_challenge_made_with_another_secret_is_refused() -> None:
    theirs = easy((OTHER_KEY,))
    assert easy().redeem(solve(theirs.new_challenge())) is Verdict.INVALID


def test_a_solution_made_by_the_solver_itself_for_an_unsigned_challenge_is_refused() -> None:
    unsigned = altcha.create_challenge(ALGORITHM, 1, counter=3)
    solution = altcha.solve_challenge(unsigned)
    assert solution is not None
    assert easy().redeem(altcha.Payload(unsigned, solution).to_base64()) is Verdict.INVALID


def test_challenges_outlive_a_key_rotation_but_not_the_old_keys_removal() -> None:
    server = fakeredis.FakeServer()
    before = easy((KEY,), server=server)
    payload = solve(before.new_challenge())
    assert easy((OTHER_KEY,), server=server).redeem(payload) is Verdict.INVALID  # old key removed
    assert easy((KEY, OTHER_KEY), server=server).redeem(payload) is Verdict.SOLVED  # new key appended


def test_without_redis_a_solution_is_not_accepted() -> None:
    server = fakeredis.FakeServer()
    proof_of_work = easy(server=server)
    payload = solve(proof_of_work.new_challenge())
    server.connected = False
    with pytest.raises(ChallengeUnavailable):
        proof_of_work.redeem(payload)


def test_the_threshold_is_a_rule_per_address_and_can_be_switched_off() -> None:
    rule = threshold_rule(CapSettings(), "abc")
    assert rule is not None
    assert (rule.name, rule.key, rule.limit, rule.period) == (CHALLENGE_REQUIRED, "ip:abc:challenge", 5, HOUR)
    assert threshold_rule(CapSettings(), None) is None
    never = CapSettings.from_overrides({"challenge_after_submissions_per_ip_per_hour": None})
    assert threshold_rule(never, "abc") is None


@pytest.mark.parametrize("value", [0, -1, True, "5", 2.5])
def test_the_threshold_setting_is_validated_like_the_caps(value: object) -> None:
    with pytest.raises(ValueError, match="challenge_after_submissions_per_ip_per_hour"):
        CapSettings.from_overrides({"challenge_after_submissions_per_ip_per_hour": value})


def test_the_vendored_widget_files_are_the_ones_its_readme_records() -> None:
    readme = (VENDOR / "README.md").read_text()
    recorded = dict(re.findall(r"^\| `([^`]+)` \| `[^`]+` \| `([0-9a-f]{64})` \|$", readme, re.MULTILINE))
    assert set(recorded) == {"altcha.min.js", "altcha.css", "workers/pbkdf2.js"}
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
