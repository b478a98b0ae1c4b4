"""The proof of work past the soft threshold, through the public pages on SQLite and PostgreSQL:
honest senders never meet it; past it, a forward needs a solved challenge, each good once."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterator

import altcha
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from engine import create_app
from engine.models import Forward, Rejection
from engine.runtime import Runtime
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import counts, form_values, forward_form, make_campaign, runtime_of, static_path, visible_text

IP = "203.0.113.7"
ASKED = "We've had several forwards from your connection in the last hour."
NEEDS_JAVASCRIPT = "This extra check needs JavaScript."


@pytest.fixture
def site(database_url: str, settings_for) -> Iterator[tuple[Flask, Runtime]]:  # type: ignore[no-untyped-def]
    """The app with the embedded queue (fakeredis), a campaign with the default threshold (5) and
    one that asks after 2 submissions, which keeps the tests short."""
    memory = MemoryTransport()
    app = create_app(settings_for(database_url), transports=Transports(email=memory, sms=memory))
    runtime = runtime_of(app)
    make_campaign(runtime.db)
    make_campaign(runtime.db, "quick", caps={"challenge_after_submissions_per_ip_per_hour": 2})
    yield app, runtime
    runtime.db.dispose()


def page(client: FlaskClient, slug: str, ip: str = IP) -> str:
    return client.get(f"/c/{slug}", environ_base={"REMOTE_ADDR": ip}).text


def send(client: FlaskClient, slug: str, friend: str, ip: str = IP, **fields: str) -> TestResponse:
    """Open the landing page and send its form, as a browser at `ip` would."""
    form = forward_form(page(client, slug, ip), friends=[friend], **fields)
    return client.post(f"/c/{slug}/forward", data=form, environ_base={"REMOTE_ADDR": ip})


def solved_payload(client: FlaskClient, slug: str) -> str:
    """Fetch a challenge as the widget does, and solve it by brute force with ALTCHA's own solver."""
    response = client.get(f"/c/{slug}/challenge")
    assert response.status_code == 200
    challenge = altcha.Challenge.from_dict(response.get_json())
    solution = altcha.solve_challenge(challenge, timeout=60)
    assert solution is not None
    return altcha.Payload(challenge, solution).to_base64()


def reasons(runtime: Runtime) -> list[str]:
    with runtime.db.reading() as session:
        return list(session.scalars(select(Rejection.reason).order_by(Rejection.id)))


def over_the_threshold(client: FlaskClient, slug: str = "quick", ip: str = IP) -> None:
    for n in range(2):
        assert send(client, slug, f"warmup{n}@example.com", ip).status_code == 303


