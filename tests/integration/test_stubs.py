"""The provider stubs against the official, unmodified SDKs (sendgrid, twilio).

These tests pin down two things: the stubs speak the providers' APIs well enough for
the SDKs, and how the SDKs themselves behave (errors raised, TLS trust, whether they
reuse connections), which is what our transports have to cope with.
"""

from __future__ import annotations

import datetime
import re
import ssl
import urllib.error
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import python_http_client
import requests
import sendgrid
from python_http_client.exceptions import (
    BadRequestsError,
    InternalServerError,
    ServiceUnavailableError,
    TooManyRequestsError,
    UnauthorizedError,
)
from sendgrid.helpers.mail import Category, CustomArg, Header, Mail
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from tests.stubs.receiver import CallbackReceiver
from tests.stubs.sendgrid import SendGridStub
from tests.stubs.twilio import SERVICE_SENDER, TwilioStub

SENDER = "+15005550006"
RECIPIENT = "+31612345678"
SERVICE_SID = "MG" + "1" * 32


@pytest.fixture(autouse=True)
def _local_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Never route 127.0.0.1 through a proxy; keep the Twilio SDK from rewriting hosts.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    monkeypatch.delenv("TWILIO_REGION", raising=False)


def sendgrid_client(stub: SendGridStub, api_key: str | None = None) -> sendgrid.SendGridAPIClient:
    return sendgrid.SendGridAPIClient(api_key=api_key or stub.api_key, host=stub.url)


def twilio_client(stub: TwilioStub, **options: Any) -> Client:
    client = Client(options.pop("username", stub.account_sid), options.pop("password", stub.auth_token), **options)
    client.api.base_url = stub.url
    return client


def simple_mail(to: str = "friend@example.org") -> Mail:
    return Mail(
        from_email="campaign@fluister.test",
        to_emails=to,
        subject="A friend thinks you'll like this",
        plain_text_content="Hello",
        html_content="<p>Hello</p>",
    )


def valid_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "personalizations": [{"to": [{"email": "friend@example.org"}]}],
        "from": {"email": "campaign@fluister.test"},
        "subject": "Hi",
        "content": [{"type": "text/plain", "value": "Hello"}],
    }
    payload.update(changes)
    return {key: value for key, value in payload.items() if value is not None}


# -- SendGrid -------------------------------------------------------------------------------


def test_sendgrid_send_is_accepted_and_recorded(sendgrid_stub: SendGridStub) -> None:
    mail = simple_mail()
    mail.custom_arg = CustomArg("forward_id", "42")
    mail.header = Header("List-Unsubscribe", "<https://fluister.test/u/abc>")
    mail.category = Category("forward")

    response = sendgrid_client(sendgrid_stub).send(mail)

    assert response.status_code == 202
    assert response.body == b""
    [accepted] = sendgrid_stub.accepted
    assert response.headers["X-Message-Id"] == accepted.message_id
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", accepted.message_id)
    assert accepted.request.headers["Authorization"] == f"Bearer {sendgrid_stub.api_key}"
    assert accepted.request.headers["User-Agent"].startswith("sendgrid/")
    [delivery] = sendgrid_stub.sent_to("friend@example.org")
    assert delivery.kind == "to"
    assert delivery.subject == "A friend thinks you'll like this"
    assert delivery.custom_args == {"forward_id": "42"}
    assert delivery.headers == {"List-Unsubscribe": "<https://fluister.test/u/abc>"}
    assert delivery.categories == ["forward"]
    assert [block["type"] for block in accepted.payload["content"]] == ["text/plain", "text/html"]


def test_sendgrid_personalization_values_override_message_values(sendgrid_stub: SendGridStub) -> None:
    payload = valid_payload(
        subject=None,
        custom_args={"campaign": "spring", "forward_id": "0"},
        personalizations=[
            {"to": [{"email": "a@example.org"}], "subject": "For A", "custom_args": {"forward_id": "1"}},
            {"to": [{"email": "b@example.org"}], "cc": [{"email": "c@example.org"}], "subject": "For B"},
        ],
    )

    sendgrid_client(sendgrid_stub).send(payload)

    deliveries = {delivery.email: delivery for delivery in sendgrid_stub.deliveries()}
    assert deliveries["a@example.org"].custom_args == {"campaign": "spring", "forward_id": "1"}
    assert deliveries["a@example.org"].subject == "For A"
    assert deliveries["b@example.org"].custom_args == {"campaign": "spring", "forward_id": "0"}
    assert deliveries["c@example.org"].kind == "cc"


