"""Staff accounts and API keys: made from the command line, used at /login and on /api/v1.

What a person or a client notices: who gets in, who is kept out and how they are told,
that guessing passwords is slowed down, and the live cap usage a campaign shows to staff.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
from flask import Flask
from sqlalchemy import select

from engine.models import ApiKey
from engine.services.staff import FAILED_SIGN_INS_PER_ACCOUNT
from engine.web.console.auth import SIGNED_IN_AT
from tests.helpers import STAFF_PASSWORD, csrf_token, forward_form, sign_in

PASSWORD = STAFF_PASSWORD


def create_user(app: Flask, email: str, role: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(
        args=["users", "create", email, "--role", role, "--password-stdin"], input=password + "\n"
    )


def test_a_staff_member_made_on_the_command_line_signs_in_and_out(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    made = create_user(app, "Marta@Example.com", "marketer")
    assert made.exit_code == 0, made.output
    assert "marta@example.com: marketer account created" in made.output

    client = app.test_client()
    page = client.get("/login")
    assert page.status_code == 200
    for field in ('name="email"', 'name="password"', 'name="csrf_token"'):
        assert field in page.text

    signed_in = sign_in(client, "marta@example.com")
    assert signed_in.status_code == 303
    assert signed_in.headers["Location"].endswith("/console")
    console = client.get("/console")
    assert console.status_code == 200
    assert "marta@example.com" in console.text and "Campaign spring" in console.text

    out = client.post("/logout", data={"csrf_token": csrf_token(client.get("/login").text)})
    assert out.status_code == 303
    again = client.get("/console")
    assert again.status_code == 302
    assert "/login?next=/console" in again.headers["Location"]


def test_wrong_passwords_and_unknown_addresses_get_the_same_answer(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    create_user(app, "carla@example.com", "compliance")
    client = app.test_client()
    wrong = sign_in(client, "carla@example.com", "not the password at all")
    unknown = sign_in(client, "nobody@example.com")
    for response in (wrong, unknown):
        assert response.status_code == 422
        assert "do not match an account" in response.text
    assert client.get("/console").status_code == 302


def test_guessing_is_stopped_after_ten_failures_even_with_the_right_password(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    create_user(app, "admin@example.com", "admin")
    client = app.test_client()
    for n in range(FAILED_SIGN_INS_PER_ACCOUNT):
        assert sign_in(client, "admin@example.com", f"guess number {n:04d}").status_code == 422
    blocked = sign_in(client, "ADMIN@example.com")
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 15 * 60
    assert "Too many failed attempts" in blocked.text
    assert client.get("/console").status_code == 302
    # Another account is not locked by the guesses at this one.
    create_user(app, "other@example.com", "marketer")
    assert sign_in(client, "other@example.com").status_code == 303


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"])
def test_next_never_leads_off_the_site(site, target: str) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    create_user(app, "m@example.com", "marketer")
    response = sign_in(app.test_client(), "m@example.com", next_page=target)
    assert response.status_code == 303
    assert response.headers["Location"] == "/console"


def test_next_brings_a_person_back_where_they_were_going(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    create_user(app, "m@example.com", "marketer")
    response = sign_in(app.test_client(), "m@example.com", next_page="/api/v1/campaigns/spring/caps")
    assert response.headers["Location"] == "/api/v1/campaigns/spring/caps"


@pytest.mark.parametrize(
    ("args", "stdin", "complaint"),
    [
        (["users", "create", "x@example.com", "--role", "marketer", "--password-stdin"], "short\n", "at least 12"),
        (["users", "create", "not-an-address", "--role", "marketer", "--password-stdin"], PASSWORD, "e-mail"),
        (["users", "create", "x@example.com", "--role", "boss", "--password-stdin"], PASSWORD, "boss"),
        (["api-keys", "create", "ci", "--role", "root"], "", "root"),
    ],
)
def test_the_command_line_refuses_bad_accounts_with_a_reason(site, args, stdin, complaint) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    result = app.test_cli_runner().invoke(args=args, input=stdin)
    assert result.exit_code != 0
    assert complaint in result.output


def test_the_same_address_cannot_have_two_accounts(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    assert create_user(app, "dup@example.com", "marketer").exit_code == 0
    second = create_user(app, "DUP@example.com", "admin")
    assert second.exit_code != 0
    assert "already an account" in second.output


# -- the API and live cap usage ---------------------------------------------------------------


def new_key(app: Flask, name: str = "dashboard", role: str = "marketer") -> str:
    result = app.test_cli_runner().invoke(args=["api-keys", "create", name, "--role", role])
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_the_api_asks_for_a_key_in_problem_json(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    client = app.test_client()
    for headers in ({}, bearer("flk_forged-key"), {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = client.get("/api/v1/campaigns/spring/caps", headers=headers)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json["status"] == 401


def test_live_cap_usage_counts_what_the_form_accepted_and_refused(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    key = new_key(app)
    client = app.test_client()
    before = client.get("/api/v1/campaigns/spring/caps", headers=bearer(key))
    assert before.status_code == 200
    assert before.headers["Cache-Control"] == "no-store"
    daily = {b["name"]: b for b in before.json["budgets"]}["campaign messages per day"]
    assert (daily["used"], daily["remaining"], daily["period_seconds"]) == (0, 10_000, 86_400)

    visitor = app.test_client()
    form = forward_form(visitor.get("/c/spring").text, friends=["a@example.com", "b@example.com"])
    assert visitor.post("/c/spring/forward", data=form).status_code == 303
    bot = forward_form(visitor.get("/c/spring").text, friends=["c@example.com"], website="http://spam")
    visitor.post("/c/spring/forward", data=bot)

    after = client.get("/api/v1/campaigns/spring/caps", headers=bearer(key)).json
    daily = {b["name"]: b for b in after["budgets"]}["campaign messages per day"]
    assert (daily["used"], daily["remaining"]) == (2, 9_998)
    assert after["refused_last_24h"] == {"honeypot": 1}
    assert after["messages_last_24h"] == {"queued": 2}
    assert after["limits"]["friends_per_sender_per_day"] == 10


def test_a_signed_in_person_reads_cap_usage_without_a_key(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    create_user(app, "c@example.com", "compliance")
    client = app.test_client()
    sign_in(client, "c@example.com")
    response = client.get("/api/v1/campaigns/spring/caps")
    assert response.status_code == 200
    assert response.json["campaign"] == "spring"


def test_an_unknown_campaign_is_a_404_problem(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    response = app.test_client().get("/api/v1/campaigns/nope/caps", headers=bearer(new_key(app)))
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert "nope" in response.json["detail"]


def test_a_key_is_shown_once_and_only_its_hash_is_kept(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    key = new_key(app, "reporting")
    with runtime.db.reading() as session:
        stored = session.scalars(select(ApiKey)).one()
        assert key not in (stored.key_hash, stored.prefix) and key.startswith(stored.prefix)
    assert app.test_client().get("/api/v1/campaigns/spring/caps", headers=bearer(key)).status_code == 200


def test_a_staff_session_ends_after_twelve_hours_and_idles_out_after_two(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    create_user(app, "m@example.com", "marketer")
    client = app.test_client()
    signed_in = sign_in(client, "m@example.com")
    cookie = signed_in.headers["Set-Cookie"]
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", cookie).group(1))
    assert timedelta(hours=1, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=2)
    assert client.get("/console").status_code == 200
    with client.session_transaction() as session:
        session[SIGNED_IN_AT] -= 12 * 3600 + 1
    assert client.get("/console").status_code == 302


def test_a_visitors_session_is_not_kept_past_the_browser(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    landing = app.test_client().get("/c/spring")
    assert "Expires=" not in landing.headers.get("Set-Cookie", "")
