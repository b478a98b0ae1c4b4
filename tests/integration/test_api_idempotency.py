"""Idempotency-Key on POSTs of /api/v1: a retried redemption is answered again, not redeemed
again; the same key with another body is refused; a key in use is a 409; keys are each API
key's own and last 24 hours on the app's clock; requests that failed on our side are not kept.
On PostgreSQL, requests racing with one key: exactly one is handled."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

import engine.web.api.v1 as v1
from engine import create_app
from engine.clock import FixedClock
from engine.db import Database
from engine.models import ApiKey, Coupon, IdempotencyRecord, Redemption
from engine.runtime import Runtime
from engine.services.idempotency import (
    BadKey,
    IdempotencyStore,
    KeyInUse,
    Replay,
    Started,
    fingerprint,
    parse_key,
)
from tests.helpers import make_campaign, runtime_of


@pytest.fixture
def shop(runtime: Runtime) -> None:
    campaign = make_campaign(runtime.db, "spring", coupon_mode="pool")
    with runtime.db.transaction() as session:
        session.add_all(Coupon(campaign_id=campaign.id, code=code) for code in ("CODE-1", "CODE-2", "CODE-3"))


def bearer(runtime: Runtime, name: str = "checkout") -> dict[str, str]:
    return {"Authorization": f"Bearer {runtime.staff.create_api_key(name, 'marketer').secret}"}


def redeem(client: FlaskClient, headers: dict[str, str], key: str | None, code: str = "CODE-1", **extra: str):  # type: ignore[no-untyped-def]
    sent = {**headers, **({"Idempotency-Key": key} if key is not None else {})}
    return client.post("/api/v1/redemptions", json={"campaign": "spring", "code": code, **extra}, headers=sent)


def redemptions(db: Database) -> int:
    with db.reading() as session:
        return int(session.scalar(select(func.count()).select_from(Redemption)) or 0)


def test_a_retried_redemption_is_answered_again_and_redeemed_once(app: Flask, runtime: Runtime, shop: None) -> None:
    client = app.test_client()
    headers = bearer(runtime)
    first = redeem(client, headers, "order-1001")
    assert first.status_code == 201
    again = redeem(client, headers, "order-1001")
    assert (again.status_code, again.json, again.mimetype) == (201, first.json, first.mimetype)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert redemptions(runtime.db) == 1
    # Without the key, the same request is a second request: the code redeems once.
    assert redeem(client, headers, None).status_code == 409


def test_the_same_key_with_another_body_is_refused(app: Flask, runtime: Runtime, shop: None) -> None:
    client = app.test_client()
    headers = bearer(runtime)
    assert redeem(client, headers, '"order-7"').status_code == 201  # the IETF draft's quoted form
    other = redeem(client, headers, "order-7", code="CODE-2")
    assert (other.status_code, other.mimetype) == (422, "application/problem+json")
    assert other.json["type"] == "urn:fluister:problem:idempotency-key-reused"
    assert redemptions(runtime.db) == 1


def test_answers_that_refuse_are_kept_too_but_not_server_errors(app: Flask, runtime: Runtime, shop: None) -> None:
    client = app.test_client()
    headers = bearer(runtime)
    unknown = redeem(client, headers, "k1", code="NOPE")
    assert unknown.status_code == 404
    assert redeem(client, headers, "k1", code="NOPE").headers.get("Idempotent-Replayed") == "true"
    with runtime.db.reading() as session:
        assert session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 1


def test_keys_are_each_clients_own(app: Flask, runtime: Runtime, shop: None) -> None:
    client = app.test_client()
    assert redeem(client, bearer(runtime, "shop-a"), "same", code="CODE-1").status_code == 201
    theirs = redeem(client, bearer(runtime, "shop-b"), "same", code="CODE-2")
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs.headers
    assert redemptions(runtime.db) == 2


def test_a_key_lasts_24_hours_on_the_apps_clock(app: Flask, runtime: Runtime, clock: FixedClock, shop: None) -> None:
    client = app.test_client()
    headers = bearer(runtime)
    assert redeem(client, headers, "k").status_code == 201
    clock.advance(timedelta(hours=23, minutes=59))
    assert redeem(client, headers, "k").status_code == 201  # answered again
    clock.advance(timedelta(minutes=2))
    # Past the day the key is free again: the request is handled afresh, and the code was redeemed.
    assert redeem(client, headers, "k").status_code == 409
    replayed = redeem(client, headers, "k")
    assert (replayed.status_code, replayed.headers.get("Idempotent-Replayed")) == (409, "true")
    store = IdempotencyStore(runtime.db, clock)
    clock.advance(timedelta(hours=24, seconds=1))
    assert store.remove_expired() == 1
    with runtime.db.reading() as session:
        assert session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0


def test_a_key_in_use_is_a_409_and_a_bad_key_a_400(app: Flask, runtime: Runtime, clock: FixedClock, shop: None) -> None:
    client = app.test_client()
    headers = bearer(runtime)
    body = b'{"campaign": "spring", "code": "CODE-1"}'
    # The first request with the key is still being handled (its record has no answer yet).
    with runtime.db.reading() as session:
        key_id = session.scalar(select(ApiKey.id).where(ApiKey.name == "checkout"))
    assert key_id is not None
    store = IdempotencyStore(runtime.db, clock)
    started = store.begin(
        key_id, "busy", "POST", "/api/v1/redemptions", fingerprint("POST", "/api/v1/redemptions", body)
    )
    assert isinstance(started, Started)
    busy = client.post(
        "/api/v1/redemptions",
        data=body,
        content_type="application/json",
        headers={**headers, "Idempotency-Key": "busy"},
    )
    assert (busy.status_code, busy.json["type"]) == (409, "urn:fluister:problem:idempotency-key-in-use")
    assert busy.headers["Retry-After"] == "1"
    assert redemptions(runtime.db) == 0
    # A first request that never answered (its process died) is given up on after a while.
    clock.advance(timedelta(minutes=6))
    taken_over = client.post(
        "/api/v1/redemptions",
        data=body,
        content_type="application/json",
        headers={**headers, "Idempotency-Key": "busy"},
    )
    assert taken_over.status_code == 201

    for bad in ("", "x" * 256, "caf\u00e9"):
        answer = redeem(client, headers, bad, code="CODE-2")
        assert (answer.status_code, answer.mimetype) == (400, "application/problem+json"), bad
    assert redemptions(runtime.db) == 1


def test_a_server_error_lets_the_key_go(
    app: Flask, runtime: Runtime, shop: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    headers = bearer(runtime)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the shop's database fell over")

    monkeypatch.setattr(v1, "redeem", broken)
    assert redeem(client, headers, "retry-me").status_code == 500
    monkeypatch.undo()
    retried = redeem(client, headers, "retry-me")
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers


def test_key_parsing() -> None:
    assert parse_key('"abc"') == parse_key(" abc ") == "abc"
    for bad in ("", '""', "a\tb", 'a"b', "é", "a b", '"abc', "x" * 256):
        with pytest.raises(BadKey):
            parse_key(bad)
    assert fingerprint("POST", "/a", b"{}") != fingerprint("POST", "/a{", b"}")


@pytest.mark.postgres
def test_racing_requests_with_one_key_run_once_on_postgresql(postgres_url: str, clock: FixedClock) -> None:
    db = Database(postgres_url)
    try:
        with db.transaction() as session:
            key = ApiKey(
                name=f"race-{threading.get_ident()}",
                role="marketer",
                prefix="flk_race",
                key_hash=f"{id(db):064x}"[-64:],
            )
            session.add(key)
            session.flush()
            key_id = key.id
        store = IdempotencyStore(db, clock)
        barrier = threading.Barrier(8)
        outcomes: list[object] = []

        def claim() -> None:
            barrier.wait()
            try:
                outcomes.append(store.begin(key_id, "race", "POST", "/api/v1/redemptions", "f" * 64))
            except KeyInUse as error:
                outcomes.append(error)

        threads = [threading.Thread(target=claim) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        started = [o for o in outcomes if isinstance(o, Started)]
        assert len(started) == 1
        assert len([o for o in outcomes if isinstance(o, KeyInUse)]) == 7
        store.finish(started[0].record_id, 201, "application/json", b'{"id": 1}')
        assert store.begin(key_id, "race", "POST", "/api/v1/redemptions", "f" * 64) == Replay(
            201, "application/json", b'{"id": 1}'
        )
        with db.transaction() as session:
            session.execute(IdempotencyRecord.__table__.delete().where(IdempotencyRecord.api_key_id == key_id))
            session.execute(ApiKey.__table__.delete().where(ApiKey.id == key_id))
    finally:
        db.dispose()


@pytest.mark.postgres
def test_two_requests_at_once_with_one_key_are_handled_once(
    postgres_url: str,
    settings_for,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    """Over HTTP, on PostgreSQL: while the first is inside the view, the second gets the 409;
    once the first has answered, a third gets its answer again."""
    app = create_app(settings_for(postgres_url), clock=clock)
    runtime = runtime_of(app)
    try:
        slug = f"race{uuid.uuid4().hex[:8]}"
        campaign = make_campaign(runtime.db, slug, coupon_mode="pool")
        with runtime.db.transaction() as session:
            session.add(Coupon(campaign_id=campaign.id, code="RACE-1"))
        headers = {
            "Authorization": f"Bearer {runtime.staff.create_api_key(f'k-{slug}', 'marketer').secret}",
            "Idempotency-Key": "at-once",
        }
        inside, release = threading.Event(), threading.Event()
        real_redeem = v1.redeem

        def slow_redeem(*args: Any, **kwargs: Any) -> Any:
            inside.set()
            assert release.wait(10)
            return real_redeem(*args, **kwargs)

        monkeypatch.setattr(v1, "redeem", slow_redeem)
        body = {"campaign": slug, "code": "RACE-1"}
        answers: dict[str, Any] = {}
        first = threading.Thread(
            target=lambda: answers.update(
                first=app.test_client().post("/api/v1/redemptions", json=body, headers=headers)
            )
        )
        first.start()
        assert inside.wait(10)
        second = app.test_client().post("/api/v1/redemptions", json=body, headers=headers)
        release.set()
        first.join(10)
        assert (second.status_code, second.json["type"]) == (409, "urn:fluister:problem:idempotency-key-in-use")
        assert answers["first"].status_code == 201
        third = app.test_client().post("/api/v1/redemptions", json=body, headers=headers)
        assert (third.status_code, third.json) == (201, answers["first"].json)
        with runtime.db.reading() as session:
            count = session.scalar(
                select(func.count()).select_from(Redemption).where(Redemption.campaign_id == campaign.id)
            )
        assert count == 1
    finally:
        runtime.db.dispose()