def test_sendgrid_template_needs_no_content_or_subject(sendgrid_stub: SendGridStub) -> None:
    payload = valid_payload(subject=None, content=None, template_id="d-" + "0" * 32)
    assert sendgrid_client(sendgrid_stub).send(payload).status_code == 202


def test_sendgrid_wrong_key_is_unauthorized(sendgrid_stub: SendGridStub) -> None:
    with pytest.raises(UnauthorizedError) as raised:
        sendgrid_client(sendgrid_stub, api_key="SG.wrong").send(simple_mail())
    assert raised.value.status_code == 401
    assert raised.value.to_dict == {
        "errors": [
            {"message": "The provided authorization grant is invalid, expired, or revoked", "field": None, "help": None}
        ]
    }
    assert sendgrid_stub.accepted == []


def test_sendgrid_missing_key_is_unauthorized(sendgrid_stub: SendGridStub) -> None:
    bare = python_http_client.Client(host=sendgrid_stub.url, version=3)  # no Authorization header at all
    with pytest.raises(UnauthorizedError) as raised:
        bare.mail.send.post(request_body=valid_payload())
    assert raised.value.to_dict == {"errors": [{"field": None, "message": "authorization required"}]}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (valid_payload(personalizations=[]), "personalizations"),
        (valid_payload(personalizations=[{"cc": [{"email": "a@example.org"}]}]), "personalizations.0.to"),
        (valid_payload(personalizations=[{"to": [{"email": "not-an-address"}]}]), "personalizations.0.to.0.email"),
        (
            valid_payload(personalizations=[{"to": [{"email": f"r{i}@example.org"}]} for i in range(1001)]),
            "personalizations",
        ),
        (
            valid_payload(personalizations=[{"to": [{"email": f"r{i}@example.org"} for i in range(1001)]}]),
            "personalizations",
        ),
        (valid_payload(**{"from": None}), "from"),
        (valid_payload(**{"from": {"email": "nobody"}}), "from.email"),
        (valid_payload(subject=None), "subject"),
        (valid_payload(content=None), "content"),
        (valid_payload(content=[{"type": "text/plain", "value": ""}]), "content.0.value"),
        (
            valid_payload(content=[{"type": "text/html", "value": "<p>x</p>"}, {"type": "text/plain", "value": "x"}]),
            "content",
        ),
        (valid_payload(custom_args={"forward_id": 42}), "custom_args.forward_id"),
        (
            valid_payload(personalizations=[{"to": [{"email": "a@example.org"}], "custom_args": {"n": True}}]),
            "personalizations.0.custom_args.n",
        ),
        (valid_payload(categories=[f"c{i}" for i in range(11)]), "categories"),
        (valid_payload(headers={"Subject": "sneaky"}), "headers.Subject"),
        (valid_payload(headers={"X-Count": 3}), "headers.X-Count"),
    ],
    ids=[
        "no-personalizations",
        "no-to",
        "bad-address",
        "too-many-personalizations",
        "too-many-recipients",
        "no-from",
        "bad-from",
        "no-subject",
        "no-content",
        "empty-content",
        "html-before-plain",
        "custom-arg-not-string",
        "personalization-custom-arg-not-string",
        "too-many-categories",
        "reserved-header",
        "header-not-string",
    ],
)
def test_sendgrid_invalid_payload_is_a_bad_request(
    sendgrid_stub: SendGridStub, payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(BadRequestsError) as raised:
        sendgrid_client(sendgrid_stub).send(payload)
    errors = raised.value.to_dict["errors"]
    assert field in [error["field"] for error in errors], errors
    assert all(set(error) == {"message", "field", "help"} for error in errors)
    assert sendgrid_stub.accepted == []


def test_sendgrid_rate_limit_then_success(sendgrid_stub: SendGridStub) -> None:
    sendgrid_stub.fail_next(429, count=2)
    client = sendgrid_client(sendgrid_stub)
    for _ in range(2):
        with pytest.raises(TooManyRequestsError) as raised:
            client.send(simple_mail())
        assert raised.value.to_dict == {"errors": [{"field": None, "message": "too many requests"}]}
        assert raised.value.headers["X-RateLimit-Remaining"] == "0"
        assert int(raised.value.headers["X-RateLimit-Reset"]) > 0
        assert "Retry-After" not in raised.value.headers

    assert client.send(simple_mail()).status_code == 202
    assert len(sendgrid_stub.accepted) == 1


def test_injected_failures_can_carry_extra_headers(sendgrid_stub: SendGridStub) -> None:
    sendgrid_stub.fail_next(503, headers={"Retry-After": "7"})
    with pytest.raises(ServiceUnavailableError) as raised:
        sendgrid_client(sendgrid_stub).send(simple_mail())
    assert raised.value.headers["Retry-After"] == "7"


@pytest.mark.parametrize(("status", "error"), [(500, InternalServerError), (503, ServiceUnavailableError)])
def test_sendgrid_server_errors(sendgrid_stub: SendGridStub, status: int, error: type[Exception]) -> None:
    sendgrid_stub.fail_next(status)
    with pytest.raises(error):
        sendgrid_client(sendgrid_stub).send(simple_mail())
    assert sendgrid_stub.accepted == []


def test_sendgrid_connection_dropped_before_the_body(sendgrid_stub: SendGridStub) -> None:
    sendgrid_stub.drop_next()
    with pytest.raises(OSError):  # URLError or http.client.RemoteDisconnected, depending on timing
        sendgrid_client(sendgrid_stub).send(simple_mail())
    assert sendgrid_stub.accepted == []
    [exchange] = sendgrid_stub.exchanges
    assert exchange.response is None
    assert not exchange.processed


def test_sendgrid_connection_dropped_after_the_mail_was_accepted(sendgrid_stub: SendGridStub) -> None:
    sendgrid_stub.drop_next(after_processing=True)
    with pytest.raises(OSError):
        sendgrid_client(sendgrid_stub).send(simple_mail())
    # The client saw a failure, yet SendGrid has the message: a blind retry would send it twice.
    assert sendgrid_stub.sent_to("friend@example.org")


def test_sendgrid_timeout_leaves_an_accepted_mail(sendgrid_stub: SendGridStub) -> None:
    sendgrid_stub.latency = 2.0
    client = sendgrid_client(sendgrid_stub)
    client.client.timeout = 0.2  # python-http-client passes it to urlopen
    with pytest.raises(TimeoutError):
        client.send(simple_mail())
    assert len(sendgrid_stub.accepted) == 1


def test_sendgrid_over_tls_with_the_stub_ca_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    with SendGridStub.running(tls=True) as stub:
        assert stub.url.startswith("https://")
        with pytest.raises(urllib.error.URLError) as raised:
            sendgrid_client(stub).send(simple_mail())
        assert isinstance(raised.value.reason, ssl.SSLCertVerificationError)

        # urllib's default context reads SSL_CERT_FILE when it is created, i.e. per request.
        assert stub.ca_bundle is not None
        monkeypatch.setenv("SSL_CERT_FILE", stub.ca_bundle)
        assert sendgrid_client(stub).send(simple_mail()).status_code == 202
        assert len(stub.accepted) == 1


def test_sendgrid_sdk_opens_a_connection_per_request(sendgrid_stub: SendGridStub) -> None:
    client = sendgrid_client(sendgrid_stub)
    client.send(simple_mail())
    client.send(simple_mail())

    assert sendgrid_stub.connections_accepted == 2
    # urllib asks for it: every request says "Connection: close".
    assert [exchange.request.headers["Connection"] for exchange in sendgrid_stub.exchanges] == ["close", "close"]


def test_connection_counting_sees_concurrent_connections(sendgrid_stub: SendGridStub) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        with sendgrid_stub.holding():
            futures = [pool.submit(sendgrid_client(sendgrid_stub).send, simple_mail()) for _ in range(3)]
            sendgrid_stub.wait_for(lambda: sendgrid_stub.connections_open == 3, what="3 open connections")
        assert [future.result(timeout=5).status_code for future in futures] == [202, 202, 202]
    assert sendgrid_stub.max_concurrent_connections == 3
    assert sendgrid_stub.connections_accepted == 3


# -- Twilio ---------------------------------------------------------------------------------


def test_twilio_create_message(twilio_stub: TwilioStub) -> None:
    message = twilio_client(twilio_stub).messages.create(to=RECIPIENT, from_=SENDER, body="Hello friend")

    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert message.status == "queued"
    assert message.num_segments == "1"  # Twilio sends counts as strings
    assert message.to == RECIPIENT
    assert message.from_ == SENDER
    assert message.body == "Hello friend"
    assert message.account_sid == twilio_stub.account_sid
    assert message.uri == f"/2010-04-01/Accounts/{twilio_stub.account_sid}/Messages/{message.sid}.json"
    assert isinstance(message.date_created, datetime.datetime)
    assert message.date_created.tzinfo == datetime.UTC
    [sent] = twilio_stub.messages
    assert sent.sid == message.sid
    assert sent.request.form() == {"To": RECIPIENT, "From": SENDER, "Body": "Hello friend"}
    assert sent.request.headers["Authorization"].startswith("Basic ")


def test_twilio_api_key_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    key_sid = "SK" + "2" * 32
    with TwilioStub.running(api_keys={key_sid: "key-secret"}) as stub:
        client = twilio_client(stub, username=key_sid, password="key-secret", account_sid=stub.account_sid)
        assert client.messages.create(to=RECIPIENT, from_=SENDER, body="hi").status == "queued"


def test_twilio_wrong_token_is_unauthorized(twilio_stub: TwilioStub) -> None:
    with pytest.raises(TwilioRestException) as raised:
        twilio_client(twilio_stub, password="wrong").messages.create(to=RECIPIENT, from_=SENDER, body="hi")
    assert (raised.value.status, raised.value.code) == (401, 20003)


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        ({"to": ""}, 21604),
        ({"to": "0612345678"}, 21211),
        ({"to": "+31 6 12345678"}, 21211),
        ({"from_": None}, 21603),
        ({"from_": "+0123"}, 21212),
        ({"body": None}, 21602),
        ({"body": "x" * 1601}, 21617),
        ({"status_callback": "not a url"}, 21609),
    ],
    ids=[
        "to-missing",
        "to-national",
        "to-spaces",
        "from-missing",
        "from-invalid",
        "body-missing",
        "body-long",
        "callback",
    ],
)
def test_twilio_validation_errors(twilio_stub: TwilioStub, arguments: dict[str, Any], code: int) -> None:
    create: dict[str, Any] = {"to": RECIPIENT, "from_": SENDER, "body": "hi", **arguments}
    with pytest.raises(TwilioRestException) as raised:
        twilio_client(twilio_stub).messages.create(**create)
    assert (raised.value.status, raised.value.code) == (400, code)
    assert twilio_stub.messages == []


