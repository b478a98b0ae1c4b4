"""The console's campaign form takes WhatsApp's Content Template: checked, stored by channel,
shown again when the campaign is edited."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from engine.models import Campaign
from engine.runtime import Runtime
from tests.helpers import staff_client, visible_text
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
