"""The Twilio transport sends WhatsApp through the official SDK's Messages API, against the
stub: `whatsapp:` addresses, the Content Template and its variables, errors classed as for texts."""

from __future__ import annotations

import json

import pytest

from engine.transports import AccountError, OutgoingSms, OutgoingWhatsApp, PermanentError
from engine.transports.twilio import TwilioTransport
from tests.stubs.twilio import TwilioStub

TEMPLATE = "HX" + "0123456789abcdef" * 2
MESSAGE = OutgoingWhatsApp(
    to="+31612345678",
    content_sid=TEMPLATE,
    variables={"1": "Anna", "2": "https://fluister.test/o/abc"},
    text="Anna thinks you will like this: https://fluister.test/o/abc",
    reference="ref1",
)


def twilio(stub: TwilioStub, **options: object) -> TwilioTransport:
    values: dict[str, object] = {
        "from_number": "+15005550006",
        "whatsapp_from": "+15005550007",
        "api_base": stub.url,
        "status_callback": "https://fluister.test/hooks/twilio/status",
    }
    values.update(options)
    return TwilioTransport(stub.account_sid, stub.auth_token, **values)  # type: ignore[arg-type]


def test_whatsapp_goes_as_the_content_template_from_the_whatsapp_sender(twilio_stub: TwilioStub) -> None:
    twilio_stub.add_content_template(TEMPLATE, "{{1}} thinks you will like this: {{2}}")

    sid = twilio(twilio_stub).send_whatsapp(MESSAGE)

    [sent] = twilio_stub.messages
    assert sent.sid == sid
    assert (sent.to, sent.from_) == ("whatsapp:+31612345678", "whatsapp:+15005550007")
    assert (sent.content_sid, sent.content_variables) == (TEMPLATE, {"1": "Anna", "2": "https://fluister.test/o/abc"})
    assert sent.body == MESSAGE.text  # what Twilio rendered from the template
    assert json.loads(sent.request.form()["ContentVariables"]) == dict(MESSAGE.variables)
    assert "Body" not in sent.request.form()
    assert sent.status_callback == "https://fluister.test/hooks/twilio/status?m=ref1"


def test_texts_still_go_from_the_text_sender(twilio_stub: TwilioStub) -> None:
    twilio(twilio_stub).send_sms(OutgoingSms(to="+31612345678", text="Hi"))
    assert (twilio_stub.messages[0].to, twilio_stub.messages[0].from_) == ("+31612345678", "+15005550006")


def test_without_a_whatsapp_sender_the_messaging_service_sends(twilio_stub: TwilioStub) -> None:
    transport = twilio(twilio_stub, from_number=None, whatsapp_from=None, messaging_service_sid="MG" + "1" * 32)
    transport.send_whatsapp(MESSAGE)
    [sent] = twilio_stub.messages
    assert (sent.to, sent.messaging_service_sid) == ("whatsapp:+31612345678", "MG" + "1" * 32)


def test_a_transport_with_no_whatsapp_sender_refuses_as_an_account_problem(twilio_stub: TwilioStub) -> None:
    with pytest.raises(AccountError, match="WhatsApp sender"):
        twilio(twilio_stub, whatsapp_from=None).send_whatsapp(MESSAGE)
    assert twilio_stub.messages == []


def test_a_refused_template_is_permanent(twilio_stub: TwilioStub) -> None:
    twilio_stub.add_content_template(TEMPLATE, "{{1}} {{2}} {{3}}")
    with pytest.raises(PermanentError) as raised:
        twilio(twilio_stub).send_whatsapp(MESSAGE)
    assert (raised.value.code, raised.value.opted_out) == ("21656", False)


def test_an_opted_out_whatsapp_number_is_permanent_and_flagged(twilio_stub: TwilioStub) -> None:
    twilio_stub.opt_out("whatsapp:+31612345678")
    with pytest.raises(PermanentError) as raised:
        twilio(twilio_stub).send_whatsapp(MESSAGE)
    assert (raised.value.code, raised.value.opted_out) == ("21610", True)