def test_twilio_unknown_sender_when_senders_are_configured() -> None:
    with TwilioStub.running(senders=[SENDER]) as stub:
        client = twilio_client(stub)
        with pytest.raises(TwilioRestException) as raised:
            client.messages.create(to=RECIPIENT, from_="+15005550001", body="hi")
        assert raised.value.code == 21606
        assert client.messages.create(to=RECIPIENT, from_=SENDER, body="hi").status == "queued"


def test_twilio_opted_out_recipient(twilio_stub: TwilioStub) -> None:
    twilio_stub.opt_out(RECIPIENT)
    client = twilio_client(twilio_stub)
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to=RECIPIENT, from_=SENDER, body="hi")
    assert (raised.value.status, raised.value.code) == (400, 21610)
    assert "unsubscribed recipient" in raised.value.msg

    twilio_stub.opt_in(RECIPIENT)
    assert client.messages.create(to=RECIPIENT, from_=SENDER, body="hi").status == "queued"


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (500, 20500), (503, 20503)])
def test_twilio_injected_failures(twilio_stub: TwilioStub, status: int, code: int) -> None:
    twilio_stub.fail_next(status)
    client = twilio_client(twilio_stub)
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to=RECIPIENT, from_=SENDER, body="hi")
    assert (raised.value.status, raised.value.code) == (status, code)
    assert twilio_stub.messages == []
    assert client.messages.create(to=RECIPIENT, from_=SENDER, body="hi").status == "queued"


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # GSM-7 extension characters take two septets
        ("€" * 81, 2),
        ("ł" * 70, 1),  # outside GSM-7: the whole body goes as UCS-2
        ("ł" * 71, 2),
        ("😀" * 35, 1),  # a surrogate pair is two UCS-2 units
        ("😀" * 36, 2),
    ],
)
def test_twilio_segment_count(twilio_stub: TwilioStub, body: str, segments: int) -> None:
    message = twilio_client(twilio_stub).messages.create(to=RECIPIENT, from_=SENDER, body=body)
    assert message.num_segments == str(segments)


