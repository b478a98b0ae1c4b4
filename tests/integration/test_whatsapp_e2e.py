"""WhatsApp end to end, with the real twilio SDK against the Twilio stub: a forward to a phone
number by WhatsApp, dispatched as the campaign's Content Template, its status callback relayed
to our signed hook; keywords on WhatsApp; a friend without WhatsApp consent held quietly."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from engine import create_app
from engine.clock import FixedClock
from engine.contacts import Contact
from engine.models import Message, Suppression
from engine.runtime import Runtime
from engine.services.consents import ConsentImporter
from engine.services.forwarding import ForwardSubmission
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from engine.transports.twilio import TwilioTransport
from tests.helpers import make_campaign, runtime_of
from tests.stubs.receiver import CallbackReceiver
from tests.stubs.twilio import TwilioStub

TEMPLATE = "HX" + "0123456789abcdef" * 2
TEMPLATE_BODY = "{{1}} sent you an offer from {{2}}: {{3}}"
WHATSAPP_SETTINGS = {
    "whatsapp": {
        "content_sid": TEMPLATE,
        "body": TEMPLATE_BODY,
        "variables": {"1": "sender_name", "2": "brand_name", "3": "link"},
    }
}
BOB = "+31612345678"
WHATSAPP_SENDER = "+15005550007"


@dataclass
class WhatsAppWorld:
    app: Flask
    runtime: Runtime
    stub: TwilioStub
    receiver: CallbackReceiver
    texts: MemoryTransport

    def consent(self, number: str = BOB, channel: str = "whatsapp") -> None:
        importer = ConsentImporter(self.runtime.db, self.runtime.hasher, "NL", clock=self.runtime.clock)
        csv = f"contact,evidence\n{number},opted in on the brand's site\n".encode()
        report = importer.import_csv(io.BytesIO(csv), channel, None, "signup form")
        assert report.imported == 1, report.problems

    def forward(self, number: str = BOB, channel: str = "whatsapp", slug: str = "spring") -> Message:
        """A forward to a friend by `channel`, and the worker's run; the friend's message."""
        friend = Contact(channel, number)
        forwarded = ForwardSubmission(sender_name="Anna", friends=[friend], previewed=True)
        receipt = self.runtime.forwarding.submit(slug, forwarded)
        self.runtime.delivery.deliver(receipt.message_ids)
        with self.runtime.db.reading() as session:
            return session.scalars(select(Message).where(Message.forward_id == receipt.forward_ids[0])).one()

    def message(self, message_id: int) -> Message:
        with self.runtime.db.reading() as session:
            return session.get(Message, message_id)  # type: ignore[return-value]

    def relay_callbacks(self, count: int) -> None:
        """Pass the stub's signed status callbacks on to our hook, as Twilio would post them."""
        client = self.app.test_client()
        for received in self.receiver.wait_for_requests(count):
            response = client.post(
                received.target,
                data=received.form(),
                headers={"X-Twilio-Signature": received.headers["X-Twilio-Signature"]},
            )
            assert response.status_code == 204

    def write_us(self, body: str, sid: str, sender: str = f"whatsapp:{BOB}"):  # type: ignore[no-untyped-def]
        params = {"MessageSid": sid, "From": sender, "To": f"whatsapp:{WHATSAPP_SENDER}", "Body": body}
        url = f"{self.receiver.url}/hooks/twilio/inbound"
        signature = RequestValidator(self.stub.auth_token).compute_signature(url, params)
        return self.app.test_client().post(
            "/hooks/twilio/inbound", data=params, headers={"X-Twilio-Signature": signature}
        )

    def suppressions(self) -> list[tuple[str, str]]:
        with self.runtime.db.reading() as session:
            return [(s.channel, s.source) for s in session.scalars(select(Suppression).order_by(Suppression.id))]


