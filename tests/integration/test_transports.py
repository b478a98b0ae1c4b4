"""The SendGrid and Twilio transports, through the official SDKs, against local stubs of the
providers' HTTP APIs: what reaches the provider, how each failure is classed, and that
connections are reused."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from engine.logs import configure_logging
from engine.transports import AccountError, AmbiguousError, OutgoingEmail, OutgoingSms, PermanentError, TransientError
from engine.transports.sendgrid import SendGridTransport
from engine.transports.twilio import TwilioTransport
from tests.stubs.receiver import CallbackReceiver
from tests.stubs.sendgrid import SendGridStub
from tests.stubs.twilio import TwilioStub

EMAIL = OutgoingEmail(
    to="bob@example.com",
    from_name="Koffie & Co",
    from_email="offers@koffie.example",
    subject="Anna thinks you'll like this",
    html="<p>Hi from Anna</p>",
    text="Hi from Anna\n",
    headers={
        "Message-ID": "<abc123@koffie.example>",
        "List-Unsubscribe": "<https://fluister.test/u/tok>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    },
    reference="abc123",
)


def sendgrid(stub: SendGridStub, **options: object) -> SendGridTransport:
    return SendGridTransport(stub.api_key, stub.url, ca_certs=stub.ca_bundle, **options)  # type: ignore[arg-type]


def twilio(stub: TwilioStub, **options: object) -> TwilioTransport:
    values: dict[str, object] = {"from_number": "+15005550006", "api_base": stub.url, "ca_bundle": stub.ca_bundle}
    values.update(options)
    return TwilioTransport(stub.account_sid, stub.auth_token, **values)  # type: ignore[arg-type]


@pytest.fixture
def sendgrid_tls() -> Iterator[SendGridStub]:
    with SendGridStub.running(tls=True) as stub:
        yield stub


@pytest.fixture
def twilio_tls() -> Iterator[TwilioStub]:
    with TwilioStub.running(tls=True) as stub:
        yield stub


# -- SendGrid ----------------------------------------------------------------------------


@pytest.mark.parametrize("stub_name", ["sendgrid_stub", "sendgrid_tls"])
def test_sendgrid_sends_multipart_with_headers_and_reference_over_one_connection(request, stub_name: str) -> None:  # type: ignore[no-untyped-def]
    stub: SendGridStub = request.getfixturevalue(stub_name)
    transport = sendgrid(stub)
    ids = [transport.send_email(EMAIL) for _ in range(3)]

    accepted = stub.accepted
    assert ids == [mail.message_id for mail in accepted]
    (delivery,) = accepted[0].deliveries()
    assert delivery.email == "bob@example.com"
    assert delivery.custom_args == {"fluister_message": "abc123"}  # our id, no personal data
    assert delivery.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    payload = accepted[0].payload
    assert payload["from"] == {"email": "offers@koffie.example", "name": "Koffie & Co"}
    assert [c["type"] for c in payload["content"]] == ["text/plain", "text/html"]
    # The SDK alone would have opened three connections.
    assert stub.connections_accepted == 1


def test_sendgrid_gets_the_unsubscribe_headers_exactly_as_written(sendgrid_stub: SendGridStub) -> None:
    # SendGrid writes the MIME itself: the JSON must carry the realistic (120+ character) link whole.
    link = "https://offers.koffie-and-co.example/u/" + "eyJtIjoiMDFKQ1g3WlRWNjhLUTNNNEVYQjJQWTlSNUgiLCJwIjoidSJ9" * 2
    headers = {
        "Message-ID": "<01JCX7ZTV68KQ3M4EXB2PY9R5H@mail.koffie-and-co.example>",
        "List-Unsubscribe": f"<{link}>, <mailto:unsubscribe@koffie-and-co.example?subject=unsubscribe%2001JCX7ZT>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    sendgrid(sendgrid_stub).send_email(replace(EMAIL, headers=headers))
    (delivery,) = sendgrid_stub.accepted[0].deliveries()
    assert delivery.headers == headers


def test_sendgrid_rate_limit_is_transient_with_the_wait_it_asks_for(sendgrid_stub: SendGridStub) -> None:
    sendgrid_stub.fail_next(429, headers={"X-RateLimit-Reset": str(int(time.time()) + 30)})
    with pytest.raises(TransientError) as raised:
        sendgrid(sendgrid_stub).send_email(EMAIL)
    assert raised.value.code == "429"
    assert raised.value.retry_after == pytest.approx(30, abs=2)


@pytest.mark.parametrize("status", [500, 503])
def test_sendgrid_server_errors_are_transient(sendgrid_stub: SendGridStub, status: int) -> None:
    sendgrid_stub.fail_next(status)
    transport = sendgrid(sendgrid_stub)
    with pytest.raises(TransientError):
        transport.send_email(EMAIL)
    transport.send_email(EMAIL)  # and the next try goes through
    assert len(sendgrid_stub.accepted) == 1


def test_sendgrid_bad_key_is_an_account_problem_and_bad_payload_permanent(sendgrid_stub: SendGridStub) -> None:
    with pytest.raises(AccountError) as refused:
        SendGridTransport("SG.wrong", sendgrid_stub.url).send_email(EMAIL)
    assert refused.value.code == "401"
    with pytest.raises(PermanentError) as raised:
        sendgrid(sendgrid_stub).send_email(replace(EMAIL, to="bob@example"))
    assert raised.value.code == "400"
    with pytest.raises(PermanentError, match="cannot build"):
        sendgrid(sendgrid_stub).send_email(replace(EMAIL, to="not-an-address"))
    assert sendgrid_stub.accepted == []


@pytest.mark.parametrize("after_processing", [False, True], ids=["before-body", "after-processing"])
def test_sendgrid_dropped_connection_is_ambiguous(sendgrid_stub: SendGridStub, after_processing: bool) -> None:
    # From the client's side the two cannot be told apart: both may have been accepted.
    sendgrid_stub.drop_next(after_processing=after_processing)
    with pytest.raises(AmbiguousError):
        sendgrid(sendgrid_stub).send_email(EMAIL)


def test_sendgrid_slow_answer_is_ambiguous(sendgrid_stub: SendGridStub) -> None:
    sendgrid_stub.latency = 1.5
    with pytest.raises(AmbiguousError, match="in time"):
        sendgrid(sendgrid_stub, timeout=0.5).send_email(EMAIL)


def test_sendgrid_unreachable_is_transient() -> None:
    with pytest.raises(TransientError, match="unreachable"):
        SendGridTransport("SG.x", "http://127.0.0.1:1").send_email(EMAIL)


# -- Twilio ------------------------------------------------------------------------------


@pytest.mark.parametrize("stub_name", ["twilio_stub", "twilio_tls"])
def test_twilio_sends_with_status_callback_over_one_connection(request, stub_name: str) -> None:  # type: ignore[no-untyped-def]
    stub: TwilioStub = request.getfixturevalue(stub_name)
    transport = twilio(stub, status_callback="https://fluister.test/hooks/twilio/status")
    sids = [transport.send_sms(OutgoingSms(to="+31612345678", text=f"Hi {i}", reference="r")) for i in range(3)]
    messages = stub.messages
    assert sids == [m.sid for m in messages]
    assert all(s.startswith("SM") for s in sids)
    assert [(m.to, m.from_, m.body) for m in messages] == [
        ("+31612345678", "+15005550006", f"Hi {i}") for i in range(3)
    ]
    # Our reference rides in the callback URL, which Twilio signs.
    assert messages[0].status_callback == "https://fluister.test/hooks/twilio/status?m=r"
    assert stub.connections_accepted == 1


def test_twilio_messaging_service_is_used_when_configured(twilio_stub: TwilioStub) -> None:
    transport = twilio(twilio_stub, from_number=None, messaging_service_sid="MG" + "1" * 32)
    transport.send_sms(OutgoingSms(to="+31612345678", text="Hi"))
    assert twilio_stub.messages[0].messaging_service_sid == "MG" + "1" * 32


def test_twilio_opted_out_number_is_permanent_and_flagged(twilio_stub: TwilioStub) -> None:
    twilio_stub.opt_out("+31612345678")
    with pytest.raises(PermanentError) as raised:
        twilio(twilio_stub).send_sms(OutgoingSms(to="+31612345678", text="Hi"))
    assert (raised.value.code, raised.value.opted_out) == ("21610", True)


def test_twilio_invalid_number_is_permanent(twilio_stub: TwilioStub) -> None:
    with pytest.raises(PermanentError) as raised:
        twilio(twilio_stub).send_sms(OutgoingSms(to="0612345678", text="Hi"))
    assert (raised.value.code, raised.value.opted_out) == ("21211", False)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_twilio_rate_limits_and_server_errors_are_transient(twilio_stub: TwilioStub, status: int) -> None:
    twilio_stub.fail_next(status)
    with pytest.raises(TransientError):
        twilio(twilio_stub).send_sms(OutgoingSms(to="+31612345678", text="Hi"))
    assert twilio_stub.messages == []


def test_twilio_dropped_connection_is_ambiguous_and_unreachable_is_transient(twilio_stub: TwilioStub) -> None:
    twilio_stub.drop_next(after_processing=True)
    with pytest.raises(AmbiguousError):
        twilio(twilio_stub).send_sms(OutgoingSms(to="+31612345678", text="Hi"))
    with pytest.raises(TransientError, match="unreachable"):
        TwilioTransport("AC" + "0" * 32, "t", from_number="+15005550006", api_base="http://127.0.0.1:1").send_sms(
            OutgoingSms(to="+31612345678", text="Hi")
        )


PROXY_VARIABLES = tuple(
    spelling for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY") for spelling in (name, name.lower())
)


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy and no CA bundle from whoever runs the tests: each test sets its own."""
    for name in (*PROXY_VARIABLES, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_twilio_trusts_the_ca_bundle_the_environment_names(twilio_tls: TwilioStub, bare_environment) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AccountError, match="not trusted"):
        twilio(twilio_tls, ca_bundle=None).send_sms(OutgoingSms(to="+31612345678", text="Hi"))
    bare_environment.setenv("REQUESTS_CA_BUNDLE", twilio_tls.ca_bundle)
    transport = twilio(twilio_tls, ca_bundle=None)
    bare_environment.delenv("REQUESTS_CA_BUNDLE")  # read when the transport was made
    transport.send_sms(OutgoingSms(to="+31612345678", text="Hi"))
    assert [m.body for m in twilio_tls.messages] == ["Hi"]