def test_twilio_status_callbacks_are_signed(twilio_stub: TwilioStub, callback_receiver: CallbackReceiver) -> None:
    callback_url = f"{callback_receiver.url}/hooks/sms-status?campaign=spring"
    message = twilio_client(twilio_stub).messages.create(
        to=RECIPIENT, from_=SENDER, body="hi", status_callback=callback_url
    )

    received = callback_receiver.wait_for_requests(2)
    validator = RequestValidator(twilio_stub.auth_token)
    assert [request.form()["MessageStatus"] for request in received] == ["sent", "delivered"]
    for request in received:
        params = request.form()
        assert callback_receiver.url_for(request) == callback_url
        assert validator.validate(callback_url, params, request.headers["X-Twilio-Signature"])
        assert params["MessageSid"] == params["SmsSid"] == message.sid
        assert params["AccountSid"] == twilio_stub.account_sid
        assert (params["To"], params["From"]) == (RECIPIENT, SENDER)
        assert "ErrorCode" not in params
    # The signature covers the parameters: a changed one no longer validates.
    tampered = {**received[1].form(), "MessageStatus": "failed"}
    assert not validator.validate(callback_url, tampered, received[1].headers["X-Twilio-Signature"])
    assert [attempt.status for attempt in twilio_stub.wait_for_callbacks(2)] == [200, 200]


