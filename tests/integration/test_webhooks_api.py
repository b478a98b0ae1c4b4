"""The webhook endpoints' API (`/api/v1/webhooks`) and the console's Webhooks page: the secret
shown once, bad input as problem+json (or the form again) with nothing written, teams kept
apart, keys without the scope refused, the console's forms protected by CSRF."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engine import create_app
from engine.runtime import Runtime
from engine.services.webhooks import publish
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import csrf_token, make_campaign, runtime_of, staff_client

HOOK = "https://hooks.example/fluister"


@pytest.fixture
def site(database_url: str, settings_for) -> Iterator[tuple[Flask, Runtime]]:  # type: ignore[no-untyped-def]
    memory = MemoryTransport()
    app = create_app(settings_for(database_url), transports=Transports(email=memory, sms=memory))
    runtime = runtime_of(app)
    # Production's rules (https, public addresses), with a resolver that needs no network.
    names = {"hooks.example": ["93.184.216.34"], "internal.example": ["10.0.0.7"]}
    runtime.webhooks.resolver = lambda host, port: names.get(host, [])
    make_campaign(runtime.db)
    yield app, runtime
    runtime.db.dispose()


def new_key(app: Flask, name: str, *options: str) -> str:
    made = app.test_cli_runner().invoke(args=["api-keys", "create", name, *options])
    assert made.exit_code == 0, made.output
    return str(made.stdout.strip().splitlines()[-1])


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def endpoint_count(runtime: Runtime) -> int:
    return len(runtime.webhooks.all(None))


def test_register_read_change_and_delete_an_endpoint(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    key = bearer(new_key(app, "shop", "--role", "marketer"))
    client = app.test_client()

    made = client.post(
        "/api/v1/webhooks", json={"url": HOOK, "events": ["reward.approved", "forward.created"]}, headers=key
    )
    assert made.status_code == 201, made.json
    body = made.json
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{32}", body["secret"])
    assert body["events"] == ["forward.created", "reward.approved"] and body["enabled"] is True
    assert made.headers["Location"] == f"/api/v1/webhooks/{body['id']}"

    listed = client.get("/api/v1/webhooks", headers=key).json
    assert [e["id"] for e in listed["data"]] == [body["id"]]
    read = client.get(f"/api/v1/webhooks/{body['id']}", headers=key)
    assert read.status_code == 200 and "secret" not in read.json and "secret" not in listed["data"][0]
    assert body["secret"] not in client.get("/api/v1/webhooks", headers=key).text

    changed = client.patch(
        f"/api/v1/webhooks/{body['id']}", json={"enabled": False, "events": ["opt_out.recorded"]}, headers=key
    )
    assert changed.status_code == 200
    assert (changed.json["enabled"], changed.json["events"]) == (False, ["opt_out.recorded"])
    assert changed.json["disabled_reason"] == "disabled by shop"

    assert client.delete(f"/api/v1/webhooks/{body['id']}", headers=key).status_code == 204
    assert client.get(f"/api/v1/webhooks/{body['id']}", headers=key).status_code == 404
    assert endpoint_count(runtime) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://hooks.example/", "events": ["forward.created"]}, "url"),
        ({"url": "https://127.0.0.1/", "events": ["forward.created"]}, "url"),
        ({"url": "https://[::ffff:127.0.0.1]/", "events": ["forward.created"]}, "url"),
        ({"url": "https://2130706433/", "events": ["forward.created"]}, "url"),
        ({"url": "https://internal.example/", "events": ["forward.created"]}, "url"),  # resolves to 10.0.0.7
        ({"url": "https://nowhere.example/", "events": ["forward.created"]}, "url"),  # does not resolve
        ({"url": HOOK, "events": []}, "events"),
        ({"url": HOOK, "events": ["forward.deleted"]}, "events"),
        ({"url": HOOK, "events": "forward.created"}, "events"),
        ({"url": 5, "events": ["forward.created"]}, "url"),
        ({"events": ["forward.created"]}, "url"),
        ({"url": HOOK, "events": ["forward.created"], "secret": "whsec_mine"}, "secret"),
        ({"url": HOOK, "events": ["forward.created"], "description": "x" * 201}, "description"),
        ({"url": HOOK, "events": ["forward.created"], "description": "shop\x00"}, "description"),
        ({"url": HOOK, "events": ["forward.created"], "enabled": "yes"}, "enabled"),
        ([HOOK], "body"),
    ],
)
def test_bad_endpoints_are_refused_as_problem_json_and_nothing_is_written(site, body, field) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    key = bearer(new_key(app, "shop", "--role", "marketer"))
    answer = app.test_client().post("/api/v1/webhooks", json=body, headers=key)
    assert answer.status_code == 422
    assert answer.mimetype == "application/problem+json"
    assert field in [error["field"] for error in answer.json["errors"]]
    assert endpoint_count(runtime) == 0


def test_not_json_and_bad_changes_are_4xx(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    key = bearer(new_key(app, "shop", "--role", "marketer"))
    client = app.test_client()
    assert client.post("/api/v1/webhooks", data="url=x", headers=key).status_code == 415
    made = client.post("/api/v1/webhooks", json={"url": HOOK, "events": ["forward.created"]}, headers=key).json
    refused = client.patch(f"/api/v1/webhooks/{made['id']}", json={"url": "https://10.0.0.1/"}, headers=key)
    assert refused.status_code == 422 and refused.mimetype == "application/problem+json"
    assert runtime.webhooks.get(None, made["id"]).url == HOOK
    assert client.patch("/api/v1/webhooks/999", json={"enabled": True}, headers=key).status_code == 404
    assert client.get("/api/v1/webhooks/48915636079", headers=key).status_code == 404  # past any row id
    for before in ("-99999999999", "99999999999"):
        log = client.get(f"/api/v1/webhooks/{made['id']}/deliveries?before={before}", headers=key)
        assert log.status_code == 200 and log.json["data"] == []
    for query in ("limit=0", "limit=101", "limit=ten", "before=abc"):
        assert client.get(f"/api/v1/webhooks/{made['id']}/deliveries?{query}", headers=key).status_code == 422


def test_teams_and_scopes(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    ours = bearer(new_key(app, "ours", "--role", "marketer"))
    theirs = bearer(new_key(app, "theirs", "--role", "marketer", "--team", "other"))
    reader = bearer(new_key(app, "reader", "--role", "marketer", "--scope", "metrics:read"))
    admin = bearer(new_key(app, "admin", "--role", "admin"))
    client = app.test_client()
    made = client.post("/api/v1/webhooks", json={"url": HOOK, "events": ["forward.created"]}, headers=ours).json
    assert client.get(f"/api/v1/webhooks/{made['id']}", headers=theirs).status_code == 404
    assert client.delete(f"/api/v1/webhooks/{made['id']}", headers=theirs).status_code == 404
    assert client.get("/api/v1/webhooks", headers=theirs).json["data"] == []
    assert client.get("/api/v1/webhooks", headers=reader).status_code == 403
    assert (
        client.post("/api/v1/webhooks", json={"url": HOOK, "events": ["forward.created"]}, headers=reader).status_code
        == 403
    )
    assert [e["id"] for e in client.get("/api/v1/webhooks", headers=admin).json["data"]] == [made["id"]]
    assert client.get("/api/v1/webhooks").status_code == 401
    assert endpoint_count(runtime) == 1


def test_the_delivery_log_and_sending_again(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    key = bearer(new_key(app, "shop", "--role", "marketer"))
    client = app.test_client()
    made = client.post("/api/v1/webhooks", json={"url": HOOK, "events": ["forward.created"]}, headers=key).json
    with runtime.db.transaction() as session:
        publish(session, "forward.created", {"campaign": "spring", "forward": "abc"})
    log = client.get(f"/api/v1/webhooks/{made['id']}/deliveries", headers=key).json
    [delivery] = log["data"]
    assert (delivery["event_type"], delivery["status"], delivery["attempts"]) == ("forward.created", "pending", 0)
    again = client.post(f"/api/v1/webhooks/{made['id']}/deliveries/{delivery['id']}/retry", headers=key)
    assert again.status_code == 202 and again.json["event_id"] == delivery["event_id"]
    assert len(client.get(f"/api/v1/webhooks/{made['id']}/deliveries", headers=key).json["data"]) == 2
    client.patch(f"/api/v1/webhooks/{made['id']}", json={"enabled": False}, headers=key)
    refused = client.post(f"/api/v1/webhooks/{made['id']}/deliveries/{delivery['id']}/retry", headers=key)
    assert refused.status_code == 409 and refused.mimetype == "application/problem+json"


# -- the console ---------------------------------------------------------------------------------


def add_in_console(client: FlaskClient, url: str, *events: str) -> str:
    token = csrf_token(client.get("/console/webhooks").text)
    answer = client.post("/console/webhooks", data={"url": url, "events": list(events), "csrf_token": token})
    return answer.text if answer.status_code in (201, 422) else f"status {answer.status_code}"


def test_the_console_adds_an_endpoint_and_shows_its_secret_once(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    client = staff_client(app, "marketer")
    page = add_in_console(client, HOOK, "forward.created", "friend.converted")
    secret = re.search(r"<code>(whsec_[^<]+)</code>", page)
    assert secret, page
    listing = client.get("/console/webhooks").text
    assert HOOK in listing and secret.group(1) not in listing
    [endpoint] = runtime.webhooks.all(None)
    assert endpoint.event_types == ("forward.created", "friend.converted")


def test_the_console_says_what_is_wrong_and_keeps_what_was_typed(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    client = staff_client(app, "marketer")
    page = add_in_console(client, "https://169.254.169.254/latest", "forward.created")
    assert "link-local" in page and 'value="https://169.254.169.254/latest"' in page
    page = add_in_console(client, HOOK)
    assert "choose at least one event type" in page
    assert endpoint_count(runtime) == 0


def test_the_console_forms_need_their_csrf_token(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    client = staff_client(app, "marketer")
    assert client.post("/console/webhooks", data={"url": HOOK, "events": ["forward.created"]}).status_code == 400
    assert endpoint_count(runtime) == 0
    add_in_console(client, HOOK, "forward.created")
    [endpoint] = runtime.webhooks.all(None)
    assert client.post(f"/console/webhooks/{endpoint.id}/delete").status_code == 400
    assert client.post(f"/console/webhooks/{endpoint.id}/disable").status_code == 400
    assert runtime.webhooks.get(None, endpoint.id).enabled


def test_the_console_disables_enables_sends_again_and_deletes(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    client = staff_client(app, "marketer")
    add_in_console(client, HOOK, "forward.created")
    [endpoint] = runtime.webhooks.all(None)
    token = csrf_token(client.get("/console/webhooks").text)
    assert client.post(f"/console/webhooks/{endpoint.id}/disable", data={"csrf_token": token}).status_code == 303
    assert not runtime.webhooks.get(None, endpoint.id).enabled
    assert client.post(f"/console/webhooks/{endpoint.id}/enable", data={"csrf_token": token}).status_code == 303
    assert runtime.webhooks.get(None, endpoint.id).enabled

    with runtime.db.transaction() as session:
        publish(session, "forward.created", {"campaign": "spring", "forward": "abc"})
    log = client.get(f"/console/webhooks/{endpoint.id}").text
    [delivery_id] = re.findall(r'id="delivery-(\d+)"', log)
    assert "Send again" in log and "forward.created" in log
    again = client.post(f"/console/webhooks/{endpoint.id}/deliveries/{delivery_id}/retry", data={"csrf_token": token})
    assert again.status_code == 303
    assert len(re.findall(r'id="delivery-(\d+)"', client.get(f"/console/webhooks/{endpoint.id}").text)) == 2

    assert client.post(f"/console/webhooks/{endpoint.id}/delete", data={"csrf_token": token}).status_code == 303
    assert endpoint_count(runtime) == 0


def test_compliance_staff_and_other_teams_do_not_see_the_page(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    ours = staff_client(app, "marketer")
    add_in_console(ours, HOOK, "forward.created")
    [endpoint] = runtime.webhooks.all(None)
    assert staff_client(app, "compliance").get("/console/webhooks").status_code == 403
    runtime.staff.create_user("other@staff.example", "marketer", "correct horse battery staple", team="other")
    from tests.helpers import sign_in

    other = app.test_client()
    sign_in(other, "other@staff.example")
    assert HOOK not in other.get("/console/webhooks").text
    assert other.get(f"/console/webhooks/{endpoint.id}").status_code == 404


def test_the_console_page_and_its_refusals_speak_the_readers_language(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    client = staff_client(app, "marketer")
    dutch = {"Accept-Language": "nl"}
    page = client.get("/console/webhooks", headers=dutch).text
    assert "Een endpoint toevoegen" in page and "Add an endpoint" not in page
    token = csrf_token(page)
    refused = client.post(
        "/console/webhooks",
        data={"url": "https://10.0.0.1/", "events": ["forward.created"], "csrf_token": token},
        headers={"Accept-Language": "fr"},
    )
    assert refused.status_code == 422
    assert "10.0.0.1 est une adresse de bouclage ou privée" in refused.text
    # The API answers in English whatever the client's language.
    key = bearer(new_key(app, "shop", "--role", "marketer"))
    answer = app.test_client().post(
        "/api/v1/webhooks", json={"url": "https://10.0.0.1/", "events": ["forward.created"]}, headers={**key, **dutch}
    )
    assert "10.0.0.1 is a loopback or private address" in answer.json["detail"]
    assert endpoint_count(runtime) == 0
