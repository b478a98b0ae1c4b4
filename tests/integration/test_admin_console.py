"""The console's admin pages: staff accounts, API keys and unknown messages, as an admin uses
them, and kept from everyone else."""

from __future__ import annotations

import logging
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engine.models import MessageStatus
from engine.runtime import Runtime
from engine.transports.memory import MemoryTransport
from tests.helpers import STAFF_PASSWORD, csrf_token, sign_in, staff_client
from tests.integration.test_operator_cli import history, never_handed_over, status, unknown_emails

PAGES = ("/console/users", "/console/api-keys", "/console/messages/unknown")


def post(client: FlaskClient, page: str, action: str, data: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    token = csrf_token(client.get(page).text)
    return client.post(action, data={"csrf_token": token, **(data or {})})


@pytest.mark.parametrize("role", ["marketer", "compliance"])
def test_only_admins_reach_the_admin_pages(app: Flask, runtime: Runtime, role: str) -> None:
    client = staff_client(app, role)
    target = runtime.staff.create_user("bo@staff.example", "marketer", STAFF_PASSWORD)
    for page in PAGES:
        assert client.get(page).status_code == 403
    token = csrf_token(client.get("/account").text)
    refused = client.post(f"/console/users/{target.id}/disable", data={"csrf_token": token})
    assert refused.status_code == 403
    assert sign_in(app.test_client(), "bo@staff.example").status_code == 303
    assert app.test_client().get("/console/users").status_code == 302  # to the sign-in page


def test_an_admin_disables_and_enables_an_account_and_its_sessions_end(app: Flask, runtime: Runtime) -> None:
    admin = staff_client(app, "admin")
    bo = runtime.staff.create_user("bo@staff.example", "marketer", STAFF_PASSWORD)
    theirs = app.test_client()
    assert sign_in(theirs, "bo@staff.example").status_code == 303

    page = admin.get("/console/users")
    assert page.status_code == 200
    assert "bo@staff.example" in page.text and "admin@staff.example" in page.text

    done = post(admin, "/console/users", f"/console/users/{bo.id}/disable")
    assert done.status_code == 303
    assert "bo@staff.example: disabled" in admin.get("/console/users").text
    assert theirs.get("/console").status_code != 200
    assert sign_in(theirs, "bo@staff.example").status_code != 303

    assert post(admin, "/console/users", f"/console/users/{bo.id}/enable").status_code == 303
    assert sign_in(theirs, "bo@staff.example").status_code == 303


def test_without_a_csrf_token_nothing_changes(app: Flask, runtime: Runtime) -> None:
    admin = staff_client(app, "admin")
    bo = runtime.staff.create_user("bo@staff.example", "marketer", STAFF_PASSWORD)
    refused = admin.post(f"/console/users/{bo.id}/disable")
    assert 400 <= refused.status_code < 500
    assert sign_in(app.test_client(), "bo@staff.example").status_code == 303


def test_an_admin_cannot_lock_themselves_out(app: Flask, runtime: Runtime) -> None:
    admin = staff_client(app, "admin")
    me = next(a for a in runtime.staff.list_users() if a.email == "admin@staff.example")
    refused = post(admin, "/console/users", f"/console/users/{me.id}/disable")
    assert refused.status_code == 409
    assert admin.get("/console/users").status_code == 200
    assert post(admin, "/console/users", "/console/users/99999/disable").status_code == 404


def test_a_new_password_is_shown_once_works_and_is_never_logged(
    app: Flask, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    admin = staff_client(app, "admin")
    bo = runtime.staff.create_user("bo@staff.example", "marketer", STAFF_PASSWORD)
    theirs = app.test_client()
    assert sign_in(theirs, "bo@staff.example").status_code == 303

    with caplog.at_level(logging.INFO):
        answer = post(admin, "/console/users", f"/console/users/{bo.id}/reset-password")
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    found = re.search(r'id="new-password".*?<code>([^<]+)</code>', answer.text, re.S)
    assert found, answer.text
    password = found.group(1)
    assert len(password) >= 12
    assert password not in caplog.text and f"staff account {bo.id}" in caplog.text
    assert password not in admin.get("/console/users").text  # shown once

    assert theirs.get("/console").status_code != 200
    assert sign_in(app.test_client(), "bo@staff.example").status_code != 303
    assert sign_in(app.test_client(), "bo@staff.example", password).status_code == 303


def test_an_admin_lists_and_revokes_keys_never_seeing_one(app: Flask, runtime: Runtime) -> None:
    admin = staff_client(app, "admin")
    key = runtime.staff.create_api_key("shop checkout", "marketer", ["redemptions"])
    key_id = runtime.staff.list_api_keys()[0].id
    page = admin.get("/console/api-keys")
    assert page.status_code == 200
    assert "shop checkout" in page.text and key.secret[:12] in page.text and key.secret not in page.text

    assert post(admin, "/console/api-keys", f"/console/api-keys/{key_id}/revoke").status_code == 303
    assert runtime.staff.authenticate_key(key.secret) is None
    assert "revoked" in admin.get("/console/api-keys").text
    assert post(admin, "/console/api-keys", "/console/api-keys/99999/revoke").status_code == 404


def test_an_admin_reconciles_unknown_messages(  # type: ignore[no-untyped-def]
    app: Flask, runtime: Runtime, campaign, transport: MemoryTransport
) -> None:
    admin = staff_client(app, "admin")
    handed, never, found = unknown_emails(runtime, transport, "f1@example.com", "f2@example.com", "f3@example.com")
    never_handed_over(runtime, never)

    page = admin.get("/console/messages/unknown")
    assert page.status_code == 200
    assert "example.com" not in page.text
    assert "did not answer in time" in page.text
    row = re.search(rf'id="message-{never}">(.*?)</tr>', page.text, re.S)
    assert row and "<td>no</td>" in row.group(1)

    url = "/console/messages/unknown"
    refused = post(admin, url, url, {"action": "requeue", "message": [str(handed), str(never)]})
    assert refused.status_code == 409
    assert f"Not requeued: {handed}" in refused.text
    runtime.queue.drain()
    assert (status(runtime, handed), status(runtime, never)) == (MessageStatus.UNKNOWN, MessageStatus.SENT)

    assert post(admin, url, url, {"action": "requeue", "message": str(handed), "force": "on"}).status_code == 303
    assert post(admin, url, url, {"action": "mark-sent", "message": str(found)}).status_code == 303
    runtime.queue.drain()
    assert status(runtime, handed) == status(runtime, found) == MessageStatus.SENT
    assert sorted(e.to for e in transport.emails) == ["f1@example.com", "f2@example.com"]
    assert {e.actor for e in history(runtime)} == {"admin@staff.example"}
    assert "No unknown messages" in admin.get(url).text

    assert post(admin, url, url, {"action": "mark-sent", "message": "99999"}).status_code == 404
    assert post(admin, url, url, {"action": "mark-sent", "message": "x"}).status_code == 422
    assert post(admin, url, url, {"action": "delete", "message": str(found)}).status_code == 422
