"""Who may do what: API keys and their scopes, teams, sessions that end when they should,
two-factor sign-in, throttling that stops the guesser and not the owner, common passwords,
and caps that only an admin may remove.

Each test acts as a person or a client would: through the CLI, /login, the console and /api/v1.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine import create_app
from engine.models import Campaign, CampaignEvent, User
from engine.runtime import Runtime
from engine.services.staff import FAILED_SIGN_INS_PER_ACCOUNT, FAILED_SIGN_INS_PER_ADDRESS
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import STAFF_PASSWORD, csrf_token, make_campaign, runtime_of, sign_in

ATTACKER = "203.0.113.66"  # the owner signs in from 192.0.2.10 (tests.helpers.sign_in)


@pytest.fixture
def site(database_url: str, settings_for) -> Iterator[tuple[Flask, Runtime]]:  # type: ignore[no-untyped-def]
    memory = MemoryTransport()
    app = create_app(settings_for(database_url), transports=Transports(email=memory, sms=memory))
    runtime = runtime_of(app)
    make_campaign(runtime.db)  # in the default team
    yield app, runtime
    runtime.db.dispose()


def cli(app: Flask, *args: str, stdin: str = ""):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=list(args), input=stdin)


def create_user(app: Flask, email: str, role: str, *extra: str, password: str = STAFF_PASSWORD) -> None:
    made = cli(app, "users", "create", email, "--role", role, "--password-stdin", *extra, stdin=password + "\n")
    assert made.exit_code == 0, made.output


def signed_in(app: Flask, email: str, role: str, *extra: str) -> FlaskClient:
    create_user(app, email, role, *extra)
    client = app.test_client()
    assert sign_in(client, email).status_code == 303
    return client


def new_key(app: Flask, name: str, *options: str) -> str:
    made = cli(app, "api-keys", "create", name, *options)
    assert made.exit_code == 0, made.output
    return made.stdout.strip().splitlines()[-1]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def token_of(client: FlaskClient) -> str:
    return csrf_token(client.get("/login").text)


def campaign_status(runtime: Runtime, slug: str = "spring") -> str:
    with runtime.db.reading() as session:
        return session.scalars(select(Campaign.status).where(Campaign.slug == slug)).one()


# -- API keys: /api/v1 only, and only what their scopes allow ------------------------------------


def test_an_api_key_does_not_open_the_console(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    key = new_key(app, "shop", "--role", "admin")
    client = app.test_client()
    assert client.get("/console", headers=bearer(key)).status_code == 302
    page = client.get("/console/campaigns/spring", headers={**bearer(key), "Accept": "application/json"})
    assert page.status_code == 401
    # A POST with a fresh CSRF token and the key changes nothing either.
    paused = client.post(
        "/console/campaigns/spring/status",
        data={"csrf_token": token_of(client), "status": "paused", "reason": "by a key"},
        headers=bearer(key),
    )
    assert paused.status_code == 302 and "/login" in paused.headers["Location"]
    assert campaign_status(runtime) == "active"


def test_a_redemptions_key_cannot_read_figures(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    key = new_key(app, "checkout", "--role", "marketer", "--scope", "redemptions")
    client = app.test_client()
    for path in ("/api/v1/campaigns/spring/caps", "/api/v1/campaigns/spring/metrics"):
        refused = client.get(path, headers=bearer(key))
        assert refused.status_code == 403, path
        assert refused.mimetype == "application/problem+json"
        assert "metrics:read" in refused.json["detail"]
    redeemed = client.post("/api/v1/redemptions", json={"campaign": "spring", "code": "NOPE-123"}, headers=bearer(key))
    assert redeemed.status_code == 404  # allowed to ask; the code is unknown


def test_a_read_only_key_cannot_redeem(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    key = new_key(app, "dashboard", "--role", "marketer", "--scope", "metrics:read")
    client = app.test_client()
    assert client.get("/api/v1/campaigns/spring/caps", headers=bearer(key)).status_code == 200
    refused = client.post("/api/v1/redemptions", json={"campaign": "spring", "code": "X-1"}, headers=bearer(key))
    assert refused.status_code == 403
    assert refused.mimetype == "application/problem+json"
    assert "redemptions" in refused.json["detail"]


def test_a_key_made_as_before_keeps_every_scope_of_its_role(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    made = cli(app, "api-keys", "create", "legacy", "--role", "marketer")
    assert "redemptions" in made.stderr and "metrics:read" in made.stderr
    key = made.stdout.strip().splitlines()[-1]
    client = app.test_client()
    assert client.get("/api/v1/campaigns/spring/metrics", headers=bearer(key)).status_code == 200
    posted = client.post("/api/v1/redemptions", json={"campaign": "spring", "code": "X-1"}, headers=bearer(key))
    assert posted.status_code == 404


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        (["--role", "compliance", "--scope", "redemptions"], "cannot have the scope redemptions"),
        (["--role", "marketer", "--scope", "everything"], "unknown scope"),
        (["--role", "marketer", "--team", "Not A Team!"], "team"),
    ],
)
def test_a_key_with_scopes_its_role_does_not_allow_is_refused(site, options, complaint) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    made = cli(app, "api-keys", "create", "k", *options)
    assert made.exit_code != 0
    assert complaint in made.output


# -- teams ------------------------------------------------------------------------------------------

_ARGUMENTS = {
    "name": "sms.txt",
    "import_id": "0123456789abcdef",
    "reward_id": "1",
    "public_id": "abc",
    "referrer_key": "abc",
    "kind": "svg",
    "contest_id": "1",
    "key": "a",
}


def campaign_routes(app: Flask) -> list[tuple[str, str]]:
    """Every staff route about one campaign, with each of its methods (public pages excluded)."""
    routes = []
    for rule in app.url_map.iter_rules():
        if "slug" not in rule.arguments or rule.endpoint.startswith(("public.", "cards.", "embed.")):
            continue
        path = rule.rule.replace("<slug>", "spring")
        for name, value in _ARGUMENTS.items():
            path = path.replace(f"<{name}>", value).replace(f"<int:{name}>", value)
        assert "<" not in path, f"a test value for {rule.rule}"
        routes.extend((method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))
    return routes


def test_every_campaign_route_is_closed_to_a_marketer_of_another_team(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    outsider = signed_in(app, "blue@example.com", "marketer", "--team", "blue")
    owner = signed_in(app, "mine@example.com", "marketer")
    routes = campaign_routes(app)
    assert len(routes) >= 20
    for method, path in routes:
        for client, expect_hidden in ((outsider, True), (owner, False)):
            data = {"csrf_token": token_of(client)} if method == "POST" else None
            response = client.open(path, method=method, data=data)
            hidden = response.status_code == 404 and "no campaign" in response.get_data(as_text=True)
            assert hidden is expect_hidden, (method, path, response.status_code)
    assert campaign_status(runtime) == "active"


def test_a_key_of_another_team_gets_404_for_the_campaign(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    key = new_key(app, "blue-shop", "--role", "marketer", "--team", "blue")
    client = app.test_client()
    for path in ("/api/v1/campaigns/spring/caps", "/api/v1/campaigns/spring/metrics"):
        assert client.get(path, headers=bearer(key)).status_code == 404
    posted = client.post("/api/v1/redemptions", json={"campaign": "spring", "code": "X-1"}, headers=bearer(key))
    assert posted.status_code == 404
    assert "no campaign" in posted.json["detail"]


def test_marketers_list_and_make_their_own_teams_campaigns_and_admins_see_all(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    blue = signed_in(app, "blue@example.com", "marketer", "--team", "blue")
    assert "Campaign spring" not in blue.get("/console").text
    made = blue.post(
        "/console/campaigns/new",
        data={
            "csrf_token": token_of(blue),
            "slug": "bluebird",
            "name": "Blue bird",
            "offer_title": "Two for one",
            "brand_name": "Blue",
            "channels": ["email"],
            "policy_name": "us",
            "max_friends_per_submission": "5",
            "sms_segment_limit": "3",
            "coupon_mode": "none",
        },
    )
    assert made.status_code == 303, made.text
    with runtime.db.reading() as session:
        assert session.scalars(select(Campaign.team).where(Campaign.slug == "bluebird")).one() == "blue"
    assert "Blue bird" in blue.get("/console").text

    default = signed_in(app, "red@example.com", "marketer")
    listing = default.get("/console").text
    assert "Campaign spring" in listing and "Blue bird" not in listing
    assert default.get("/console/campaigns/bluebird").status_code == 404

    admin = signed_in(app, "boss@example.com", "admin", "--team", "blue")
    listing = admin.get("/console").text
    assert "Campaign spring" in listing and "Blue bird" in listing
    assert admin.get("/console/campaigns/spring/edit").status_code == 200


# -- sessions end on the server ---------------------------------------------------------------------


def cookie_of(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def replay(app: Flask, cookie: str) -> int:
    """What a copy of a session cookie gets from the console (a stolen one, say)."""
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    return thief.get("/console").status_code


def test_a_session_copied_before_sign_out_no_longer_works(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    client = signed_in(app, "m@example.com", "marketer")
    stolen = cookie_of(client)
    assert replay(app, stolen) == 200
    assert client.post("/logout", data={"csrf_token": token_of(client)}).status_code == 303
    assert replay(app, stolen) == 302


def test_sign_out_everywhere_ends_the_other_browsers_sessions(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    laptop = signed_in(app, "m@example.com", "marketer")
    phone = app.test_client()
    assert sign_in(phone, "m@example.com").status_code == 303
    account = laptop.get("/account")
    assert account.status_code == 200 and "Sign out everywhere" in account.text
    done = laptop.post("/account/sign-out-everywhere", data={"csrf_token": csrf_token(account.text)})
    assert done.status_code == 303
    assert phone.get("/console").status_code == 302
    assert laptop.get("/console").status_code == 302


def test_a_new_password_ends_other_sessions_and_keeps_this_one(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    laptop = signed_in(app, "m@example.com", "marketer")
    phone = app.test_client()
    sign_in(phone, "m@example.com")
    token = csrf_token(laptop.get("/account").text)
    common = laptop.post(
        "/account/password",
        data={"csrf_token": token, "current": STAFF_PASSWORD, "new": "Password123456!", "repeat": "Password123456!"},
    )
    assert common.status_code == 422 and "common" in common.text
    wrong = laptop.post(
        "/account/password",
        data={
            "csrf_token": token,
            "current": "not my password",
            "new": "a new long passphrase",
            "repeat": "a new long passphrase",
        },
    )
    assert wrong.status_code == 422 and "current password" in wrong.text
    changed = laptop.post(
        "/account/password",
        data={
            "csrf_token": token,
            "current": STAFF_PASSWORD,
            "new": "a new long passphrase",
            "repeat": "a new long passphrase",
        },
    )
    assert changed.status_code == 303
    assert laptop.get("/console").status_code == 200
    assert phone.get("/console").status_code == 302
    assert sign_in(app.test_client(), "m@example.com").status_code == 422
    assert sign_in(app.test_client(), "m@example.com", "a new long passphrase").status_code == 303


def test_an_admin_disabling_an_account_ends_its_sessions(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    client = signed_in(app, "gone@example.com", "marketer")
    disabled = cli(app, "users", "disable", "Gone@Example.com")
    assert disabled.exit_code == 0, disabled.output
    assert "disabled" in disabled.output
    assert client.get("/console").status_code == 302
    assert sign_in(app.test_client(), "gone@example.com").status_code == 422
    assert cli(app, "users", "disable", "nobody@example.com").exit_code != 0


# -- two-factor sign-in ------------------------------------------------------------------------------


def enrol(client: FlaskClient) -> pyotp.TOTP:
    page = client.get("/account/two-factor")
    assert page.status_code == 200
    assert "otpauth://totp/" in page.text
    secret = page.text.split('data-secret="')[1].split('"')[0]
    totp = pyotp.TOTP(secret)
    confirmed = client.post("/account/two-factor", data={"csrf_token": csrf_token(page.text), "code": totp.now()})
    assert confirmed.status_code == 303
    return totp


def test_two_factor_sign_in_asks_for_a_code_that_works_once(site, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    client = signed_in(app, "m@example.com", "marketer")
    bad = client.post("/account/two-factor", data={"csrf_token": token_of(client), "code": "000000"})
    assert bad.status_code == 422
    totp = enrol(client)
    assert "Two-factor sign-in is on" in client.get("/account").text

    # A fixed moment, so that the codes below do not move on while the test runs.
    now = 1_900_000_000.0
    monkeypatch.setattr("engine.services.staff.time.time", lambda: now)
    browser = app.test_client()
    first = sign_in(browser, "m@example.com")
    assert first.status_code == 303 and first.headers["Location"].startswith("/login/code")
    assert browser.get("/console").status_code == 302  # not signed in on a password alone
    form = browser.get("/login/code")
    assert form.status_code == 200 and 'name="code"' in form.text
    wrong = browser.post("/login/code", data={"csrf_token": csrf_token(form.text), "code": "123456"})
    assert wrong.status_code == 422
    code = totp.at(now)
    right = browser.post("/login/code", data={"csrf_token": csrf_token(form.text), "code": code})
    assert right.status_code == 303
    assert browser.get("/console").status_code == 200

    # The same code again, by someone who watched it typed: refused.
    other = app.test_client()
    sign_in(other, "m@example.com")
    again = other.post("/login/code", data={"csrf_token": token_of(other), "code": code})
    assert again.status_code == 422
    assert other.get("/console").status_code == 302
    # The next code works.
    assert other.post("/login/code", data={"csrf_token": token_of(other), "code": totp.at(now + 30)}).status_code == 303


def test_wrong_codes_are_throttled_like_passwords(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    client = signed_in(app, "m@example.com", "marketer")
    totp = enrol(client)
    browser = app.test_client()
    sign_in(browser, "m@example.com")
    token = token_of(browser)
    wrong = str((int(totp.now()) + 500_000) % 1_000_000).zfill(6)
    for _ in range(FAILED_SIGN_INS_PER_ACCOUNT):
        assert browser.post("/login/code", data={"csrf_token": token, "code": wrong}).status_code == 422
    blocked = browser.post("/login/code", data={"csrf_token": token, "code": totp.now()})
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0


# -- throttling the guesser, not the owner -------------------------------------------------------------


def attempt(app: Flask, email: str, password: str, address: str) -> int:
    client = app.test_client()
    data = {"email": email, "password": password, "csrf_token": token_of(client)}
    return client.post("/login", data=data, environ_base={"REMOTE_ADDR": address}).status_code


def test_guesses_from_elsewhere_never_lock_the_owner_out(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    create_user(app, "owner@example.com", "admin")
    for round_ in range(3):  # again and again, from one address after another, as an attacker would
        address = f"203.0.113.{round_ + 1}"
        for n in range(FAILED_SIGN_INS_PER_ACCOUNT):
            assert attempt(app, "owner@example.com", f"guess {round_} {n:04d}", address) == 422
        # The guesser is stopped, even with the right password...
        assert attempt(app, "owner@example.com", STAFF_PASSWORD, address) == 429
        assert attempt(app, "owner@example.com", "one more guess", address) == 429
        # ...and the owner, at their own address, is not.
        assert sign_in(app.test_client(), "owner@example.com").status_code == 303


def test_one_address_guessing_at_many_accounts_is_stopped(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    create_user(app, "victim@example.com", "marketer")
    for n in range(FAILED_SIGN_INS_PER_ADDRESS):
        assert attempt(app, f"user{n}@example.com", "some wrong password", ATTACKER) == 422
    assert attempt(app, "victim@example.com", STAFF_PASSWORD, ATTACKER) == 429
    assert sign_in(app.test_client(), "victim@example.com").status_code == 303


def test_addresses_of_one_ipv6_network_count_as_one_guesser(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    create_user(app, "owner@example.com", "admin")
    # An IPv6 client has a whole /64 to itself: a new address for every guess changes nothing.
    for n in range(FAILED_SIGN_INS_PER_ACCOUNT):
        assert attempt(app, "owner@example.com", f"guess {n:04d}", f"2001:db8:1:2::{n + 1:x}") == 422
    assert attempt(app, "owner@example.com", "one more guess", "2001:db8:1:2:ffff::9") == 429
    assert sign_in(app.test_client(), "owner@example.com").status_code == 303


def test_one_ipv6_network_guessing_at_many_accounts_is_stopped(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    create_user(app, "victim@example.com", "marketer")
    for n in range(FAILED_SIGN_INS_PER_ADDRESS):
        assert attempt(app, f"user{n}@example.com", "some wrong password", f"2001:db8:9:9::{n + 1:x}") == 422
    assert attempt(app, "victim@example.com", STAFF_PASSWORD, "2001:db8:9:9::abcd") == 429
    assert sign_in(app.test_client(), "victim@example.com").status_code == 303


def test_guesses_from_many_networks_slow_an_account_down_without_locking_it(site, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from engine.services import staff

    # A small burst and a long interval, so that how fast the machine guesses does not matter.
    monkeypatch.setattr(staff, "FAILED_SIGN_INS_PER_ACCOUNT_EVERYWHERE", 5)
    monkeypatch.setattr(staff, "SLOWED_SIGN_IN_INTERVAL", timedelta(minutes=10))
    app, _ = site
    create_user(app, "owner@example.com", "admin")
    create_user(app, "other@example.com", "admin")
    for n in range(5):  # each from a network of its own
        assert attempt(app, "owner@example.com", f"guess {n:04d}", f"2001:db8:{n + 1:x}::1") == 422
    slowed = app.test_client()
    data = {"email": "owner@example.com", "password": STAFF_PASSWORD, "csrf_token": token_of(slowed)}
    answer = slowed.post("/login", data=data, environ_base={"REMOTE_ADDR": "192.0.2.10"})
    # The owner too waits, for one interval at most: slowed down, not locked out.
    assert answer.status_code == 429
    assert 0 < int(answer.headers["Retry-After"]) <= 10 * 60
    # Other accounts are not slowed by it.
    assert attempt(app, "other@example.com", STAFF_PASSWORD, "2001:db8:99::1") == 303


# -- common passwords --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password", ["1qaz2wsx3edc", "QWERTY123456", "Password123456!", "monkey12345678", "abcabcabcabc"]
)
def test_common_and_breached_passwords_are_refused(site, password: str) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    made = cli(app, "users", "create", "x@example.com", "--role", "marketer", "--password-stdin", stdin=password + "\n")
    assert made.exit_code != 0
    assert "common or breached" in made.output


# -- caps: only an admin removes one, and says why ----------------------------------------------------


def edit_form(client: FlaskClient, **changes: str) -> dict[str, object]:
    from tests.helpers import form_values

    page = client.get("/console/campaigns/spring/edit")
    assert page.status_code == 200
    values: dict[str, object] = {
        name: vals if name == "channels" else vals[0] for name, vals in form_values(page.text).items()
    }
    values.update(policy_name="custom", coupon_mode="none")  # its selects, as stored
    values.update(changes)
    return values


def test_a_marketer_cannot_remove_a_cap(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    marketer = signed_in(app, "m@example.com", "marketer")
    refused = marketer.post(
        "/console/campaigns/spring/edit",
        data=edit_form(marketer, cap_campaign_messages_per_day_none="y", reason="we want more"),
    )
    assert refused.status_code == 422
    assert "Only an admin may remove a cap; type a number instead." in refused.text
    lowered = marketer.post(
        "/console/campaigns/spring/edit", data=edit_form(marketer, cap_campaign_messages_per_day="500")
    )
    assert lowered.status_code == 303
    with runtime.db.reading() as session:
        assert session.scalars(select(Campaign.caps).where(Campaign.slug == "spring")).one() == {
            "campaign_messages_per_day": 500
        }


def test_an_admin_removes_a_cap_with_a_reason_kept_in_the_history(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    admin = signed_in(app, "boss@example.com", "admin")
    no_reason = admin.post(
        "/console/campaigns/spring/edit", data=edit_form(admin, caps='{"campaign_messages_total": null}')
    )
    assert no_reason.status_code == 422
    assert "reason" in no_reason.text
    removed = admin.post(
        "/console/campaigns/spring/edit",
        data=edit_form(
            admin, caps='{"campaign_messages_total": null}', reason="Launch day: the brand pays for every send."
        ),
    )
    assert removed.status_code == 303
    with runtime.db.reading() as session:
        event = session.scalars(select(CampaignEvent).order_by(CampaignEvent.id.desc())).first()
        assert event is not None and "caps" in event.changes
        assert event.reason == "Launch day: the brand pays for every send."
        assert event.actor == "boss@example.com"
    assert "Launch day: the brand pays for every send." in admin.get("/console/campaigns/spring").text


def test_teams_are_kept_on_accounts(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    create_user(app, "t@example.com", "marketer", "--team", "Blue")
    with runtime.db.reading() as session:
        assert session.scalars(select(User.team).where(User.email == "t@example.com")).one() == "blue"


def test_an_admin_turns_two_factor_off_for_someone_who_lost_their_phone(site) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    client = signed_in(app, "m@example.com", "marketer")
    enrol(client)
    assert sign_in(app.test_client(), "m@example.com").headers["Location"].startswith("/login/code")
    reset = cli(app, "users", "reset-two-factor", "m@example.com")
    assert reset.exit_code == 0, reset.output
    assert client.get("/console").status_code == 302  # and every session of the account ended
    assert sign_in(app.test_client(), "m@example.com").headers["Location"] == "/console"
