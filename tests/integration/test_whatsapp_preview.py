"""The console's preview of a campaign that enables WhatsApp: the message with its variables
filled in, and a test send that goes only to a listed number, as the template."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from flask import Flask

from engine import create_app
from engine.runtime import Runtime
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import make_campaign, runtime_of, staff_client, visible_text
from tests.integration.test_console_preview import OTHER_NUMBER, PREVIEW, TEST_NUMBER, send

TEMPLATE = "HX" + "0123456789abcdef" * 2
WHATSAPP_SETTINGS = {
    "whatsapp": {
        "content_sid": TEMPLATE,
        "body": "{{1}} thinks you will like this offer from {{2}}: {{3}}",
        "variables": {"1": "sender_name", "2": "brand_name", "3": "link"},
    }
}


@pytest.fixture
def app(database_url: str, settings_for, transport: MemoryTransport) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    settings = settings_for(database_url, test_sms_numbers=(TEST_NUMBER,), whatsapp_transport="outbox")
    application = create_app(settings, transports=Transports(email=transport, sms=transport, whatsapp=transport))
    yield application
    runtime_of(application).db.dispose()


@pytest.fixture
def spring(runtime: Runtime) -> str:
    make_campaign(runtime.db, channels=["email", "sms", "whatsapp"], channel_settings=WHATSAPP_SETTINGS)
    return "spring"


def whatsapp_text(page: str) -> str:
    match = re.search(r'<pre class="preview-text whatsapp-text">(.*?)</pre>', page, re.S)
    assert match, "no WhatsApp message on the page"
    return html.unescape(match.group(1))


def test_the_preview_shows_the_whatsapp_message_with_its_variables_filled_in(app: Flask, spring: str) -> None:
    page = staff_client(app, "marketer").get(PREVIEW + "?sender_name=Bob&note=&coupon_code=").text

    text = whatsapp_text(page)
    assert text.startswith("Bob thinks you will like this offer from Acme: ")
    assert re.search(r'data-variable="1">Bob<', page) and re.search(r'data-variable="2">Acme<', page)
    assert TEMPLATE in page
    assert "sender_name" in visible_text(page)


def test_a_campaign_without_whatsapp_shows_none(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db)
    page = staff_client(app, "marketer").get(PREVIEW).text
    assert "whatsapp-text" not in page and "Test WhatsApp message to" not in page


def test_a_test_whatsapp_message_goes_to_a_listed_number_only(
    app: Flask, transport: MemoryTransport, spring: str
) -> None:
    client = staff_client(app, "marketer")

    sent = send(client, "+31 6 12345678", channel="whatsapp")

    assert sent.status_code == 303
    [message] = transport.whatsapp
    assert (message.to, message.content_sid) == (TEST_NUMBER, TEMPLATE)
    assert (message.variables["1"], message.variables["2"]) == ("Bob", "Acme")
    assert transport.sms == []
    assert "Test WhatsApp message sent" in visible_text(client.get(PREVIEW).text)
    refused = send(client, OTHER_NUMBER, channel="whatsapp")
    assert refused.status_code == 422
    assert "TEST_SMS_NUMBERS" in visible_text(refused.text)
    assert len(transport.whatsapp) == 1
