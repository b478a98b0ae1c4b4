import time

import pytest
from itsdangerous import URLSafeTimedSerializer

from engine.tokens import ExpiredToken, InvalidToken, Purpose, TokenPolicy, Tokens, tokens_for


def make(keys=("key-one-0123456789",)) -> Tokens:
    return tokens_for(keys, forward_days=180, unsubscribe_days=400)


def test_round_trip_gives_back_the_public_id() -> None:
    tokens = make()
    assert tokens.verify(Purpose.FORWARD, tokens.sign(Purpose.FORWARD, "abc123")) == "abc123"


def test_payload_is_the_opaque_id_not_a_contact() -> None:
    token = make().sign(Purpose.FORWARD, "abc123")
    assert "@" not in token


def test_tampered_token_is_refused() -> None:
    tokens = make()
    token = tokens.sign(Purpose.FORWARD, "abc123")
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    with pytest.raises(InvalidToken):
        tokens.verify(Purpose.FORWARD, tampered)


def test_token_of_one_purpose_is_refused_for_another() -> None:
    tokens = make()
    with pytest.raises(InvalidToken):
        tokens.verify(Purpose.UNSUBSCRIBE, tokens.sign(Purpose.FORWARD, "abc123"))


def test_token_signed_with_an_unknown_key_is_refused() -> None:
    forged = make(("attacker-key-0123456789",)).sign(Purpose.FORWARD, "abc123")
    with pytest.raises(InvalidToken):
        make().verify(Purpose.FORWARD, forged)


def test_key_rotation_old_tokens_verify_new_ones_use_the_newest_key() -> None:
    old = make(("key-one-0123456789",))
    rotated = make(("key-one-0123456789", "key-two-0123456789"))
    new_only = make(("key-two-0123456789",))
    old_token = old.sign(Purpose.FORWARD, "abc")
    assert rotated.verify(Purpose.FORWARD, old_token) == "abc"
    new_token = rotated.sign(Purpose.FORWARD, "abc")
    assert new_only.verify(Purpose.FORWARD, new_token) == "abc"
    with pytest.raises(InvalidToken):
        new_only.verify(Purpose.FORWARD, old_token)


def test_expired_token_is_told_apart_from_a_forged_one(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = Tokens(["key-one-0123456789"], [TokenPolicy(Purpose.FORWARD, max_age_seconds=60)])
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 3600)  # signed an hour ago
    token = tokens.sign(Purpose.FORWARD, "abc")
    monkeypatch.undo()
    with pytest.raises(ExpiredToken):
        tokens.verify(Purpose.FORWARD, token)


@pytest.mark.parametrize("garbage", ["", "x", "a.b.c", "." * 600, "ünïcode.ü.ü"])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(InvalidToken):
        make().verify(Purpose.FORWARD, garbage)


def test_non_string_payload_is_refused() -> None:
    signer = URLSafeTimedSerializer(["key-one-0123456789"], salt="fluister.forward")
    with pytest.raises(InvalidToken):
        make().verify(Purpose.FORWARD, signer.dumps({"id": 1}))
