"""An admin manages staff and API keys in the console as on the command line: invites a member,
changes a role, turns off a lost authenticator's two-factor sign-in, makes a key. Each answer
says what happened or why not, shows a password or key once, and logs who did what."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from engine.runtime import Runtime
from engine.services.staff import LastAdmin
from tests.helpers import STAFF_PASSWORD, csrf_token, sign_in, staff_client


def post(client: FlaskClient, page: str, action: str, data: Mapping[str, object] | None = None):  # type: ignore[no-untyped-def]
    token = csrf_token(client.get(page).text)
    return client.post(action, data={"csrf_token": token, **(data or {})})


def shown(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>([^<]+)<', html)
    assert found, html
    return found.group(1)


def test_an_admin_invites_a_member_who_signs_in_with_the_password_shown_once(
    app: Flask, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    admin = staff_client(app, "admin")
    with caplog.at_level(logging.INFO):
        answer = post(
            admin, "/console/users", "/console/users", {"email": "Cas@Staff.example", "role": "marketer", "team": "nl"}
        )
    assert answer.status_code == 201
    assert answer.headers["Cache-Control"] == "no-store"
    password = shown(answer.text, "first-password")
    assert "cas@staff.example" in answer.text
    assert password not in caplog.text
    assert "created by admin@staff.example" in caplog.text

    account = next(a for a in runtime.staff.list_users() if a.email == "cas@staff.example")
    assert (account.role, account.team) == ("marketer", "nl")
    assert password not in admin.get("/console/users").text  # shown once
    assert sign_in(app.test_client(), "cas@staff.example", password).status_code == 303


@pytest.mark.parametrize(
    ("fields", "field", "complaint"),
    [
        ({"email": "not an address", "role": "marketer"}, "email", "Type an e-mail address"),
        ({"email": "dee@staff.example", "role": "owner"}, "role", "Choose a role from the list."),
        ({"email": "dee@staff.example", "role": "marketer", "team": "Dutch Team!"}, "team", "lower-case letters"),
        ({"email": "admin@staff.example", "role": "marketer"}, "email", "already an account"),
    ],
)
def test_an_invitation_that_cannot_be_made_says_why_beside_the_field(
    app: Flask, runtime: Runtime, fields: dict[str, str], field: str, complaint: str
) -> None:
    admin = staff_client(app, "admin")
    answer = post(admin, "/console/users", "/console/users", fields)
    assert answer.status_code == 422
    assert re.search(rf'id="invite-{field}-error"><li>[^<]*{re.escape(complaint)}', answer.text), answer.text
    assert 'id="first-password"' not in answer.text
    assert len(runtime.staff.list_users()) == 1


def test_an_admin_changes_a_role_and_it_counts_at_once(
    app: Flask, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    admin = staff_client(app, "admin")
    bo = runtime.staff.create_user("bo@staff.example", "marketer", STAFF_PASSWORD)
    theirs = app.test_client()
    assert sign_in(theirs, "bo@staff.example").status_code == 303
    assert theirs.get("/compliance/opt-outs").status_code == 403

    with caplog.at_level(logging.INFO):
        done = post(admin, "/console/users", f"/console/users/{bo.id}/role", {"role": "compliance"})
    assert done.status_code == 303
    assert "bo@staff.example is now: compliance." in admin.get("/console/users").text
    assert f"role of staff account {bo.id} changed to compliance by admin@staff.example" in caplog.text
    assert theirs.get("/compliance/opt-outs").status_code == 200  # the same session, its new role


def test_an_admin_cannot_change_their_own_role_nor_pick_an_unknown_one(app: Flask, runtime: Runtime) -> None:
    admin = staff_client(app, "admin")
    me = next(a for a in runtime.staff.list_users() if a.email == "admin@staff.example")
    refused = post(admin, "/console/users", f"/console/users/{me.id}/role", {"role": "marketer"})
    assert refused.status_code == 409
    assert "Not your own role" in refused.text
    bo = runtime.staff.create_user("bo@staff.example", "marketer", STAFF_PASSWORD)
    unknown = post(admin, "/console/users", f"/console/users/{bo.id}/role", {"role": "owner"})
    assert unknown.status_code == 422 and "Choose a role from the list." in unknown.text
    missing = post(admin, "/console/users", "/console/users/99999/role", {"role": "marketer"})
    assert missing.status_code == 404
    assert {a.email: a.role for a in runtime.staff.list_users()} == {
        "admin@staff.example": "admin",
        "bo@staff.example": "marketer",
    }


def test_the_last_active_admin_keeps_their_role(runtime: Runtime) -> None:
    only = runtime.staff.create_user("solo@staff.example", "admin", STAFF_PASSWORD)
    runtime.staff.create_user("away@staff.example", "admin", STAFF_PASSWORD)
    runtime.staff.disable_user("away@staff.example")
    with pytest.raises(LastAdmin):
        runtime.staff.change_role(only.id, "marketer")
    runtime.staff.enable_user("away@staff.example")
    assert runtime.staff.change_role(only.id, "marketer").role == "marketer"


def test_an_admin_turns_off_a_lost_authenticator_and_the_member_is_signed_out(
    app: Flask, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    admin = staff_client(app, "admin")
    bo = runtime.staff.create_user("bo@staff.example", "marketer", STAFF_PASSWORD)
    secret = pyotp.random_base32()
    assert runtime.staff.confirm_totp(bo.id, secret, pyotp.TOTP(secret).now())
    theirs = app.test_client()
    runtime.staff.end_sessions(bo.id)
    page = admin.get("/console/users").text
    row = re.search(rf'<tr id="user-{bo.id}">.*?</tr>', page, re.S)
    assert row and "Turn off (lost device)" in row.group(0)

    with caplog.at_level(logging.INFO):
        done = post(admin, "/console/users", f"/console/users/{bo.id}/reset-two-factor")
    assert done.status_code == 303
    assert "bo@staff.example: two-factor sign-in turned off" in admin.get("/console/users").text
    assert f"two-factor sign-in of staff account {bo.id} turned off by admin@staff.example" in caplog.text
    assert secret not in caplog.text
    assert not next(a for a in runtime.staff.list_users() if a.id == bo.id).two_factor
    # Straight in with the password: no code asked any more.
    assert sign_in(theirs, "bo@staff.example").headers["Location"].endswith("/console")

    me = next(a for a in runtime.staff.list_users() if a.email == "admin@staff.example")
    assert post(admin, "/console/users", f"/console/users/{me.id}/reset-two-factor").status_code == 409


def test_an_admin_makes_a_key_shown_once_that_works(
    app: Flask, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    admin = staff_client(app, "admin")
    with caplog.at_level(logging.INFO):
        answer = post(
            admin,
            "/console/api-keys",
            "/console/api-keys",
            {"name": "shop checkout", "role": "marketer", "scopes": ["redemptions"], "team": "nl"},
        )
    assert answer.status_code == 201
    assert answer.headers["Cache-Control"] == "no-store"
    secret = shown(answer.text, "new-key-secret")
    assert 'data-copy="new-key-secret"' in answer.text
    assert (
        secret not in caplog.text and "API key 'shop checkout'" in caplog.text and "admin@staff.example" in caplog.text
    )

    key = runtime.staff.authenticate_key(secret)
    assert key is not None and key.team == "nl" and {s.value for s in key.scopes} == {"redemptions"}
    listed = admin.get("/console/api-keys").text
    assert "shop checkout" in listed and secret[:12] in listed and secret not in listed


@pytest.mark.parametrize(
    ("fields", "field", "complaint"),
    [
        ({"name": "", "role": "marketer"}, "name", "Give the key a name"),
        ({"name": "reader", "role": "compliance", "scopes": ["rewards"]}, "scopes", "only these scopes: metrics:read"),
        ({"name": "reader", "role": "root"}, "role", "Choose a role from the list."),
    ],
)
def test_a_key_that_cannot_be_made_says_why(
    app: Flask, runtime: Runtime, fields: dict[str, object], field: str, complaint: str
) -> None:
    admin = staff_client(app, "admin")
    answer = post(admin, "/console/api-keys", "/console/api-keys", fields)
    assert answer.status_code == 422
    assert re.search(rf'id="key-{field}-error"><li>[^<]*{re.escape(complaint)}', answer.text), answer.text
    assert runtime.staff.list_api_keys() == []


def test_a_second_key_of_the_same_name_is_refused(app: Flask, runtime: Runtime) -> None:
    admin = staff_client(app, "admin")
    runtime.staff.create_api_key("shop checkout", "marketer")
    answer = post(admin, "/console/api-keys", "/console/api-keys", {"name": "shop checkout", "role": "marketer"})
    assert answer.status_code == 422 and "already a key with this name" in answer.text


@pytest.mark.parametrize("role", ["marketer", "compliance"])
def test_only_admins_invite_change_roles_and_make_keys(app: Flask, runtime: Runtime, role: str) -> None:
    client = staff_client(app, role)
    bo = runtime.staff.create_user("bo@staff.example", "marketer", STAFF_PASSWORD)
    token = csrf_token(client.get("/account").text)
    for action, data in [
        ("/console/users", {"email": "eve@staff.example", "role": "admin"}),
        (f"/console/users/{bo.id}/role", {"role": "admin"}),
        (f"/console/users/{bo.id}/reset-two-factor", {}),
        ("/console/api-keys", {"name": "mine", "role": "admin"}),
    ]:
        assert client.post(action, data={"csrf_token": token, **data}).status_code == 403
    assert {a.email for a in runtime.staff.list_users()} == {f"{role}@staff.example", "bo@staff.example"}
    assert runtime.staff.list_api_keys() == []


@pytest.mark.parametrize(
    ("action", "data"),
    [
        ("/console/users", {"email": "eve@staff.example", "role": "admin"}),
        ("/console/users/{bo}/role", {"role": "admin"}),
        ("/console/users/{bo}/reset-two-factor", {}),
        ("/console/api-keys", {"name": "mine", "role": "admin"}),
    ],
)
def test_forged_posts_get_a_clear_refusal_and_change_nothing(
    app: Flask, runtime: Runtime, action: str, data: dict[str, str]
) -> None:
    admin = staff_client(app, "admin")
    bo = runtime.staff.create_user("bo@staff.example", "marketer", STAFF_PASSWORD)
    url = action.format(bo=bo.id)
    for token in (None, "forged"):
        form = data if token is None else {"csrf_token": token, **data}
        refused = admin.post(url, data=form)
        assert 400 <= refused.status_code < 500
        assert "form could not be accepted" in refused.text
    assert {a.email: a.role for a in runtime.staff.list_users()} == {
        "admin@staff.example": "admin",
        "bo@staff.example": "marketer",
    }
    assert runtime.staff.list_api_keys() == []
    garbled = admin.post("/console/users/not-a-number/role", data=data)
    assert garbled.status_code in (404, 405)


def test_the_command_line_changes_a_role_too_but_keeps_an_admin(app: Flask, runtime: Runtime) -> None:
    runtime.staff.create_user("solo@staff.example", "admin", STAFF_PASSWORD)
    runtime.staff.create_user("bo@staff.example", "marketer", STAFF_PASSWORD)
    runner = app.test_cli_runner()
    done = runner.invoke(args=["users", "set-role", "bo@staff.example", "--role", "admin"])
    assert done.exit_code == 0 and "bo@staff.example: now admin" in done.output
    assert runner.invoke(args=["users", "disable", "bo@staff.example"]).exit_code == 0
    refused = runner.invoke(args=["users", "set-role", "solo@staff.example", "--role", "marketer"])
    assert refused.exit_code == 1 and "no active admin" in refused.output
    assert runner.invoke(args=["users", "set-role", "nobody@staff.example", "--role", "admin"]).exit_code == 2
