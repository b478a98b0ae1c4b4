"""A campaign's WhatsApp Content Template: what staff may save, and how a message fills it."""

from __future__ import annotations

import pytest

from engine.channels.whatsapp import ContentTemplate, TemplateSettingsInvalid, template_problem

SID = "HX" + "0123456789abcdef" * 2
BODY = "{{1}} sent you an offer from {{3}}: {{2}}"


def test_a_template_fills_its_variables_from_the_message_values() -> None:
    template = ContentTemplate(SID, BODY, {"1": "sender_name", "2": "link", "3": "brand_name"})
    values = template.values_for({"sender_name": "Anna", "link": "https://x.example/o/1", "brand_name": "Acme"})

    assert values == {"1": "Anna", "2": "https://x.example/o/1", "3": "Acme"}
    assert template.render(values) == "Anna sent you an offer from Acme: https://x.example/o/1"
    assert template.placeholders == ("1", "3", "2")


def test_an_empty_value_is_sent_as_a_dash_since_whatsapp_refuses_empty_variables() -> None:
    template = ContentTemplate(SID, "{{1}} says: {{2}}", {"1": "sender_name", "2": "note"})
    assert template.values_for({"sender_name": "Anna", "note": ""}) == {"1": "Anna", "2": "-"}


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"content_sid": "HX123", "body": BODY, "variables": {}}, "HX followed by 32"),
        ({"content_sid": SID.upper().replace("HX", "HX", 1), "body": BODY}, "HX followed by 32"),
        ({"content_sid": SID, "body": " ", "variables": {}}, "approved body"),
        ({"content_sid": SID, "body": BODY, "variables": {"1": "sender_name", "2": "link"}}, "fills {{3}}"),
        (
            {"content_sid": SID, "body": BODY, "variables": {"1": "password", "2": "link", "3": "brand_name"}},
            "unknown values password",
        ),
        (
            {"content_sid": SID, "body": "{{1}}", "variables": {"1": "link", "2": "note"}},
            "no placeholder 2",
        ),
        ({"content_sid": SID, "body": "{{1}}", "variables": ["link"]}, "map each placeholder"),
        ({"content_sid": SID, "body": "x" * 1601, "variables": {}}, "at most 1600"),
        (None, "needs the campaign's Content Template"),
    ],
)
def test_unusable_settings_say_why(settings: dict[str, object] | None, problem: str) -> None:
    found = template_problem(settings)
    assert found is not None and problem in found


def test_settings_round_trip() -> None:
    settings = {"content_sid": SID, "body": "Hi {{1}}", "variables": {"1": "sender_name"}}
    template = ContentTemplate.from_settings(settings)
    assert template.as_settings() == settings
    assert template_problem(template.as_settings()) is None
    with pytest.raises(TemplateSettingsInvalid):
        ContentTemplate(SID, "Hi {{1}}", {})
