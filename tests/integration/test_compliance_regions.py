"""Compliance staff type a number as the person they look for would: `06 12345678` in the
Netherlands, `0470 12 34 56` in Belgium. It is read in the regions of the campaign chosen, or of
every campaign; a number that means two different people in two regions is refused, naming both."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engine.contacts import parse_contact
from engine.runtime import Runtime
from tests.helpers import csrf_token, make_campaign, staff_client, visible_text


@pytest.fixture
def regions(runtime: Runtime) -> Runtime:
    """A Dutch campaign, a Belgian one that also reads Dutch numbers, and one of each alone."""
    make_campaign(runtime.db, "koffie", name="Koffie NL", phone_region="NL")
    make_campaign(runtime.db, "frites", name="Frites BE", phone_region="BE")
    make_campaign(runtime.db, "benelux", name="Benelux", phone_region="BE", extra_phone_regions=["NL"])
    return runtime


def search(client: FlaskClient, contact: str, campaign: str = "") -> tuple[int, str]:
    """The contact report's search: where it leads (the contact's hash), or the error shown."""
    page = client.get("/compliance/contacts")
    answer = client.post(
        "/compliance/contacts", data={"contact": contact, "campaign": campaign, "csrf_token": csrf_token(page.text)}
    )
    if answer.status_code == 303:
        return 303, urlsplit(answer.headers["Location"]).path.rsplit("/", 1)[-1]
    error = re.search(r'role="alert"><ul class="errors form-errors"><li>(.*?)</li>', answer.text, re.DOTALL)
    return answer.status_code, visible_text(error.group(1)) if error else ""


def hash_of(runtime: Runtime, e164: str) -> str:
    return runtime.hasher.hash(parse_contact(e164, "NL"))


@pytest.mark.parametrize(
    ("typed", "campaign", "number"),
    [
        ("06 12345678", "koffie", "+31612345678"),
        ("06-12 34 56 78", "koffie", "+31612345678"),
        ("0470 12 34 56", "frites", "+32470123456"),
        ("0470/12.34.56", "frites", "+32470123456"),
        # A Belgian campaign that reads Dutch numbers too: its own region first.
        ("06 12345678", "benelux", "+31612345678"),
        ("0475 12 34 56", "benelux", "+32475123456"),
        # The same digits are a Dutch landline on a Dutch campaign.
        ("0475 12 34 56", "koffie", "+31475123456"),
        # With a country code the campaign does not matter.
        ("+32 470 12 34 56", "koffie", "+32470123456"),
        ("0032 470 12 34 56", "koffie", "+32470123456"),
        ("+31 6 12345678", "frites", "+31612345678"),
        # No campaign chosen: every campaign's regions, where only one reading exists.
        ("06 12345678", "", "+31612345678"),
        ("0470 12 34 56", "", "+32470123456"),
    ],
)
def test_a_number_is_read_in_the_campaigns_regions(
    app: Flask, regions: Runtime, typed: str, campaign: str, number: str
) -> None:
    client = staff_client(app, "compliance")
    assert search(client, typed, campaign) == (303, hash_of(regions, number))


def test_a_number_valid_in_none_of_the_campaigns_regions_is_refused(app: Flask, regions: Runtime) -> None:
    client = staff_client(app, "compliance")
    status, error = search(client, "06 12345678", "frites")
    assert status == 400
    assert error == (
        "not an e-mail address or a phone number (numbers without a country code are read as numbers of BE)"
    )
    status, error = search(client, "0470 12 34 56", "koffie")
    assert status == 400 and "read as numbers of NL" in error


def test_a_number_that_is_two_people_is_refused_naming_both(app: Flask, regions: Runtime) -> None:
    client = staff_client(app, "compliance")
    status, error = search(client, "0475 12 34 56")
    assert status == 400
    assert error == (
        "0475 12 34 56 is a different number in each region: +32475123456 (BE), +31475123456 (NL)."
        " Type it with its country code (+31, +32, ...), or choose the campaign"
    )
    # Said in the reader's language.
    page = client.get("/compliance/contacts", headers={"Accept-Language": "nl"})
    answer = client.post(
        "/compliance/contacts",
        data={"contact": "0475 12 34 56", "campaign": "", "csrf_token": csrf_token(page.text)},
        headers={"Accept-Language": "nl"},
    )
    assert answer.status_code == 400
    assert "is in elke regio een ander nummer: +32475123456 (BE), +31475123456 (NL)" in visible_text(answer.text)


def test_an_address_needs_no_region_and_a_campaign_not_listed_is_refused(app: Flask, regions: Runtime) -> None:
    client = staff_client(app, "compliance")
    assert search(client, "Bob@Example.com") == (303, regions.hasher.hash(parse_contact("bob@example.com", "NL")))
    assert search(client, "06 12345678", "no-such-campaign") == (400, "Choose a campaign from the list.")


def test_the_search_form_names_each_campaigns_regions(app: Flask, regions: Runtime) -> None:
    text = visible_text(staff_client(app, "compliance").get("/compliance/contacts").text)
    assert "any campaign (BE, NL)" in text
    assert "Benelux (BE, NL)" in text and "Frites BE (BE)" in text and "Koffie NL (NL)" in text


def test_the_opt_out_log_filter_reads_numbers_in_the_named_campaigns_regions(app: Flask, regions: Runtime) -> None:
    client = staff_client(app, "compliance")
    page = client.get("/compliance/opt-outs")
    answer = client.post(
        "/compliance/opt-outs",
        data={"contact": "0470 12 34 56", "campaign": "frites", "csrf_token": csrf_token(page.text)},
    )
    assert answer.status_code == 303
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["contact"] == [hash_of(regions, "+32470123456")]
    assert "0470" not in answer.headers["Location"]  # the typed number never lands in a URL
    refused = client.post(
        "/compliance/opt-outs",
        data={"contact": "0475 12 34 56", "csrf_token": csrf_token(page.text)},
    )
    assert refused.status_code == 400
    assert "is a different number in each region" in visible_text(refused.text)
