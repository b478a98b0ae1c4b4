"""The friend's message in the sender's language, end to end: forwards of a Dutch, French and
English campaign delivered by the worker through the real SDKs and transports, against the
SendGrid and Twilio stubs and a real SMTP server; what each provider received is what a friend
reads (the words, `Content-Language`, `<html lang>`)."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import select, update

from engine import create_app
from engine.clock import FixedClock
from engine.contacts import Contact
from engine.models import Forward, Message
from engine.runtime import Runtime
from engine.services.consents import ConsentImporter
from engine.services.forwarding import ForwardSubmission
from engine.sms import measure
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from engine.transports.sendgrid import SendGridTransport
from engine.transports.smtp import SmtpSettings, SmtpTransport
from engine.transports.twilio import TwilioTransport
from tests.helpers import make_campaign, runtime_of
from tests.integration.test_smtp import Mailbox
from tests.stubs.sendgrid import SendGridStub
from tests.stubs.twilio import TwilioStub

BOB, CLARA = "bob@example.com", "clara@example.com"
BOB_PHONE = "+31612345678"
WHATSAPP_NL = "HX" + "11" * 16
WHATSAPP_EN = "HX" + "22" * 16


def deliver(runtime: Runtime, *friends: Contact, locale: str | None, slug: str = "spring") -> list[int]:
    """A forward from Anna to `friends`, written as the form writes it in `locale` (the sender's
    language, kept with the forward), then the worker's run. The messages' ids."""
    receipt = runtime.forwarding.submit(
        slug, ForwardSubmission(sender_name="Anna", friends=list(friends), previewed=True)
    )
    with runtime.db.transaction() as session:
        session.execute(update(Forward).where(Forward.id.in_(receipt.forward_ids)).values(locale=locale))
    runtime.delivery.deliver(receipt.message_ids)
    return list(receipt.message_ids)


def statuses(runtime: Runtime, ids: list[int]) -> list[str]:
    with runtime.db.reading() as session:
        return list(session.scalars(select(Message.status).where(Message.id.in_(ids))))


# -- SendGrid -------------------------------------------------------------------------------------


@pytest.fixture
def sendgrid_site(
    database_url: str, settings_for, clock: FixedClock, sendgrid_stub: SendGridStub, twilio_stub: TwilioStub
) -> Iterator[tuple[Flask, Runtime]]:  # type: ignore[no-untyped-def]
    twilio_stub.add_content_template(WHATSAPP_NL, "{{1}} stuurt je een aanbod: {{2}}")
    twilio_stub.add_content_template(WHATSAPP_EN, "{{1}} sent you an offer: {{2}}")
    phone = TwilioTransport(
        twilio_stub.account_sid,
        twilio_stub.auth_token,
        from_number="+15005550006",
        whatsapp_from="+15005550007",
        api_base=twilio_stub.url,
    )
    email = SendGridTransport(sendgrid_stub.api_key, sendgrid_stub.url)
    settings = settings_for(database_url, whatsapp_transport="twilio")
    app = create_app(settings, transports=Transports(email=email, sms=phone, whatsapp=phone), clock=clock)
    runtime = runtime_of(app)
    make_campaign(runtime.db, locales=["nl", "en", "fr"], caps={"messages_per_recipient_per_30_days": None})
    make_campaign(
        runtime.db,
        "summer",
        channels=["email", "sms", "whatsapp"],
        policy_name="us",  # WhatsApp to friends whose own consent is on record
        policy_settings={},
        locales=["nl", "en", "fr"],
        channel_settings={
            "whatsapp": {
                "content_sid": WHATSAPP_NL,
                "body": "{{1}} stuurt je een aanbod: {{2}}",
                "variables": {"1": "sender_name", "2": "link"},
                "languages": {
                    "en": {"content_sid": WHATSAPP_EN, "body": "{{1}} sent you an offer: {{2}}"},
                    "fr": {"content_sid": WHATSAPP_EN, "body": "{{1}} sent you an offer: {{2}}"},
                },
            }
        },
    )
    yield app, runtime
    runtime.db.dispose()


def test_a_dutch_senders_friends_get_dutch_email_with_content_language_through_sendgrid(
    sendgrid_site: tuple[Flask, Runtime], sendgrid_stub: SendGridStub
) -> None:
    _, runtime = sendgrid_site

    ids = deliver(runtime, Contact("email", BOB), Contact("email", CLARA), locale="nl")

    assert statuses(runtime, ids) == ["sent", "sent"]
    deliveries = [d for mail in sendgrid_stub.accepted for d in mail.deliveries()]
    assert sorted(d.email for d in deliveries) == [BOB, CLARA]
    for delivery in deliveries:
        assert delivery.headers["Content-Language"] == "nl"
        assert delivery.subject == "Anna denkt dat je dit leuk vindt: Ten percent off"
        html, text = delivery.content["text/html"], delivery.content["text/plain"]
        assert '<html lang="nl">' in html
        assert "Bekijk het aanbod" in html and "See the offer" not in html
        assert "Anna</strong> stuurt je dit aanbod van Acme:" in html
        assert text.startswith("Hoi,\n\nAnna stuurt je dit aanbod van Acme:")
        assert "We hebben je aan geen enkele lijst toegevoegd." in text


def test_friends_of_senders_in_different_languages_each_get_their_own_in_one_run(
    sendgrid_site: tuple[Flask, Runtime], sendgrid_stub: SendGridStub
) -> None:
    _, runtime = sendgrid_site
    receipts = []
    for friend, locale in ((BOB, "fr"), (CLARA, None)):  # Clara's sender chose nothing: the default, nl
        receipt = runtime.forwarding.submit(
            "spring", ForwardSubmission(sender_name="Anna", friends=[Contact("email", friend)], previewed=True)
        )
        with runtime.db.transaction() as session:
            session.execute(update(Forward).where(Forward.id.in_(receipt.forward_ids)).values(locale=locale))
        receipts.extend(receipt.message_ids)

    runtime.delivery.deliver(receipts)

    by_friend = {d.email: d for mail in sendgrid_stub.accepted for d in mail.deliveries()}
    assert by_friend[BOB].headers["Content-Language"] == "fr"
    assert by_friend[BOB].subject == "Anna pense que ceci va vous plaire : Ten percent off"
    assert (
        "Voir l&#39;offre" in by_friend[BOB].content["text/html"]
        or "Voir l'offre" in by_friend[BOB].content["text/html"]
    )
    assert by_friend[CLARA].headers["Content-Language"] == "nl"
    assert "Bekijk het aanbod" in by_friend[CLARA].content["text/html"]


def test_a_language_the_campaign_no_longer_offers_falls_back_to_its_default(
    sendgrid_site: tuple[Flask, Runtime], sendgrid_stub: SendGridStub
) -> None:
    _, runtime = sendgrid_site

    deliver(runtime, Contact("email", BOB), locale="de")

    [delivery] = [d for mail in sendgrid_stub.accepted for d in mail.deliveries()]
    assert delivery.headers["Content-Language"] == "nl"


def test_a_dutch_text_through_twilio_says_stop_the_dutch_way_within_gsm7(
    sendgrid_site: tuple[Flask, Runtime], twilio_stub: TwilioStub
) -> None:
    _, runtime = sendgrid_site

    ids = deliver(runtime, Contact("sms", BOB_PHONE), locale="nl")

    assert statuses(runtime, ids) == ["sent"]
    [sms] = twilio_stub.messages
    assert sms.to == BOB_PHONE
    assert sms.body.startswith("Anna stuurt je een aanbieding van Acme: Ten percent off")
    assert "Stuur STOP om je af te melden, of: http" in sms.body
    assert measure(sms.body).encoding == "GSM-7"


def test_a_whatsapp_message_goes_with_the_template_of_the_senders_language(
    sendgrid_site: tuple[Flask, Runtime], twilio_stub: TwilioStub
) -> None:
    _, runtime = sendgrid_site
    runtime_consent(runtime, BOB_PHONE)

    english = deliver(runtime, Contact("whatsapp", BOB_PHONE), locale="en", slug="summer")
    assert statuses(runtime, english) == ["sent"]

    [message] = twilio_stub.messages
    assert message.content_sid == WHATSAPP_EN
    assert message.body.startswith("Anna sent you an offer: http")


def runtime_consent(runtime: Runtime, number: str) -> None:
    """Bob's own WhatsApp consent, which the us policy asks for."""
    importer = ConsentImporter(runtime.db, runtime.hasher, "NL", clock=runtime.clock)
    report = importer.import_csv(io.BytesIO(f"contact,evidence\n{number},signup\n".encode()), "whatsapp", None, "x")
    assert report.imported == 1, report.problems


