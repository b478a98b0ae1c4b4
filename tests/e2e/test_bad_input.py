"""Bad input, as people and bots send it: every refusal is a 4xx with a message a person can
act on, writes nothing (no forward, message, click or outbox entry, no job) and is never a 500."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.test import TestResponse

from engine.db import utcnow
from engine.models import Campaign, Forward
from engine.runtime import Runtime
from engine.tokens import Purpose, tokens_for
from tests.helpers import counts, form_values, forward_form, make_campaign, submission, visible_text

CSRF_REFUSED = "This form has expired or was not sent from our page. Go back, reload the page and try again."
NO_OFFER = "There is no offer at this address."
NOT_NOW = "This offer is not available right now."
ENDED = "This offer has ended."
LINK_NOT_VALID = "This link is not valid. Check that you copied all of it."
LINK_EXPIRED = "This invitation link has expired."
TOO_MUCH = "That was more data than this form accepts."
OVERSIZED_NOTE = "x" * (65 * 1024)


@contextmanager
def writes_nothing(runtime: Runtime) -> Iterator[None]:
    """The database and the queue are as they were before the block: no forward, message, click,
    outbox entry or job."""
    before = counts(runtime.db)
    queued_jobs = runtime.queue.queue.count
    yield
    assert counts(runtime.db) == before
    assert runtime.queue.queue.count == queued_jobs


def demo_form(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    """The demo's form, filled in (Anna to Bob unless `fields` say otherwise), with this client's CSRF token."""
    return forward_form(client.get("/c/demo").text, **fields)


def assert_refused(response: TestResponse, status: int, message: str) -> None:
    assert response.status_code == status, visible_text(response.text)[:500]
    assert response.mimetype == "text/html"
    assert message in visible_text(response.text)


# -- the form ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param(
            {"friends": [f"friend{i}@example.com" for i in range(50)]},
            "You can send this offer to at most 5 friends at a time.",
            id="50-friends",
        ),
        pytest.param({"friends": ["12345"]}, "Friend 1: 12345 is not a phone number we can read", id="invalid-phone"),
        pytest.param({"friends": ["bob@"]}, "Friend 1: bob@ is not a valid email address.", id="email-no-domain"),
        pytest.param(
            {"friends": ["bob@example.com", "bob@localhost"]},
            "Friend 2: bob@localhost is not a valid email address.",
            id="email-no-dot-in-domain",
        ),
        pytest.param(
            {"friends": ["bob@" + "x" * 250 + ".com"]},
            "Friend 1: bob@xxxxxxxx",
            id="friend-too-long",
        ),
        pytest.param({"friends": []}, "Enter at least one friend's email address or phone number.", id="no-friends"),
        pytest.param(
            {"friends": ["", "  "]}, "Enter at least one friend's email address or phone number.", id="blank-friends"
        ),
        pytest.param(
            {"friends": ["06 12345678", "+31 6 1234 5678"]},
            "Friend 2: you entered this friend twice.",
            id="same-phone-twice",
        ),
        pytest.param(
            {"friends": ["bob@example.com", "Bob@Example.com"]},
            "Friend 2: you entered this friend twice.",
            id="same-email-twice",
        ),
        pytest.param(
            {"sender_contact": "bob@example.com"}, "Friend 1: that is your own email address.", id="own-contact"
        ),
        pytest.param({"sender_contact": "anna@"}, "anna@ is not a valid email address.", id="bad-own-contact"),
        pytest.param({"sender_name": ""}, "Enter your name, so your friends know who sent this.", id="no-name"),
        pytest.param({"sender_name": "   "}, "Enter your name, so your friends know who sent this.", id="blank-name"),
        pytest.param({"sender_name": "A" * 81}, "At most 80 characters, please.", id="long-name"),
        pytest.param(
            {"sender_name": "Anna (see cheap-pills.com)"},
            "Your name can't contain links or web addresses.",
            id="name-with-link",
        ),
        pytest.param(
            {"sender_name": "<b>Anna</b>"}, "Your name can't contain HTML or the characters < and >.", id="name-html"
        ),
        pytest.param(
            {"sender_name": "Anna\nBcc: everyone"}, "Your name can't contain control characters.", id="name-newline"
        ),
        pytest.param(
            {"note": "Look: http://spam.example/win"},
            "The note can't contain links or web addresses.",
            id="note-http-url",
        ),
        pytest.param(
            {"note": "Go to www.spam-site now"}, "The note can't contain links or web addresses.", id="note-www"
        ),
        pytest.param({"note": "Visit spam.com"}, "The note can't contain links or web addresses.", id="note-domain"),
        pytest.param(
            {"note": "<a href=x>click</a>"},
            "The note can't contain HTML or the characters < and >.",
            id="note-html",
        ),
        pytest.param({"note": "x" * 281}, "At most 280 characters, please.", id="long-note"),
        pytest.param(
            {"note": "hi\x00there"}, "The note can't contain control characters.", id="note-control-character"
        ),
        pytest.param(
            {"ref": "forged.token.value"},
            "The invitation link this page came from is not valid.",
            id="forged-ref",
        ),
    ],
)
def test_refused_form_says_why(client: FlaskClient, runtime: Runtime, fields: dict[str, Any], message: str) -> None:
    form = demo_form(client, **fields)
    with writes_nothing(runtime):
        response = client.post("/c/demo/forward", data=form)
    assert_refused(response, 422, message)


def test_a_note_with_a_domain_outside_the_tld_list_is_refused_too(client: FlaskClient, runtime: Runtime) -> None:
    form = demo_form(client, note="Buy at cheap-pills.eu")
    with writes_nothing(runtime):
        response = client.post("/c/demo/forward", data=form)
    assert_refused(response, 422, "The note can't contain links or web addresses.")


def test_ref_for_another_campaign_is_refused(client: FlaskClient, runtime: Runtime) -> None:
    make_campaign(runtime.db, "other")
    token = tracked_link_token(runtime, "other")
    form = demo_form(client, ref=token)
    with writes_nothing(runtime):
        response = client.post("/c/demo/forward", data=form)
    assert_refused(response, 422, "The invitation link this page came from is not for this offer.")


def test_refused_form_comes_back_as_typed_and_can_then_be_sent(client: FlaskClient, runtime: Runtime) -> None:
    typed = {"sender_name": "Anna", "friends": ["bob@example.com", "06 1234"], "note": "Coffee?"}
    form = demo_form(client, **typed)
    with writes_nothing(runtime):
        response = client.post("/c/demo/forward", data=form)
    assert_refused(response, 422, "Friend 2: 06 1234 is not a phone number we can read")
    shown = form_values(response.text)
    assert shown["sender_name"] == ["Anna"]
    assert shown["friend"][:2] == ["bob@example.com", "06 1234"]
    assert shown["note"] == ["Coffee?"]

    # The page carries all it needs to be sent again, and the corrected form goes through.
    corrected = forward_form(response.text, **{**typed, "friends": ["bob@example.com", "06 12345678"]})
    assert client.post("/c/demo/forward", data=corrected).status_code == 303
    assert counts(runtime.db)["forwards"] == 2


# -- CSRF, size and method -----------------------------------------------------------------


def test_missing_csrf_token_is_refused(client: FlaskClient, runtime: Runtime) -> None:
    form = demo_form(client)
    del form["csrf_token"]
    with writes_nothing(runtime):
        response = client.post("/c/demo/forward", data=form)
    assert_refused(response, 400, CSRF_REFUSED)


def test_wrong_csrf_token_is_refused(client: FlaskClient, runtime: Runtime) -> None:
    form = demo_form(client, csrf_token="IjEyMzQ1Njc4OTAi.ZZZZZZ.forged-signature")
    with writes_nothing(runtime):
        response = client.post("/c/demo/forward", data=form)
    assert_refused(response, 400, CSRF_REFUSED)


def test_form_left_open_for_more_than_a_day_is_refused(
    client: FlaskClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    two_days_ago = time.time() - 2 * 24 * 3600
    with monkeypatch.context() as patched:
        patched.setattr(time, "time", lambda: two_days_ago)
        form = demo_form(client)
    with writes_nothing(runtime):
        response = client.post("/c/demo/forward", data=form)
    assert_refused(response, 400, CSRF_REFUSED)


def test_csrf_token_of_another_browser_is_refused(client: FlaskClient, runtime: Runtime, app: Flask) -> None:
    someone_elses = demo_form(app.test_client())
    client.get("/c/demo")
    with writes_nothing(runtime):
        response = client.post("/c/demo/forward", data=someone_elses)
    assert_refused(response, 400, CSRF_REFUSED)


def test_oversized_post_is_refused(client: FlaskClient, runtime: Runtime) -> None:
    form = demo_form(client, note=OVERSIZED_NOTE)
    with writes_nothing(runtime):
        response = client.post("/c/demo/forward", data=form)
    assert_refused(response, 413, TOO_MUCH)


def test_get_on_the_form_endpoint_is_not_allowed(client: FlaskClient, runtime: Runtime) -> None:
    with writes_nothing(runtime):
        response = client.get("/c/demo/forward")
    assert_refused(response, 405, "This page cannot be used that way.")
    assert "POST" in response.headers["Allow"]


# -- campaigns that are missing or closed --------------------------------------------------


def test_unknown_campaign(client: FlaskClient, runtime: Runtime) -> None:
    form = demo_form(client)
    with writes_nothing(runtime):
        assert_refused(client.get("/c/nope"), 404, NO_OFFER)
        assert_refused(client.post("/c/nope/forward", data=form), 404, NO_OFFER)
        assert_refused(client.get("/c/nope/thanks"), 404, NO_OFFER)


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        pytest.param({"status": "draft"}, 404, NO_OFFER, id="draft"),
        pytest.param({"status": "paused"}, 404, NOT_NOW, id="paused"),
        pytest.param({"starts_at": utcnow() + timedelta(days=1)}, 404, NOT_NOW, id="not-yet-started"),
        pytest.param({"status": "ended"}, 410, ENDED, id="ended"),
        pytest.param({"ends_at": utcnow() - timedelta(minutes=1)}, 410, ENDED, id="past-its-end"),
    ],
)
def test_closed_campaign(
    client: FlaskClient, runtime: Runtime, fields: dict[str, Any], status: int, message: str
) -> None:
    make_campaign(runtime.db, "closed", **fields)
    form = demo_form(client)
    with writes_nothing(runtime):
        assert_refused(client.get("/c/closed"), status, message)
        assert_refused(client.post("/c/closed/forward", data=form), status, message)


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/c/demo%00"), ("POST", "/c/demo%00/forward"), ("GET", "/c/demo%00/thanks")]
)
def test_a_nul_byte_in_the_campaign_address_is_not_found(
    client: FlaskClient, runtime: Runtime, method: str, path: str
) -> None:
    form = demo_form(client) if method == "POST" else None
    with writes_nothing(runtime):
        response = client.open(path, method=method, data=form)
    assert_refused(response, 404, NO_OFFER)


# -- tracked links -------------------------------------------------------------------------


def tracked_link_token(runtime: Runtime, slug: str = "demo", purpose: Purpose = Purpose.FORWARD) -> str:
    """A genuine token for a new forward (Anna to Bob) on this campaign."""
    receipt = runtime.forwarding.submit(slug, submission("bob@example.com"))
    with runtime.db.reading() as session:
        public_id = session.scalars(select(Forward.public_id).where(Forward.id == receipt.forward_ids[0])).one()
    return runtime.tokens.sign(purpose, public_id)


def forge_signature(token: str) -> str:
    # The signature's first character: every bit of it counts (the last one's low bits may not).
    signed, _, signature = token.rpartition(".")
    return f"{signed}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(forge_signature, id="forged-signature"),
        pytest.param(lambda token: token[: len(token) // 2], id="truncated"),
        pytest.param(lambda token: token.split(".", 1)[1], id="payload-cut-off"),
        pytest.param(lambda token: token + "x" * 600, id="far-too-long"),
    ],
)
def test_spoilt_tracked_link_is_not_valid(client: FlaskClient, runtime: Runtime, spoil: Callable[[str], str]) -> None:
    token = tracked_link_token(runtime)
    with writes_nothing(runtime):
        response = client.get(f"/f/{spoil(token)}")
    assert_refused(response, 404, LINK_NOT_VALID)


def test_tracked_link_signed_with_another_key_is_not_valid(client: FlaskClient, runtime: Runtime) -> None:
    forged = tokens_for(["an-attacker-key-0123456789"], 180, 400).sign(Purpose.FORWARD, "any-public-id")
    with writes_nothing(runtime):
        response = client.get(f"/f/{forged}")
    assert_refused(response, 404, LINK_NOT_VALID)


def test_genuine_token_for_no_forward_is_not_valid(client: FlaskClient, runtime: Runtime) -> None:
    token = runtime.tokens.sign(Purpose.FORWARD, "no-such-forward")
    with writes_nothing(runtime):
        response = client.get(f"/f/{token}")
    assert_refused(response, 404, LINK_NOT_VALID)


def test_unsubscribe_token_is_no_tracked_link(client: FlaskClient, runtime: Runtime) -> None:
    token = tracked_link_token(runtime, purpose=Purpose.UNSUBSCRIBE)
    with writes_nothing(runtime):
        response = client.get(f"/f/{token}")
    assert_refused(response, 404, LINK_NOT_VALID)


def test_expired_tracked_link_is_gone(client: FlaskClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    signed_at = time.time() - (runtime.settings.forward_link_max_age_days + 1) * 24 * 3600
    with monkeypatch.context() as patched:
        patched.setattr(time, "time", lambda: signed_at)
        token = tracked_link_token(runtime)
    with writes_nothing(runtime):
        response = client.get(f"/f/{token}")
    assert_refused(response, 410, LINK_EXPIRED)


def test_tracked_link_of_an_ended_campaign_is_gone(client: FlaskClient, runtime: Runtime) -> None:
    token = tracked_link_token(runtime)
    with runtime.db.transaction() as session:
        session.execute(update(Campaign).where(Campaign.slug == "demo").values(status="ended"))
    with writes_nothing(runtime):
        response = client.get(f"/f/{token}")
    assert_refused(response, 410, ENDED)


def test_tracked_link_followed_with_a_nul_byte_in_the_user_agent_still_works(
    client: FlaskClient, runtime: Runtime
) -> None:
    token = tracked_link_token(runtime)
    response = client.get(f"/f/{token}", headers={"User-Agent": "Mozilla/5.0\x00"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/c/demo"
    assert counts(runtime.db)["clicks"] == 1


# -- machines get problem+json -------------------------------------------------------------

FormFor = Callable[[FlaskClient], dict[str, Any] | None]


@pytest.mark.parametrize(
    ("method", "path", "form_for", "status"),
    [
        pytest.param("GET", "/c/nope", lambda _: None, 404, id="unknown-campaign"),
        pytest.param("POST", "/c/nope/forward", demo_form, 404, id="post-to-unknown-campaign"),
        pytest.param("POST", "/c/demo/forward", lambda _: {"sender_name": "Anna"}, 400, id="no-csrf-token"),
        pytest.param("POST", "/c/demo/forward", lambda c: demo_form(c, note=OVERSIZED_NOTE), 413, id="oversized"),
        pytest.param("GET", "/c/demo/forward", lambda _: None, 405, id="wrong-method"),
        pytest.param("GET", "/f/forged.token.value", lambda _: None, 404, id="forged-link"),
    ],
)
def test_json_clients_get_problem_details(
    client: FlaskClient, runtime: Runtime, method: str, path: str, form_for: FormFor, status: int
) -> None:
    form = form_for(client)
    with writes_nothing(runtime):
        response = client.open(path, method=method, data=form, headers={"Accept": "application/json"})
    assert_problem(response, status)


def test_a_json_path_gets_problem_details_without_asking(client: FlaskClient) -> None:
    assert_problem(client.get("/c/nope.json"), 404)


def assert_problem(response: TestResponse, status: int) -> None:
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["status"] == status
    assert problem["title"] and problem["detail"]