def test_five_forwards_an_hour_from_one_address_are_never_asked_the_sixth_is(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    client = app.test_client()
    for n in range(5):
        landing = page(client, "spring")
        assert "altcha-widget" not in landing and "challenge.js" not in landing
        assert send(client, "spring", f"friend{n}@example.com").status_code == 303
    landing = page(client, "spring")
    assert "<altcha-widget" in landing and 'challenge="/c/spring/challenge"' in landing
    assert NEEDS_JAVASCRIPT in landing  # in <noscript>
    assert static_path("challenge.js") in landing and static_path("vendor/altcha/altcha.css") in landing
    # Invisible: no logo or footer, and an empty status line that static/challenge.js fills.
    assert '"hideFooter": true' in html.unescape(landing) and '"hideLogo": true' in html.unescape(landing)
    assert '<p class="challenge-status" id="challenge-status" role="status" aria-live="polite"' in landing
    # Another address is not asked.
    assert "altcha-widget" not in page(client, "spring", ip="198.51.100.9")
    assert reasons(runtime) == []


def test_past_the_threshold_a_form_without_a_solution_is_refused_and_kept(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    client = app.test_client()
    over_the_threshold(client)
    before = counts(runtime.db)
    jobs = runtime.queue.queue.count

    refused = send(client, "quick", "carol@example.com", sender_name="Dana", note="You'll like this")

    assert refused.status_code == 429
    assert ASKED in visible_text(refused.text)
    assert "Nothing was sent yet." in visible_text(refused.text)
    assert "<altcha-widget" in refused.text
    kept = form_values(refused.text)
    assert kept["sender_name"] == ["Dana"] and kept["note"] == ["You'll like this"]
    assert kept["friend"][0] == "carol@example.com"
    assert counts(runtime.db) == before and runtime.queue.queue.count == jobs
    assert reasons(runtime) == ["challenge required"]


def test_a_solved_challenge_is_accepted_once(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    client = app.test_client()
    over_the_threshold(client)
    payload = solved_payload(client, "quick")

    accepted = send(client, "quick", "carol@example.com", altcha=payload)
    assert accepted.status_code == 303 and accepted.headers["Location"].endswith("/c/quick/thanks")
    with runtime.db.reading() as session:
        assert "carol@example.com" in session.scalars(select(Forward.recipient_contact)).all()

    before = counts(runtime.db)
    replayed = send(client, "quick", "dave@example.com", altcha=payload)
    assert replayed.status_code == 429
    assert "That automatic check was already used." in visible_text(replayed.text)
    assert "<altcha-widget" in replayed.text
    assert counts(runtime.db) == before
    assert reasons(runtime) == ["challenge replayed"]

    # A fresh solution goes through again.
    assert send(client, "quick", "dave@example.com", altcha=solved_payload(client, "quick")).status_code == 303


def test_a_forged_solution_is_refused(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    client = app.test_client()
    over_the_threshold(client)
    challenge = client.get("/c/quick/challenge").get_json()
    # A guess at the answer, without the work: half the key is known, the other half is not.
    prefix = challenge["parameters"]["keyPrefix"]
    forged = {"challenge": challenge, "solution": {"counter": 1, "derivedKey": prefix + "00" * 16}}
    before = counts(runtime.db)

    refused = send(client, "quick", "carol@example.com", altcha=base64.b64encode(json.dumps(forged).encode()).decode())

    assert refused.status_code == 429
    assert "The automatic check could not be confirmed." in visible_text(refused.text)
    assert counts(runtime.db) == before
    assert reasons(runtime) == ["challenge invalid"]


def test_a_campaign_can_switch_the_challenge_off(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    make_campaign(runtime.db, "open", caps={"challenge_after_submissions_per_ip_per_hour": None})
    client = app.test_client()
    for n in range(8):
        assert send(client, "open", f"friend{n}@example.com").status_code == 303
    assert "altcha-widget" not in page(client, "open")


def test_a_hard_cap_is_reported_before_the_challenge(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    make_campaign(
        runtime.db, "tight", caps={"challenge_after_submissions_per_ip_per_hour": 1, "submissions_per_ip_per_hour": 1}
    )
    client = app.test_client()
    assert send(client, "tight", "bob@example.com").status_code == 303
    capped = send(client, "tight", "carol@example.com")
    # Solving a puzzle would not help: the sender is told about the cap and when it frees up.
    assert capped.status_code == 429 and "Retry-After" in capped.headers
    assert "the number of forwards from your connection in an hour" in capped.text
    assert reasons(runtime) == ["submissions per IP per hour"]


def test_the_challenge_endpoint_is_cheap_and_writes_nothing(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    client = app.test_client()
    before = counts(runtime.db)
    keys = runtime.queue.connection.dbsize()
    responses = [client.get("/c/quick/challenge") for _ in range(20)]
    assert {r.status_code for r in responses} == {200}
    assert {r.mimetype for r in responses} == {"application/json"}
    assert all(r.headers["Cache-Control"] == "no-store" for r in responses)
    assert len({r.get_json()["signature"] for r in responses}) == 20
    assert counts(runtime.db) == before and reasons(runtime) == []
    assert runtime.queue.connection.dbsize() == keys


def test_the_widget_runs_under_the_content_security_policy(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    client = app.test_client()
    over_the_threshold(client)
    landing = client.get("/c/quick", environ_base={"REMOTE_ADDR": IP})
    policy = landing.headers["Content-Security-Policy"]
    assert "worker-src 'self'" in policy and "script-src 'self';" in policy
    assert "blob:" not in policy and "unsafe-eval" not in policy
    assert "<script>" not in landing.text  # no inline script: the widget comes from a file
    for path in ("challenge.js", "vendor/altcha/altcha.min.js", "vendor/altcha/workers/pbkdf2.js"):
        script = client.get(f"/static/{path}")
        assert script.status_code == 200 and script.mimetype == "text/javascript", path
    assert client.get("/static/vendor/altcha/altcha.css").mimetype == "text/css"


@pytest.mark.redis
def test_a_solution_is_good_once_with_real_redis(database_url: str, redis_url: str, settings_for) -> None:  # type: ignore[no-untyped-def]
    memory = MemoryTransport()
    app = create_app(settings_for(database_url, redis_url), transports=Transports(email=memory, sms=memory))
    runtime = runtime_of(app)
    make_campaign(runtime.db, "quick", caps={"challenge_after_submissions_per_ip_per_hour": 2})
    client = app.test_client()
    try:
        over_the_threshold(client)
        assert send(client, "quick", "carol@example.com").status_code == 429
        payload = solved_payload(client, "quick")
        assert send(client, "quick", "carol@example.com", altcha=payload).status_code == 303
        assert send(client, "quick", "dave@example.com", altcha=payload).status_code == 429
        spent = redis.Redis.from_url(redis_url).keys("fluister:challenge:spent:*")
        assert len(spent) == 1
        assert reasons(runtime) == ["challenge required", "challenge replayed"]
    finally:
        runtime.db.dispose()


def test_with_redis_down_the_page_still_shows_and_a_solution_is_not_accepted(database_url: str, settings_for) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings_for(database_url, "redis://127.0.0.1:1/0"))
    runtime = runtime_of(app)
    make_campaign(runtime.db, "quick", caps={"challenge_after_submissions_per_ip_per_hour": 2})
    client = app.test_client()
    try:
        landing = client.get("/c/quick", environ_base={"REMOTE_ADDR": IP})
        assert landing.status_code == 200 and "altcha-widget" not in landing.text
        payload = solved_payload(client, "quick")  # making a challenge needs no Redis
        # Without Redis a solution cannot be used up, so it is not accepted: fail closed, like the caps.
        refused = send(client, "quick", "carol@example.com", altcha=payload)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "60"
        assert counts(runtime.db) == {"forwards": 0, "messages": 0, "clicks": 0, "outbox_messages": 0}
    finally:
        runtime.db.dispose()


def test_a_challenge_solved_before_a_preview_counts_once(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    make_campaign(
        runtime.db,
        "stil",
        policy_name="eu-strict",
        policy_settings={},
        channels=["email"],
        caps={"challenge_after_submissions_per_ip_per_hour": 1},
    )
    client = app.test_client()
    environ = {"REMOTE_ADDR": IP}

    def preview_and_send(friend: str, *, altcha_payload: str = "") -> TestResponse:
        form = forward_form(page(client, "stil"), friends=[friend], altcha=altcha_payload)
        preview = client.post("/c/stil/forward", data=form, environ_base=environ)
        assert "will get" in preview.text
        return client.post("/c/stil/forward", data=form_values(preview.text), environ_base=environ)

    assert preview_and_send("first@example.com").status_code == 303  # under the threshold
    # Over it: the challenge is solved for the first post, and the preview carries it to Send...
    solved = preview_and_send("second@example.com", altcha_payload=solved_payload(client, "stil"))
    assert solved.status_code == 303
    # ...once: the same preview posted again is asked for a new challenge.
    form = forward_form(page(client, "stil"), friends=["third@example.com"], altcha=solved_payload(client, "stil"))
    preview = client.post("/c/stil/forward", data=form, environ_base=environ)
    values = form_values(preview.text)
    assert client.post("/c/stil/forward", data=values, environ_base=environ).status_code == 303
    # Posted again as it was, its render stamp is spent: the confirmation, and nothing written.
    before = counts(runtime.db)
    assert client.post("/c/stil/forward", data=values, environ_base=environ).status_code == 303
    assert counts(runtime.db) == before and reasons(runtime)[-1] == "form sent twice"
    # With a fresh stamp, the preview's solved challenge is spent too.
    fresh = {**values, "rendered": forward_form(page(client, "stil"))["rendered"]}
    again = client.post("/c/stil/forward", data=fresh, environ_base=environ)
    assert again.status_code == 429 and ASKED in visible_text(again.text)
