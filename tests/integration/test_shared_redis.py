"""Two installations on one Redis database: every key of each lives under its own prefix."""

from __future__ import annotations

import io
import re

import redis
from flask import Flask

from engine import create_app
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import US_CUSTOM_SMS, make_campaign, runtime_of, submission

# RQ's own bookkeeping for the whole Redis, which RQ offers no way to rename: sets whose
# members are our queue and worker names (each carrying its installation's prefix), and a lock.
RQ_SHARED = {"rq:queues", "rq:workers", "rq:clean_groups"}


def _installation(database_url: str, redis_url: str, settings_for, prefix: str, slug: str):  # type: ignore[no-untyped-def]
    transport = MemoryTransport()
    settings = settings_for(database_url, redis_url, redis_key_prefix=prefix)
    app = create_app(settings, transports=Transports(email=transport, sms=transport))
    make_campaign(runtime_of(app).db, slug, policy_settings={**US_CUSTOM_SMS, "incentives": True}, coupon_mode="pool")
    return app, transport


def _use(app: Flask, slug: str) -> None:
    """What an installation writes to Redis in a day: forwards (caps, the dispatch flag, a job, a
    worker), a landing view and a coupon import."""
    runtime = runtime_of(app)
    runtime.forwarding.submit(slug, submission("bob@example.com", "06 12345678"))
    assert runtime.queue.drain() == 1
    assert app.test_client().get(f"/c/{slug}").status_code == 200
    runtime.coupon_imports.start(slug, "Anna", io.BytesIO(b"code\nSHARED-ONE\n"))


def _keys(url: str) -> set[str]:
    return {key.decode() for key in redis.Redis.from_url(url).scan_iter(count=1000)}


def _kinds(keys: set[str], name: str, slug: str) -> set[str]:
    """The keys with the installation's name, its campaign, ids and dates taken out: what kind
    each is."""
    return {re.sub(r"[0-9a-f]{32}|\d[\d-]*", "#", key.replace(name, "NAME").replace(slug, "SLUG")) for key in keys}


def test_two_installations_with_their_own_prefix_share_a_redis_without_a_common_key(
    database_url: str, redis_url: str, settings_for
) -> None:  # type: ignore[no-untyped-def]
    alpha, alpha_sent = _installation(database_url, redis_url, settings_for, "alpha:", "spring")
    beta, beta_sent = _installation(database_url, redis_url, settings_for, "beta:", "autumn")

    _use(alpha, "spring")
    alpha_keys = _keys(redis_url) - RQ_SHARED
    assert alpha_keys and all("alpha" in key for key in alpha_keys), sorted(alpha_keys)

    _use(beta, "autumn")
    beta_keys = _keys(redis_url) - alpha_keys - RQ_SHARED
    # Beta made a key of every kind alpha made, each one new (none landed on one of alpha's), all
    # named after beta.
    assert _kinds(beta_keys, "beta", "autumn") == _kinds(alpha_keys, "alpha", "spring")
    assert all("beta" in key and "alpha" not in key for key in beta_keys), sorted(beta_keys)
    assert {kind for kind in _kinds(alpha_keys, "alpha", "spring") if kind.startswith("NAME:")} >= {
        "NAME:cap:c#:day",
        "NAME:analytics:visits:#:#",
        "NAME:coupon-import:#",
        "NAME:coupon-import-running:SLUG",
    }
    # Each worker ran its own installation's job and sent its own message.
    assert [e.to for e in alpha_sent.emails] == ["bob@example.com"]
    assert [e.to for e in beta_sent.emails] == ["bob@example.com"]
    for app in (alpha, beta):
        runtime_of(app).db.dispose()