def test_twilio_goes_through_the_proxy_the_environment_names(twilio_stub: TwilioStub, bare_environment) -> None:  # type: ignore[no-untyped-def]
    bare_environment.setenv("HTTP_PROXY", "http://127.0.0.1:1")  # nobody listens there
    with pytest.raises(TransientError):
        twilio(twilio_stub).send_sms(OutgoingSms(to="+31612345678", text="Hi"))
    assert twilio_stub.messages == []
    bare_environment.setenv("NO_PROXY", "127.0.0.1")
    twilio(twilio_stub).send_sms(OutgoingSms(to="+31612345678", text="Hi"))
    assert [m.body for m in twilio_stub.messages] == ["Hi"]


def test_a_worker_log_holds_no_lines_of_twilios_sdk_per_text(twilio_stub: TwilioStub) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        configure_logging("text", stream=stream, force=True)
        transport = twilio(twilio_stub)
        for n in range(3):
            transport.send_sms(OutgoingSms(to="+31612345678", text=f"Hi {n}"))
        logging.getLogger("twilio.http_client").warning("the SDK's own warning")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
    assert len(twilio_stub.messages) == 3
    assert stream.getvalue().splitlines()[0].endswith("WARNING twilio.http_client: the SDK's own warning")
    assert len(stream.getvalue().splitlines()) == 1


