"""Provider webhooks with real signatures: Twilio's HMAC and SendGrid's ECDSA."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator
from werkzeug.test import EnvironBuilder, run_wsgi_app

from engine import create_app
from engine.models import Message, Suppression
from engine.runtime import Runtime
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import count, make_campaign, runtime_of, submission

TWILIO_TOKEN = "twilio-auth-token-for-tests"
SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC_KEY = base64.b64encode(
    SIGNING_KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
).decode()


@pytest.fixture
def hooked(database_url: str, settings_for) -> Iterator[tuple[Flask, Runtime, MemoryTransport]]:  # type: ignore[no-untyped-def]
    transport = MemoryTransport()
    settings = settings_for(database_url, twilio_auth_token=TWILIO_TOKEN, sendgrid_webhook_public_key=PUBLIC_KEY)
    app = create_app(settings, transports=Transports(email=transport, sms=transport))
    runtime = runtime_of(app)
    make_campaign(runtime.db)
    yield app, runtime, transport
    runtime.db.dispose()


def sent_message(runtime: Runtime, friend: str) -> Message:
    receipt = runtime.forwarding.submit("spring", submission(friend))
    runtime.delivery.deliver(receipt.message_ids)
    with runtime.db.reading() as session:
        return session.get(Message, receipt.message_ids[0])


def message_state(runtime: Runtime, message_id: int) -> tuple[str, str | None]:
    with runtime.db.reading() as session:
        message = session.get(Message, message_id)
        return message.status, message.error_code


def twilio_post(client: FlaskClient, params: dict[str, str], token: str = TWILIO_TOKEN):  # type: ignore[no-untyped-def]
    signature = RequestValidator(token).compute_signature("http://fluister.test/hooks/twilio/status", params)
    return client.post("/hooks/twilio/status", data=params, headers={"X-Twilio-Signature": signature})


def sendgrid_post(client: FlaskClient, body: bytes, *, age: int = 0, key: ec.EllipticCurvePrivateKey = SIGNING_KEY):  # type: ignore[no-untyped-def]
    timestamp = str(int(time.time()) - age)
    signature = base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": signature,
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }
    return client.post("/hooks/sendgrid/events", data=body, headers=headers)


def events(*items: dict[str, object]) -> bytes:
    return json.dumps(list(items)).encode()


def test_twilio_delivered_receipt_moves_the_message(hooked) -> None:  # type: ignore[no-untyped-def]
    app, runtime, _ = hooked
    message = sent_message(runtime, "06 12345678")
    client = app.test_client()
    response = twilio_post(client, {"MessageSid": message.provider_id, "MessageStatus": "delivered"})
    assert response.status_code == 204
    assert message_state(runtime, message.id) == ("delivered", None)
    # A late, out-of-order "sent" does not move it back.
    twilio_post(client, {"MessageSid": message.provider_id, "MessageStatus": "sent"})
    assert message_state(runtime, message.id) == ("delivered", None)


def test_twilio_opt_out_error_suppresses_the_number(hooked) -> None:  # type: ignore[no-untyped-def]
    app, runtime, _ = hooked
    message = sent_message(runtime, "06 12345678")
    twilio_post(app.test_client(), {"MessageSid": message.provider_id, "MessageStatus": "failed", "ErrorCode": "21610"})
    assert message_state(runtime, message.id) == ("failed", "21610")
    with runtime.db.reading() as session:
        suppression = session.scalars(select(Suppression)).one()
    assert (suppression.channel, suppression.scope, suppression.source) == ("sms", "global", "stop")


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Twilio-Signature": "bm9wZQ=="}],
    ids=["unsigned", "forged"],
)
def test_twilio_unsigned_or_forged_calls_get_403_and_change_nothing(hooked, headers: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    app, runtime, _ = hooked
    message = sent_message(runtime, "06 12345678")
    params = {"MessageSid": message.provider_id, "MessageStatus": "failed", "ErrorCode": "21610"}
    response = app.test_client().post("/hooks/twilio/status", data=params, headers=headers)
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    wrong_token = twilio_post(app.test_client(), params, token="someone-elses-token")
    assert wrong_token.status_code == 403
    assert message_state(runtime, message.id) == ("sent", None)
    assert count(runtime.db, Suppression) == 0


def test_sendgrid_events_deliver_bounce_and_are_counted_once(hooked) -> None:  # type: ignore[no-untyped-def]
    app, runtime, _ = hooked
    bob = sent_message(runtime, "bob@example.com")
    carol = sent_message(runtime, "carol@example.com")
    batch = events(
        {"event": "delivered", "sg_event_id": "ev-1", "fluister_message": bob.public_id},
        {
            "event": "bounce",
            "type": "bounce",
            "reason": "550 no such user",
            "sg_event_id": "ev-2",
            "fluister_message": carol.public_id,
        },
    )
    client = app.test_client()
    assert sendgrid_post(client, batch).status_code == 204
    assert sendgrid_post(client, batch).status_code == 204  # SendGrid retries: nothing happens twice
    assert message_state(runtime, bob.id) == ("delivered", None)
    assert message_state(runtime, carol.id) == ("bounced", "bounce")
    with runtime.db.reading() as session:
        suppressions = session.scalars(select(Suppression)).all()
    assert [(s.scope, s.source) for s in suppressions] == [("global", "bounce")]


@pytest.mark.parametrize(
    ("event", "scope", "source"),
    [
        ({"event": "spamreport"}, "global", "spam-report"),
        ({"event": "unsubscribe"}, "global", "link"),  # SendGrid's "opt out of all emails"
        ({"event": "group_unsubscribe"}, "friends", "link"),
        ({"event": "dropped", "reason": "Bounced Address"}, "global", "bounce"),
    ],
)
def test_sendgrid_opt_out_events_suppress_with_scope_and_source(hooked, event, scope: str, source: str) -> None:  # type: ignore[no-untyped-def]
    app, runtime, _ = hooked
    bob = sent_message(runtime, "bob@example.com")
    sendgrid_post(app.test_client(), events({**event, "sg_event_id": "ev-9", "fluister_message": bob.public_id}))
    with runtime.db.reading() as session:
        suppression = session.scalars(select(Suppression)).one()
    assert (suppression.scope, suppression.source, suppression.channel) == (scope, source, "email")


def test_sendgrid_refuses_forged_stale_and_unsigned_calls(hooked) -> None:  # type: ignore[no-untyped-def]
    app, runtime, _ = hooked
    bob = sent_message(runtime, "bob@example.com")
    body = events({"event": "spamreport", "sg_event_id": "ev-3", "fluister_message": bob.public_id})
    client = app.test_client()
    assert sendgrid_post(client, body, key=ec.generate_private_key(ec.SECP256R1())).status_code == 403
    assert sendgrid_post(client, body, age=3600).status_code == 403
    assert client.post("/hooks/sendgrid/events", data=body).status_code == 403
    assert count(runtime.db, Suppression) == 0


@pytest.mark.parametrize("body", [b"not json", b'{"event": "delivered"}', b"[1, 2]"])
def test_sendgrid_signed_but_malformed_body_is_400(hooked, body: bytes) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = hooked
    response = sendgrid_post(app.test_client(), body)
    assert response.status_code == 400
    assert response.json["status"] == 400


def test_events_for_unknown_messages_are_accepted_and_ignored(hooked) -> None:  # type: ignore[no-untyped-def]
    app, runtime, _ = hooked
    body = events({"event": "bounce", "sg_event_id": "ev-4", "fluister_message": "nope"})
    assert sendgrid_post(app.test_client(), body).status_code == 204
    assert twilio_post(app.test_client(), {"MessageSid": "SMnope", "MessageStatus": "delivered"}).status_code == 204
    assert count(runtime.db, Suppression) == 0


def test_twilio_callback_before_the_sid_is_recorded_finds_its_message_by_reference(hooked) -> None:  # type: ignore[no-untyped-def]
    app, runtime, _ = hooked
    receipt = runtime.forwarding.submit("spring", submission("06 12345678"))
    with runtime.db.reading() as session:
        public_id = session.get(Message, receipt.message_ids[0]).public_id
    params = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered"}
    url = f"http://fluister.test/hooks/twilio/status?m={public_id}"
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, params)
    response = app.test_client().post(
        f"/hooks/twilio/status?m={public_id}", data=params, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 204
    with runtime.db.reading() as session:
        message = session.get(Message, receipt.message_ids[0])
    assert (message.status, message.provider_id) == ("delivered", "SM" + "a" * 32)


def test_a_large_signed_event_batch_is_accepted(hooked) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = hooked
    body = events(
        *[{"event": "processed", "sg_event_id": f"ev-{i}", "fluister_message": "x" * 40} for i in range(2000)]
    )
    assert len(body) > 64 * 1024
    assert sendgrid_post(app.test_client(), body).status_code == 204


# -- bodies no provider sends: refused before they cost us anything ------------------------------


NINE_MB = 9 * 1000 * 1000
HOOKS = {
    "/hooks/twilio/status": "application/x-www-form-urlencoded",
    "/hooks/twilio/inbound": "application/x-www-form-urlencoded",
    "/hooks/sendgrid/events": "application/json",
}
FORGED = {
    "X-Twilio-Signature": "bm9wZQ==",
    "X-Twilio-Email-Event-Webhook-Signature": "bm9wZQ==",
    **{"X-Twilio-Email-Event-Webhook-Timestamp": str(int(time.time()))},
}


class WatchedBody:
    """A request body that counts what the app reads of it: `size` bytes, or endless (chunked)."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        left = (self.size - self.read_bytes) if self.size is not None else 1 << 62
        n = left if n is None or n < 0 else min(n, left)
        n = min(n, 1 << 16)
        self.read_bytes += n
        return b"a" * n

    def readline(self, n: int = -1) -> bytes:
        return self.read(n)


