"""WHATSAPP_TRANSPORT and the WhatsApp sender: off unless asked for, and checked when asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_settings
from tests.unit.test_settings import PRODUCTION


def load(tmp_path: Path, **environ: str):  # type: ignore[no-untyped-def]
    return load_settings({"INSTANCE_PATH": str(tmp_path), **environ}, dotenv_path=tmp_path / "none.env")


def test_whatsapp_is_off_unless_a_transport_is_chosen(tmp_path: Path) -> None:
    settings = load(tmp_path)
    assert (settings.whatsapp_transport, settings.whatsapp_enabled) == ("none", False)
    assert load(tmp_path, WHATSAPP_TRANSPORT="outbox").whatsapp_enabled


def test_twilio_whatsapp_takes_the_sender_with_or_without_its_prefix(tmp_path: Path) -> None:
    twilio = {"WHATSAPP_TRANSPORT": "twilio", "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t"}
    assert load(tmp_path, **twilio, TWILIO_WHATSAPP_FROM="whatsapp:+14155238886").twilio_whatsapp_from == "+14155238886"
    assert load(tmp_path, **twilio, TWILIO_WHATSAPP_FROM="+14155238886").twilio_whatsapp_from == "+14155238886"
    service = load(tmp_path, **twilio, TWILIO_MESSAGING_SERVICE_SID="MG1")
    assert (service.whatsapp_transport, service.twilio_whatsapp_from) == ("twilio", None)


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"WHATSAPP_TRANSPORT": "telegram"}, "WHATSAPP_TRANSPORT must be one of none, outbox, twilio"),
        ({"WHATSAPP_TRANSPORT": "twilio"}, "WHATSAPP_TRANSPORT=twilio needs TWILIO_ACCOUNT_SID"),
        (
            {"WHATSAPP_TRANSPORT": "twilio", "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t"},
            "TWILIO_WHATSAPP_FROM or TWILIO_MESSAGING_SERVICE_SID",
        ),
        (
            {
                "WHATSAPP_TRANSPORT": "twilio",
                "TWILIO_ACCOUNT_SID": "AC1",
                "TWILIO_AUTH_TOKEN": "t",
                "TWILIO_WHATSAPP_FROM": "0612345678",
            },
            "E.164",
        ),
    ],
)
def test_a_wrong_whatsapp_setting_says_what_to_fix(tmp_path: Path, environ: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load(tmp_path, **environ)


def test_production_refuses_the_whatsapp_outbox(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="WHATSAPP_TRANSPORT"):
        load(tmp_path, **PRODUCTION, WHATSAPP_TRANSPORT="outbox")
    assert load(tmp_path, **PRODUCTION, WHATSAPP_TRANSPORT="twilio", TWILIO_WHATSAPP_FROM="+14155238886").production
