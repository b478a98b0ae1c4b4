"""Whose address a request is counted by: X-Forwarded-For only from the proxies named in
TRUSTED_PROXIES, IPv4 clients of a dual-stack listener as IPv4, and no raw address in a log."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from engine import create_app
from engine.caps import network_of
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import csrf_token, forward_form, make_campaign, runtime_of

PROXY = "10.0.0.5"
CLIENT = "198.51.100.7"


@pytest.fixture
def site(database_url: str, settings_for) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    memory = MemoryTransport()
    settings = settings_for(database_url, trusted_proxies=("10.0.0.0/8",), trusted_proxy_count=1)
    app = create_app(settings, transports=Transports(email=memory, sms=memory))
    # What the app takes the client to be, as every handler sees it.
    app.add_url_rule("/test/whoami", "whoami", lambda: f"{request.remote_addr} {request.scheme}")
    make_campaign(runtime_of(app).db)
    yield app
    runtime_of(app).db.dispose()


def whoami(client: FlaskClient, remote: str, **headers: str) -> str:
    return client.get("/test/whoami", headers=headers, environ_base={"REMOTE_ADDR": remote}).text


def test_the_forwarded_address_is_believed_from_a_trusted_proxy_only(site: Flask) -> None:
    client = site.test_client()
    forwarded = {"X-Forwarded-For": f"6.6.6.6, {CLIENT}", "X-Forwarded-Proto": "https"}
    assert whoami(client, PROXY, **forwarded) == f"{CLIENT} https"
    # Straight to the app, past the proxy: the header is the client's own invention.
    assert whoami(client, "203.0.113.50", **forwarded) == "203.0.113.50 http"


def test_an_ipv4_client_of_a_dual_stack_listener_counts_as_ipv4(site: Flask) -> None:
    client = site.test_client()
    assert whoami(client, f"::ffff:{CLIENT}") == f"{CLIENT} http"
    assert whoami(client, "::ffff:10.0.0.5", **{"X-Forwarded-For": f"::ffff:{CLIENT}"}) == f"{CLIENT} http"
    assert network_of(f"::ffff:{CLIENT}") == "198.51.100.0/24"
    assert network_of("2001:db8::1") == "2001:db8::/64"


def test_ipv4_clients_on_a_dual_stack_listener_do_not_share_one_network_budget(site: Flask) -> None:
    make_campaign(runtime_of(site).db, "tight", caps={"submissions_per_network_per_hour": 1})
    client = site.test_client()
    for n, address in enumerate(("::ffff:198.51.100.7", "::ffff:203.0.113.9")):
        form = forward_form(client.get("/c/tight").text, friends=[f"f{n}@example.com"], sender_name=f"Sam {'AB'[n]}")
        response = client.post("/c/tight/forward", data=form, environ_base={"REMOTE_ADDR": address})
        assert response.status_code == 303, address


def test_no_raw_client_address_appears_in_the_log(site: Flask, caplog: pytest.LogCaptureFixture) -> None:
    client = site.test_client()
    environ = {"REMOTE_ADDR": PROXY}
    headers = {"X-Forwarded-For": CLIENT}
    with caplog.at_level(logging.DEBUG):
        # A tour of what logs the client: a bot's honeypot, a forged unsubscribe link, a forged
        # webhook, wrong passwords, a throttled sign-in.
        form = forward_form(client.get("/c/spring", headers=headers, environ_base=environ).text, website="x")
        client.post("/c/spring/forward", data=form, headers=headers, environ_base=environ)
        client.get("/u/forged-token", headers=headers, environ_base=environ)
        client.post("/u/forged-token", headers=headers, environ_base=environ)
        client.post("/hooks/twilio/status", data={"a": "b"}, headers=headers, environ_base=environ)
        client.post("/hooks/sendgrid/events", data=b"[]", headers=headers, environ_base=environ)
        for _ in range(12):
            login = client.get("/login", headers=headers, environ_base=environ).text
            client.post(
                "/login",
                data={"email": "nobody@example.com", "password": "wrong password!", "csrf_token": csrf_token(login)},
                headers=headers,
                environ_base=environ,
            )
    lines = "\n".join(record.getMessage() for record in caplog.records)
    assert "refused" in lines and "sign-in" in lines  # the tour was logged...
    assert CLIENT not in lines  # ...without the address
    assert PROXY not in lines
