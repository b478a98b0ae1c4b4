"""The console's campaign form takes WhatsApp's Content Template: checked, stored by channel,
shown again when the campaign is edited."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from engine import create_app
from engine.models import Campaign
from engine.runtime import Runtime
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import make_campaign, runtime_of, staff_client, visible_text
from tests.integration.test_campaigns_console import edit_form, new_campaign_form

SID = "HX" + "0123456789abcdef" * 2
BODY = "{{1}} thinks you will like {{2}}: {{3}}"


def stored_settings(runtime: Runtime, slug: str = "spring") -> dict[str, object]:
    with runtime.db.reading() as session:
        return dict(session.scalars(select(Campaign.channel_settings).where(Campaign.slug == slug)).one())


def test_a_template_with_its_variables_is_stored_and_shown_again(app: Flask, runtime: Runtime) -> None:
    client = staff_client(app, "marketer")
    form = new_campaign_form(
        client,
        whatsapp_content_sid=SID,
        whatsapp_body=BODY,
        whatsapp_variables="1 = sender_name\n{{2}}: offer_title\n3=link",
    )

    created = client.post("/console/campaigns/new", data=form)
    assert created.status_code == 303, visible_text(created.text)

    assert stored_settings(runtime) == {
        "whatsapp": {
            "content_sid": SID,
            "body": BODY,
            "variables": {"1": "sender_name", "2": "offer_title", "3": "link"},
        }
    }
    shown = edit_form(client)
    assert (shown["whatsapp_content_sid"], shown["whatsapp_body"]) == (SID, BODY)
    assert shown["whatsapp_variables"].splitlines() == ["1 = sender_name", "2 = offer_title", "3 = link"]


def test_a_template_with_an_unmapped_placeholder_is_refused_on_its_field(app: Flask, runtime: Runtime) -> None:
    client = staff_client(app, "marketer")
    form = new_campaign_form(
        client, whatsapp_content_sid=SID, whatsapp_body=BODY, whatsapp_variables="1 = sender_name\n2 = password"
    )

    refused = client.post("/console/campaigns/new", data=form)

    assert refused.status_code == 422
    assert "Unknown values password" in visible_text(refused.text)
    assert 'name="whatsapp_content_sid"' in refused.text and 'aria-invalid="true"' in refused.text
    with runtime.db.reading() as session:
        assert session.scalars(select(Campaign)).all() == []


def test_a_malformed_sid_is_refused(app: Flask) -> None:
    client = staff_client(app, "marketer")
    form = new_campaign_form(client, whatsapp_content_sid="HX12", whatsapp_body="Hi {{1}}", whatsapp_variables="1=link")
    refused = client.post("/console/campaigns/new", data=form)
    assert refused.status_code == 422
    assert "HX followed by 32 hexadecimal digits" in visible_text(refused.text)


def test_without_a_whatsapp_transport_no_campaign_may_enable_it(app: Flask, runtime: Runtime) -> None:
    client = staff_client(app, "marketer")
    assert 'value="whatsapp"' not in client.get("/console/campaigns/new").text
    form = new_campaign_form(
        client,
        channels=["email", "whatsapp"],
        whatsapp_content_sid=SID,
        whatsapp_body="Hi {{1}}",
        whatsapp_variables="1 = link",
    )

    assert client.post("/console/campaigns/new", data=form).status_code == 422
    with runtime.db.reading() as session:
        assert session.scalars(select(Campaign)).all() == []


def test_with_a_whatsapp_transport_a_campaign_enables_it_with_its_template(
    database_url: str, settings_for, transport: MemoryTransport
) -> None:  # type: ignore[no-untyped-def]
    transports = Transports(email=transport, sms=transport, whatsapp=transport)
    app = create_app(settings_for(database_url, whatsapp_transport="outbox"), transports=transports)
    runtime = runtime_of(app)
    client = staff_client(app, "marketer")
    assert 'value="whatsapp"' in client.get("/console/campaigns/new").text

    without_template = client.post("/console/campaigns/new", data=new_campaign_form(client, channels=["whatsapp"]))
    assert without_template.status_code == 422
    assert "WhatsApp needs the campaign's Content Template" in visible_text(without_template.text)

    form = new_campaign_form(
        client, channels=["whatsapp"], whatsapp_content_sid=SID, whatsapp_body="Hi {{1}}", whatsapp_variables="1=link"
    )
    assert client.post("/console/campaigns/new", data=form).status_code == 303
    with runtime.db.reading() as session:
        assert session.scalars(select(Campaign.channels)).one() == ["whatsapp"]
    runtime.db.dispose()


def test_a_campaign_whose_whatsapp_template_is_missing_is_not_activated(runtime: Runtime) -> None:
    from engine.services.campaigns import activation_problems

    make_campaign(runtime.db, status="draft", channels=["email", "whatsapp"], policy_name="us", policy_settings={})

    problems = activation_problems(runtime.db, runtime.renderer, "spring", runtime.clock.now())

    assert any("WhatsApp needs the campaign's Content Template" in p for p in problems)