@pytest.mark.parametrize(
    ("status", "expected"),
    [("undelivered", ["sent", "undelivered"]), ("failed", ["failed"])],
    ids=["undelivered", "failed"],
)
def test_twilio_undeliverable_numbers(
    twilio_stub: TwilioStub, callback_receiver: CallbackReceiver, status: str, expected: list[str]
) -> None:
    twilio_stub.mark_undeliverable(RECIPIENT, status=status, error_code=30003)
    message = twilio_client(twilio_stub).messages.create(
        to=RECIPIENT, from_=SENDER, body="hi", status_callback=f"{callback_receiver.url}/status"
    )

    received = callback_receiver.wait_for_requests(len(expected))
    assert [request.form()["MessageStatus"] for request in received] == expected
    assert received[-1].form()["ErrorCode"] == "30003"
    assert twilio_stub.message(message.sid).status == status


def test_twilio_messaging_service(twilio_stub: TwilioStub, callback_receiver: CallbackReceiver) -> None:
    client = twilio_client(twilio_stub)
    message = client.messages.create(
        to=RECIPIENT, messaging_service_sid=SERVICE_SID, body="hi", status_callback=f"{callback_receiver.url}/s"
    )
    assert (message.status, message.from_, message.num_segments) == ("accepted", None, "0")

    received = callback_receiver.wait_for_requests(3)
    assert [request.form()["MessageStatus"] for request in received] == ["queued", "sent", "delivered"]
    assert received[-1].form()["MessagingServiceSid"] == SERVICE_SID

    fetched = client.messages(message.sid).fetch()
    assert (fetched.status, fetched.from_, fetched.num_segments) == ("delivered", SERVICE_SENDER, "1")