@pytest.fixture
def world(
    database_url: str, settings_for, clock: FixedClock, twilio_stub: TwilioStub, callback_receiver: CallbackReceiver
) -> Iterator[WhatsAppWorld]:  # type: ignore[no-untyped-def]
    twilio_stub.add_content_template(TEMPLATE, TEMPLATE_BODY)
    whatsapp = TwilioTransport(
        twilio_stub.account_sid,
        twilio_stub.auth_token,
        whatsapp_from=WHATSAPP_SENDER,
        api_base=twilio_stub.url,
        status_callback=f"{callback_receiver.url}/hooks/twilio/status",
    )
    texts = MemoryTransport()
    settings = settings_for(
        database_url,
        public_base_url=callback_receiver.url,
        twilio_auth_token=twilio_stub.auth_token,
        whatsapp_transport="twilio",
    )
    # The test clock stands in every quiet-hours window: WhatsApp keeps the texts' hours.
    app = create_app(settings, transports=Transports(email=texts, sms=texts, whatsapp=whatsapp), clock=clock)
    runtime = runtime_of(app)
    for slug in ("spring", "summer"):  # a friend is invited once per campaign
        make_campaign(
            runtime.db,
            slug,
            channels=["email", "sms", "whatsapp"],
            policy_name="us",
            policy_settings={},
            channel_settings=WHATSAPP_SETTINGS,
            caps={"messages_per_recipient_per_30_days": None},
        )
    yield WhatsAppWorld(app, runtime, twilio_stub, callback_receiver, texts)
    runtime.db.dispose()


def test_a_whatsapp_forward_goes_as_the_template_and_its_delivery_is_recorded(world: WhatsAppWorld) -> None:
    world.consent()

    sent = world.forward()

    assert sent.status == "sent"
    [message] = world.stub.messages
    assert (message.to, message.from_) == (f"whatsapp:{BOB}", f"whatsapp:{WHATSAPP_SENDER}")
    assert message.content_sid == TEMPLATE
    variables = dict(message.content_variables or {})
    assert (variables["1"], variables["2"]) == ("Anna", "Acme")
    assert variables["3"].startswith(f"{world.receiver.url}/")  # the friend's tracked link
    assert message.body == f"Anna sent you an offer from Acme: {variables['3']}"
    assert world.texts.sms == []  # not as a text as well

    world.relay_callbacks(2)  # sent, delivered

    assert world.message(sent.id).status == "delivered"


def test_without_whatsapp_consent_the_friend_is_held_and_nothing_is_sent(world: WhatsAppWorld) -> None:
    world.consent(channel="sms")  # consent to texts is no consent to WhatsApp

    held = world.forward()

    assert held.status == "suppressed"
    assert world.stub.messages == []


def test_63016_fails_the_message_with_a_clear_error(world: WhatsAppWorld) -> None:
    world.consent()
    # WhatsApp refuses the message as outside its window (a template it no longer approves).
    world.stub.mark_undeliverable(f"whatsapp:{BOB}", status="failed", error_code=63016)

    sent = world.forward()
    world.relay_callbacks(1)

    failed = world.message(sent.id)
    assert (failed.status, failed.error_code) == ("failed", "63016")
    assert "24-hour window" in (failed.error or "")


@pytest.mark.parametrize("word", ["STOP", "STOPPEN"])
def test_stop_on_whatsapp_stops_whatsapp_but_not_texts(world: WhatsAppWorld, word: str) -> None:
    world.consent()
    world.consent(channel="sms")

    assert world.write_us(word, "SM" + "1" * 32).status_code == 200

    assert world.suppressions() == [("whatsapp", "stop")]
    assert world.forward().status == "suppressed"
    assert world.forward(channel="sms", slug="summer").status == "sent"
    assert world.stub.messages == []
    assert [sms.to for sms in world.texts.sms] == [BOB]


def test_start_on_whatsapp_is_consent_to_whatsapp(world: WhatsAppWorld) -> None:
    assert world.write_us("START", "SM" + "2" * 32).status_code == 200

    assert world.forward().status == "sent"
    assert len(world.stub.messages) == 1
