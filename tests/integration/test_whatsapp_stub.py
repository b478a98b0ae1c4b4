"""The Twilio stub speaks WhatsApp, as the official, unmodified SDK sends it: `whatsapp:`
addresses, Content Templates (ContentSid + ContentVariables), and WhatsApp's 24-hour window."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from tests.stubs.receiver import CallbackReceiver
from tests.stubs.twilio import TwilioStub

SENDER = "whatsapp:+15005550006"
RECIPIENT = "whatsapp:+31612345678"
TEMPLATE = "HX" + "ab" * 16
TEMPLATE_BODY = "{{1}} thinks you will like this: {{2}}"


@pytest.fixture(autouse=True)
def _local_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    monkeypatch.delenv("TWILIO_REGION", raising=False)


def client_for(stub: TwilioStub) -> Client:
    client = Client(stub.account_sid, stub.auth_token)
    client.api.base_url = stub.url
    return client


def test_a_content_template_is_sent_with_its_variables_filled_in(
    twilio_stub: TwilioStub, callback_receiver: CallbackReceiver
) -> None:
    twilio_stub.add_content_template(TEMPLATE, TEMPLATE_BODY)
    message = client_for(twilio_stub).messages.create(
        to=RECIPIENT,
        from_=SENDER,
        content_sid=TEMPLATE,
        content_variables=json.dumps({"1": "Anna", "2": "https://example.org/o/x"}),
        status_callback=f"{callback_receiver.url}/status",
    )

    assert message.body == "Anna thinks you will like this: https://example.org/o/x"
    [sent] = twilio_stub.messages
    assert (sent.to, sent.from_, sent.content_sid) == (RECIPIENT, SENDER, TEMPLATE)
    assert sent.content_variables == {"1": "Anna", "2": "https://example.org/o/x"}
    received = callback_receiver.wait_for_requests(2)
    assert [request.form()["MessageStatus"] for request in received] == ["sent", "delivered"]
    assert {(request.form()["To"], request.form()["From"]) for request in received} == {(RECIPIENT, SENDER)}


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        ({"content_sid": "HX123"}, 21655),
        ({"content_sid": TEMPLATE, "content_variables": "not json"}, 21656),
        ({"content_sid": TEMPLATE, "content_variables": json.dumps({"1": 5})}, 21656),
        ({"content_sid": TEMPLATE, "content_variables": json.dumps(["Anna"])}, 21656),
        ({"content_sid": TEMPLATE, "content_variables": json.dumps({"1": "Anna"})}, 21656),  # {{2}} unfilled
        ({"body": "hi", "content_variables": json.dumps({"1": "Anna"})}, 21654),
        ({"body": "hi", "from_": "+15005550006"}, 21910),  # a WhatsApp recipient, an SMS sender
    ],
    ids=["sid-shape", "not-json", "not-strings", "not-an-object", "placeholder-missing", "no-sid", "mixed"],
)
def test_whatsapp_validation_errors(twilio_stub: TwilioStub, arguments: dict[str, Any], code: int) -> None:
    twilio_stub.add_content_template(TEMPLATE, TEMPLATE_BODY)
    with pytest.raises(TwilioRestException) as raised:
        client_for(twilio_stub).messages.create(**{"to": RECIPIENT, "from_": SENDER, **arguments})
    assert (raised.value.status, raised.value.code) == (400, code)
    assert twilio_stub.messages == []


def test_a_free_form_message_outside_the_window_fails_with_63016(
    twilio_stub: TwilioStub, callback_receiver: CallbackReceiver
) -> None:
    message = client_for(twilio_stub).messages.create(
        to=RECIPIENT, from_=SENDER, body="Hello", status_callback=f"{callback_receiver.url}/status"
    )

    [callback] = callback_receiver.wait_for_requests(1)
    assert (callback.form()["MessageStatus"], callback.form()["ErrorCode"]) == ("failed", "63016")
    assert twilio_stub.message(message.sid).status == "failed"


def test_a_free_form_reply_inside_the_window_is_delivered(
    twilio_stub: TwilioStub, callback_receiver: CallbackReceiver
) -> None:
    twilio_stub.received_from(RECIPIENT)
    client_for(twilio_stub).messages.create(
        to=RECIPIENT, from_=SENDER, body="Hello", status_callback=f"{callback_receiver.url}/status"
    )

    received = callback_receiver.wait_for_requests(2)
    assert [request.form()["MessageStatus"] for request in received] == ["sent", "delivered"]


def test_a_messaging_service_sends_whatsapp_from_its_whatsapp_sender(
    twilio_stub: TwilioStub, callback_receiver: CallbackReceiver
) -> None:
    client_for(twilio_stub).messages.create(
        to=RECIPIENT,
        messaging_service_sid="MG" + "1" * 32,
        content_sid=TEMPLATE,
        status_callback=f"{callback_receiver.url}/status",
    )

    received = callback_receiver.wait_for_requests(3)
    assert [request.form()["MessageStatus"] for request in received] == ["queued", "sent", "delivered"]
    assert received[-1].form()["From"] == "whatsapp:+15005550006"