def test_twilio_status_callbacks_carry_signatures_our_hook_accepts(
    twilio_stub: TwilioStub, callback_receiver: CallbackReceiver, database_url: str, settings_for
) -> None:  # type: ignore[no-untyped-def]
    """The stub signs callbacks as Twilio does; relaying them to our hook must verify."""
    from engine import create_app
    from engine.models import Message
    from engine.transports import Transports
    from engine.transports.memory import MemoryTransport
    from tests.helpers import make_campaign, runtime_of, submission

    callback = f"{callback_receiver.url}/hooks/twilio/status"
    sms = twilio(twilio_stub, status_callback=callback)
    memory = MemoryTransport()
    settings = settings_for(
        database_url, public_base_url=callback_receiver.url, twilio_auth_token=twilio_stub.auth_token
    )
    app = create_app(settings, transports=Transports(email=memory, sms=sms))
    runtime = runtime_of(app)
    make_campaign(runtime.db)
    receipt = runtime.forwarding.submit("spring", submission("06 12345678"))
    runtime.delivery.deliver(receipt.message_ids)

    client = app.test_client()
    for received in callback_receiver.wait_for_requests(2):  # sent, then delivered
        response = client.post(
            received.target,
            data=received.form(),
            headers={"X-Twilio-Signature": received.headers["X-Twilio-Signature"]},
        )
        assert response.status_code == 204
    with runtime.db.reading() as session:
        assert session.get(Message, receipt.message_ids[0]).status == "delivered"
    runtime.db.dispose()