def post_body(app: Flask, path: str, body: WatchedBody, content_type: str, length: int | None) -> tuple[int, str]:
    """POST `body` as it comes off the socket: with this Content-Length, or chunked (None)."""
    environ = EnvironBuilder(path, method="POST", headers={**FORGED, "Content-Type": content_type}).get_environ()
    environ["wsgi.input"] = body
    environ.pop("CONTENT_LENGTH", None)
    if length is None:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        environ["wsgi.input_terminated"] = True
    else:
        environ["CONTENT_LENGTH"] = str(length)
    chunks, status, headers = run_wsgi_app(app, environ)
    b"".join(chunks)
    return int(status.split()[0]), headers.get("Content-Type", "")


@pytest.mark.parametrize("path", sorted(HOOKS))
def test_a_forged_9_mb_body_is_refused_by_its_length_without_reading_it(hooked, path: str) -> None:  # type: ignore[no-untyped-def]
    app, runtime, _ = hooked
    body = WatchedBody(NINE_MB)
    status, content_type = post_body(app, path, body, HOOKS[path], NINE_MB)
    assert status == 413
    assert content_type == "application/problem+json"
    assert body.read_bytes == 0
    assert count(runtime.db, Suppression) == 0


@pytest.mark.parametrize("path", sorted(HOOKS))
def test_an_endless_chunked_body_is_read_only_up_to_the_limit(hooked, path: str) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = hooked
    body = WatchedBody()
    status, _ = post_body(app, path, body, HOOKS[path], None)
    assert status == 413
    assert 0 < body.read_bytes <= 3 * 1024 * 1024