def test_twilio_connection_dropped_before_the_body(twilio_stub: TwilioStub) -> None:
    twilio_stub.drop_next()
    with pytest.raises(requests.exceptions.ConnectionError):
        twilio_client(twilio_stub).messages.create(to=RECIPIENT, from_=SENDER, body="hi")
    assert twilio_stub.messages == []


def test_twilio_connection_dropped_after_the_message_was_created(twilio_stub: TwilioStub) -> None:
    twilio_stub.drop_next(after_processing=True)
    client = twilio_client(twilio_stub)
    with pytest.raises(requests.exceptions.ConnectionError):
        client.messages.create(to=RECIPIENT, from_=SENDER, body="hi")
    assert len(twilio_stub.messages) == 1  # created, though the client saw an error
    # The SDK does not retry; the next call simply opens a new connection.
    client.messages.create(to=RECIPIENT, from_=SENDER, body="hi")
    assert len(twilio_stub.messages) == 2
    assert twilio_stub.connections_accepted == 2


def test_twilio_timeout_leaves_a_created_message(twilio_stub: TwilioStub) -> None:
    twilio_stub.latency = 2.0
    client = twilio_client(twilio_stub, http_client=TwilioHttpClient(timeout=0.2))
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.messages.create(to=RECIPIENT, from_=SENDER, body="hi")
    assert len(twilio_stub.messages) == 1


@pytest.fixture
def twilio_tls_stub() -> Iterator[TwilioStub]:
    with TwilioStub.running(tls=True) as stub:
        yield stub


def test_twilio_over_tls_with_the_stub_ca_trusted(twilio_tls_stub: TwilioStub, monkeypatch: pytest.MonkeyPatch) -> None:
    # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, when set, silently take precedence over session.verify.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    client = twilio_client(twilio_tls_stub)
    with pytest.raises(requests.exceptions.SSLError):
        client.messages.create(to=RECIPIENT, from_=SENDER, body="hi")

    client.http_client.session.verify = twilio_tls_stub.ca_bundle  # type: ignore[attr-defined]
    assert client.messages.create(to=RECIPIENT, from_=SENDER, body="hi").status == "queued"


def test_twilio_tls_requests_ca_bundle_overrides_session_verify(
    twilio_tls_stub: TwilioStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", requests.certs.where())
    client = twilio_client(twilio_tls_stub)
    client.http_client.session.verify = twilio_tls_stub.ca_bundle  # type: ignore[attr-defined]
    with pytest.raises(requests.exceptions.SSLError):
        client.messages.create(to=RECIPIENT, from_=SENDER, body="hi")

    assert twilio_tls_stub.ca_bundle is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", twilio_tls_stub.ca_bundle)
    assert client.messages.create(to=RECIPIENT, from_=SENDER, body="hi").status == "queued"


def test_twilio_sdk_reuses_its_connection(twilio_stub: TwilioStub) -> None:
    client = twilio_client(twilio_stub)
    client.messages.create(to=RECIPIENT, from_=SENDER, body="one")
    client.messages.create(to=RECIPIENT, from_=SENDER, body="two")

    assert twilio_stub.connections_accepted == 1
    assert twilio_stub.connections_open == 1  # kept alive, idle, by the client's session


def test_stopping_a_stub_closes_idle_keep_alive_connections() -> None:
    with TwilioStub.running() as stub:
        twilio_client(stub).messages.create(to=RECIPIENT, from_=SENDER, body="hi")
        assert stub.connections_open == 1
    assert stub.connections_open == 0


def test_reset_forgets_records_switches_and_counts(twilio_stub: TwilioStub) -> None:
    client = twilio_client(twilio_stub)
    client.messages.create(to=RECIPIENT, from_=SENDER, body="hi")
    twilio_stub.opt_out(RECIPIENT)
    twilio_stub.fail_next(500, count=3)
    twilio_stub.latency = 1.0

    twilio_stub.reset()

    assert (twilio_stub.messages, twilio_stub.exchanges, twilio_stub.connections_accepted) == ([], [], 0)
    assert client.messages.create(to=RECIPIENT, from_=SENDER, body="hi").status == "queued"