def test_an_untrusted_certificate_is_an_account_problem_not_a_maybe_sent(
    sendgrid_tls: SendGridStub, twilio_tls: TwilioStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trust only the system's CAs: the stubs' local CA is unknown here, as a wrong CA bundle would be.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AccountError, match="not trusted"):
        SendGridTransport(sendgrid_tls.api_key, sendgrid_tls.url).send_email(EMAIL)
    with pytest.raises(AccountError, match="not trusted"):
        TwilioTransport(
            twilio_tls.account_sid, twilio_tls.auth_token, from_number="+15005550006", api_base=twilio_tls.url
        ).send_sms(OutgoingSms(to="+31612345678", text="Hi"))
    assert sendgrid_tls.accepted == [] and twilio_tls.messages == []


# -- connections that fail: before our request left, or after -------------------------------


@pytest.mark.parametrize("provider", ["sendgrid", "twilio"])
def test_a_connection_reset_before_the_request_left_is_tried_again(request, provider: str) -> None:  # type: ignore[no-untyped-def]
    # Over TLS, a reset during the handshake is before a byte of the request was written.
    stub = request.getfixturevalue(f"{provider}_tls")
    stub.reset_next()
    with pytest.raises(TransientError, match="unreachable"):
        send_one(provider, stub)
    assert [e.processed for e in stub.exchanges] == []
    send_one(provider, stub)  # and the next try goes
    assert [e.processed for e in stub.exchanges] == [True]


@pytest.mark.parametrize("provider", ["sendgrid", "twilio"])
def test_a_connection_reset_after_the_provider_took_the_request_may_have_sent_it(request, provider: str) -> None:  # type: ignore[no-untyped-def]
    stub = request.getfixturevalue(f"{provider}_tls")
    stub.reset_next(after_processing=True)
    with pytest.raises(AmbiguousError):
        send_one(provider, stub)
    assert [e.processed for e in stub.exchanges] == [True]  # it went: never send it again


@pytest.mark.parametrize("provider", ["sendgrid", "twilio"])
def test_a_provider_refusing_connections_is_tried_again(request, provider: str) -> None:  # type: ignore[no-untyped-def]
    stub = request.getfixturevalue(f"{provider}_tls")
    send = sender(provider, stub)
    with stub.refusing(), pytest.raises(TransientError, match="unreachable"):
        send()
    send()
    assert [e.processed for e in stub.exchanges] == [True]


def sender(provider: str, stub: SendGridStub | TwilioStub) -> Callable[[], str]:
    """Send one message through this provider's transport (made now, for the stub's address)."""
    if provider == "sendgrid":
        assert isinstance(stub, SendGridStub)
        transport = sendgrid(stub)
        return lambda: transport.send_email(EMAIL)
    assert isinstance(stub, TwilioStub)
    sms = twilio(stub)
    return lambda: sms.send_sms(OutgoingSms(to="+31612345678", text="Hi"))


def send_one(provider: str, stub: SendGridStub | TwilioStub) -> str:
    return sender(provider, stub)()