def test_a_twilio_body_with_more_parameters_than_twilio_sends_is_refused_unparsed(hooked, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    app, runtime, _ = hooked
    message = sent_message(runtime, "06 12345678")
    params = {"MessageSid": message.provider_id, "MessageStatus": "failed", "ErrorCode": "21610"}
    params.update({f"P{i}": "x" for i in range(200)})
    # Even correctly signed: no callback of Twilio's has this many parameters.
    parsed: list[object] = []
    monkeypatch.setattr(RequestValidator, "validate", lambda *args: parsed.append(args) or True)
    response = twilio_post(app.test_client(), params)
    assert response.status_code == 413
    assert parsed == []
    assert message_state(runtime, message.id) == ("sent", None)
    assert count(runtime.db, Suppression) == 0


def test_a_twilio_callback_that_is_not_a_form_is_refused(hooked) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = hooked
    response = app.test_client().post(
        "/hooks/twilio/inbound", data=b'{"Body": "STOP"}', headers={**FORGED, "Content-Type": "application/json"}
    )
    assert response.status_code == 415


def test_a_signed_sendgrid_body_nested_too_deep_is_a_400(hooked) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = hooked
    assert sendgrid_post(app.test_client(), b"[" * 50_000 + b"]" * 50_000).status_code == 400