# -- SMTP -----------------------------------------------------------------------------------------


@pytest.fixture
def smtp_site(database_url: str, settings_for, clock: FixedClock) -> Iterator[tuple[Runtime, Mailbox]]:  # type: ignore[no-untyped-def]
    handler = Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    email = SmtpTransport(SmtpSettings.from_url(f"smtp://127.0.0.1:{port}?starttls=off", timeout=5))
    app = create_app(settings_for(database_url), transports=Transports(email=email, sms=MemoryTransport()), clock=clock)
    runtime = runtime_of(app)
    make_campaign(runtime.db, locales=["fr", "nl"], address_form="formal")
    yield runtime, handler
    runtime.db.dispose()
    controller.stop()


def test_a_french_email_over_smtp_carries_content_language_fr(smtp_site: tuple[Runtime, Mailbox]) -> None:
    runtime, mailbox = smtp_site

    deliver(runtime, Contact("email", BOB), locale="fr")

    [(_, received)] = mailbox.messages
    assert received["Content-Language"] == "fr"
    text = next(part for part in received.walk() if part.get_content_type() == "text/plain")
    body = text.get_payload(decode=True).decode("utf-8").replace("\r\n", "\n")
    assert body.startswith("Bonjour,\n\nAnna vous envoie cette offre de Acme :")


def test_a_formal_dutch_campaign_addresses_the_friend_with_u(smtp_site: tuple[Runtime, Mailbox]) -> None:
    runtime, mailbox = smtp_site

    deliver(runtime, Contact("email", BOB), locale="nl")

    [(_, received)] = mailbox.messages
    assert received["Content-Language"] == "nl"
    text = next(part for part in received.walk() if part.get_content_type() == "text/plain")
    body = text.get_payload(decode=True).decode("utf-8").replace("\r\n", "\n")
    assert "Anna stuurt u dit aanbod van Acme:" in body
    assert "Wij hebben u aan geen enkele lijst toegevoegd." in body
