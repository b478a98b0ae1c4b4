"""The console preview's value objects: sample data held to the public form's limits, the SMS
figures and their cost, and the settings behind them."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from config import ConfigError, load_settings
from engine.services.previews import InvalidSample, SampleData
from engine.sms import SmsPreview, SmsPrice

PRICE = SmsPrice(Decimal("0.0079"), "USD")


def figures(text: str, limit: int = 3) -> SmsPreview:
    return SmsPreview.of(text, segment_limit=limit, smart_encoding=True, price=PRICE)


# -- sample data -------------------------------------------------------------------------------


def test_the_default_sample_is_valid_and_has_a_name_a_note_and_a_code() -> None:
    sample = SampleData()
    assert sample.sender_name and sample.note and sample.coupon_code


def test_an_empty_note_and_an_empty_code_are_how_a_message_without_them_looks() -> None:
    sample = SampleData(sender_name="Bob", note="", coupon_code="")
    assert sample.message_values(gives_codes=True)["coupon_code"] == ""
    assert sample.message_values(gives_codes=True)["note"] == ""


def test_a_note_may_span_lines_and_be_as_long_as_the_form_allows() -> None:
    SampleData(note="See you\nSaturday! " + "x" * (280 - 18))


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"sender_name": ""}, "sender_name", "Enter a sender name"),
        ({"sender_name": "   "}, "sender_name", "Enter a sender name"),
        ({"sender_name": "N" * 81}, "sender_name", "at most 80"),
        ({"sender_name": "Bob from cheap-pills.eu"}, "sender_name", "links"),
        ({"sender_name": "<b>Bob</b>"}, "sender_name", "HTML"),
        ({"sender_name": "Bob\nSmith"}, "sender_name", "control characters"),
        ({"note": "x" * 281}, "note", "at most 280"),
        ({"note": "see https://spam.example/now"}, "note", "links"),
        ({"note": "see www.example"}, "note", "links"),
        ({"note": "<script>"}, "note", "HTML"),
        ({"note": "bell\x07"}, "note", "control characters"),
        ({"coupon_code": "TWO WORDS"}, "coupon_code", "space"),
        ({"coupon_code": "C" * 65}, "coupon_code", "longer than 64"),
        ({"coupon_code": "CAFÉ"}, "coupon_code", "printable ASCII"),
    ],
)
def test_sample_data_a_sender_could_not_type_is_refused_with_the_field_and_the_reason(
    fields: dict[str, str], field: str, words: str
) -> None:
    with pytest.raises(InvalidSample) as refused:
        SampleData(**fields)
    assert list(refused.value.problems) == [field]
    assert words in refused.value.problems[field]


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(InvalidSample) as refused:
        SampleData(sender_name="", note="<", coupon_code="a b")
    assert set(refused.value.problems) == {"sender_name", "note", "coupon_code"}


def test_links_in_a_preview_are_examples_that_lead_nowhere() -> None:
    values = SampleData().message_values(gives_codes=False)
    assert values["link"].startswith("https://example.invalid/")
    assert values["unsubscribe_link"].startswith("https://example.invalid/")
    assert values["coupon_code"] == ""  # a campaign without coupons prints none


# -- the SMS figures ------------------------------------------------------------------------------


def test_a_gsm7_text_in_one_segment() -> None:
    # 14 + 47 (the example link) + 22 characters: one segment of 160, 77 left.
    sms = figures("Hi from Acme! https://example.invalid/a-friends-personal-link Reply STOP to opt out")
    assert (sms.encoding, sms.segments, sms.characters, sms.left_in_segment) == ("GSM-7", 1, 83, 77)
    assert sms.estimated_cost == Decimal("0.0079")
    assert not sms.over_limit


def test_an_emoji_makes_the_text_ucs2_and_takes_two_units() -> None:
    # 13 characters, the two emoji 2 UTF-16 units each: 15 of 70 used, 55 left.
    sms = figures("🎉 Acme 🎉 STOP")
    assert (sms.encoding, sms.segments, sms.characters, sms.units, sms.left_in_segment) == ("UCS-2", 1, 13, 15, 55)
    assert sms.per_segment == 70


def test_a_split_text_counts_in_segments_of_153_and_costs_each() -> None:
    sms = figures("A" * 200)
    assert (sms.segments, sms.per_segment, sms.left_in_segment) == (2, 153, 106)
    assert sms.estimated_cost == Decimal("0.0158")


def test_a_text_over_the_campaigns_limit_says_so() -> None:
    assert figures("A" * 200, limit=1).over_limit


def test_a_price_is_never_negative_and_its_currency_is_an_iso_code() -> None:
    assert SmsPrice(Decimal("0.05"), "EUR").of(3) == Decimal("0.15")
    with pytest.raises(ValueError, match="negative"):
        SmsPrice(Decimal("-0.01"))
    with pytest.raises(ValueError, match="three-letter"):
        SmsPrice(Decimal("0.01"), "euro")


# -- settings ------------------------------------------------------------------------------------


def load(tmp_path: Path, **environ: str):  # type: ignore[no-untyped-def]
    return load_settings({"INSTANCE_PATH": str(tmp_path), **environ}, dotenv_path=tmp_path / "none.env")


def test_sms_price_and_test_numbers_have_safe_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path)
    assert settings.sms_price_per_segment == Decimal("0.0079")
    assert settings.sms_price_currency == "USD"
    assert settings.default_time_zone == "UTC"  # as the console showed times before it had zones
    assert settings.test_sms_numbers == ()  # no test text goes anywhere until someone lists a number


def test_sms_price_and_test_numbers_are_read_and_normalised(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        SMS_PRICE_PER_SEGMENT="0.0825",
        SMS_PRICE_CURRENCY="eur",
        DEFAULT_TIME_ZONE="Europe/Brussels",
        TEST_SMS_NUMBERS="+31 6 12345678, +1 (201) 555-0123,+31612345678",
    )
    assert settings.sms_price_per_segment == Decimal("0.0825")
    assert settings.sms_price_currency == "EUR"
    assert settings.default_time_zone == "Europe/Brussels"
    assert settings.test_sms_numbers == ("+31612345678", "+12015550123")


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("SMS_PRICE_PER_SEGMENT", "cheap", "must be a number"),
        ("SMS_PRICE_PER_SEGMENT", "-1", "zero or more"),
        ("SMS_PRICE_PER_SEGMENT", "NaN", "zero or more"),
        ("SMS_PRICE_CURRENCY", "dollars", "three-letter"),
        ("SMS_PRICE_CURRENCY", "XYZ", "ISO 4217"),  # three letters, but no currency's
        ("DEFAULT_TIME_ZONE", "Europe/Amstredam", "IANA time zone"),
        ("DEFAULT_TIME_ZONE", "localtime", "IANA time zone"),
        ("DEFAULT_TIME_ZONE", "+02:00", "IANA time zone"),
        ("TEST_SMS_NUMBERS", "0612345678", "E.164"),
        ("TEST_SMS_NUMBERS", "+3161234", "not a valid phone number"),
    ],
)
def test_bad_preview_settings_stop_the_start(tmp_path: Path, name: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load(tmp_path, **{name: value})
