"""The console's preview on SQLite and PostgreSQL: the email at two widths in sandboxed frames, its
text part and headers, the SMS and its figures, the landing page, sample data, templates that do
not render, and test sends that go only to the marketer's own address or a listed number."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine import create_app
from engine.channels.email import parse_email
from engine.models import Campaign, SuppressionScope, SuppressionSource
from engine.runtime import Runtime
from engine.services.previews import TEST_SENDS_PER_HOUR
from engine.services.suppression import suppress_contact
from engine.services.templates import add_template_versions
from engine.transports import PermanentError, Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import counts, csrf_token, make_campaign, runtime_of, staff_client, visible_text

TEST_NUMBER = "+31612345678"
OTHER_NUMBER = "+31687654321"
MARKETER = "marketer@staff.example"
PREVIEW = "/console/campaigns/spring/preview"
TEST_SEND = "/console/campaigns/spring/preview/test-send"


@pytest.fixture
def app(database_url: str, settings_for, transport: MemoryTransport) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    """The integration app, with one number listed for test texts."""
    settings = settings_for(database_url, test_sms_numbers=(TEST_NUMBER,))
    application = create_app(settings, transports=Transports(email=transport, sms=transport))
    yield application
    runtime_of(application).db.dispose()


@pytest.fixture
def spring(runtime: Runtime) -> str:
    make_campaign(runtime.db)
    return "spring"


def upload(runtime: Runtime, slug: str, **templates: str) -> None:
    """Store template versions as they are, without the upload's checks: as if a template that
    passed them then stopped rendering (a renamed variable, a policy change)."""
    with runtime.db.transaction() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
        assert campaign is not None
        add_template_versions(session, campaign, {name.replace("_", "."): body for name, body in templates.items()})


def iframes(page: str) -> list[dict[str, str]]:
    found = []
    for tag in re.findall(r"<iframe\b[^>]*>", page):
        attributes = {name: html.unescape(value) for name, value in re.findall(r'([\w-]+)="([^"]*)"', tag)}
        attributes["sandbox_present"] = "yes" if re.search(r"\ssandbox[\s=>]", tag) else "no"
        found.append(attributes)
    return found


def figure(page: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}"[^>]*>([^<]*)<', page)
    assert match, f"no {name} figure on the page"
    return match.group(1)


def sms_text(page: str) -> str:
    match = re.search(r'<pre class="preview-text sms-text">(.*?)</pre>', page, re.S)
    assert match, "no text message on the page"
    return html.unescape(match.group(1))


def send(client: FlaskClient, recipient: str, channel: str = "email", **sample: str):  # type: ignore[no-untyped-def]
    page = client.get(PREVIEW).text
    data = {
        "csrf_token": csrf_token(page),
        "channel": channel,
        "recipient": recipient,
        "sender_name": "Bob",
        "note": "",
        "coupon_code": "",
        **sample,
    }
    return client.post(TEST_SEND, data=data)


# -- the page ---------------------------------------------------------------------------------


def test_the_preview_shows_the_email_at_two_widths_in_frames_that_run_no_script(app: Flask, spring: str) -> None:
    page = staff_client(app, "marketer").get(PREVIEW)
    assert page.status_code == 200
    frames = iframes(page.text)
    widths = [frame.get("width") for frame in frames]
    assert widths[:2] == ["600", "375"]
    for frame in frames:
        assert frame["sandbox_present"] == "yes"
        assert "allow-scripts" not in frame.get("sandbox", "")
        assert "allow-same-origin" not in frame.get("sandbox", "")
    email = frames[0]["srcdoc"]
    assert frames[1]["srcdoc"] == email
    # As sent: the CSS inlined, the sample sender named, the example link in place of a real one.
    assert "Alexandra van den Berg" in email
    assert 'href="https://example.invalid/a-friends-personal-link"' in email
    assert "/f/" not in email


def test_the_preview_shows_the_subject_the_text_part_and_the_headers(app: Flask, spring: str) -> None:
    page = staff_client(app, "marketer").get(PREVIEW).text
    text = visible_text(page)
    assert "Subject: Alexandra van den Berg thinks you'll like this: Ten percent off" in text
    text_part = html.unescape(re.search(r'<pre class="preview-text email-text">(.*?)</pre>', page, re.S).group(1))
    assert "See the offer: https://example.invalid/a-friends-personal-link" in text_part
    assert "Acme, 1 Main St, Springfield" in text_part
    headers = dict(
        (name, html.unescape(value))
        for name, value in re.findall(r'<th scope="row">([\w-]+)</th><td><code>([^<]*)</code>', page)
    )
    assert headers["From"] == "Acme <offers@acme.example>"
    assert headers["Subject"] == "Alexandra van den Berg thinks you'll like this: Ten percent off"
    assert headers["List-Unsubscribe"] == "<https://example.invalid/their-unsubscribe-link>"
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r"<[\w-]{16}@acme\.example>", headers["Message-ID"])


def test_the_landing_page_is_shown_in_a_sandboxed_frame(app: Flask, spring: str) -> None:
    page = staff_client(app, "marketer").get(PREVIEW).text
    landing = iframes(page)[2]
    assert landing["sandbox_present"] == "yes"
    assert "<h1>Ten percent off</h1>" in landing["srcdoc"]
    assert "Alexandra van den Berg sent you this offer." in landing["srcdoc"]


def test_a_gsm7_text_with_its_exact_figures(app: Flask, runtime: Runtime, spring: str) -> None:
    upload(runtime, spring, sms_txt="Hi from {{ brand_name }}! {{ link }} Reply STOP to opt out")
    page = staff_client(app, "marketer").get(PREVIEW).text
    assert sms_text(page) == "Hi from Acme! https://example.invalid/a-friends-personal-link Reply STOP to opt out"
    # 14 + 47 (the example link) + 22 characters: one segment of 160, 77 left, one segment's price.
    assert [figure(page, n) for n in ("encoding", "segments", "characters", "left", "cost")] == [
        "GSM-7",
        "1",
        "83",
        "77",
        "$0.0079",  # SMS_PRICE_CURRENCY (USD), as English writes it
    ]


def test_an_emoji_text_is_ucs2_with_its_exact_figures(app: Flask, runtime: Runtime, spring: str) -> None:
    upload(runtime, spring, sms_txt="🎉 {{ brand_name }} 🎉 STOP")
    page = staff_client(app, "marketer").get(PREVIEW).text
    # 13 characters; each emoji is 2 UTF-16 units, so 15 of the 70 a UCS-2 segment holds.
    assert [figure(page, n) for n in ("encoding", "segments", "characters", "left", "cost")] == [
        "UCS-2",
        "1",
        "13",
        "55",
        "$0.0079",  # SMS_PRICE_CURRENCY (USD), as English writes it
    ]


def test_smart_encoding_is_applied_as_when_sending(app: Flask, runtime: Runtime, spring: str) -> None:
    # Curly quotes and an en dash, as a word processor types them.
    upload(runtime, spring, sms_txt="\u201c{{ brand_name }}\u201d \u2013 {{ note }} STOP")
    page = staff_client(app, "marketer").get(PREVIEW, query_string={"sender_name": "Bob", "note": "A" * 190}).text
    assert sms_text(page) == '"Acme" - ' + "A" * 190 + " STOP"
    # GSM-7 after the curly quotes and the dash became plain ones: 9 + 190 + 5 = 204 characters,
    # two segments of 153, 102 left; twice the price.
    assert [figure(page, n) for n in ("encoding", "segments", "characters", "left", "cost")] == [
        "GSM-7",
        "2",
        "204",
        "102",
        "$0.0158",
    ]


def test_sample_data_changes_the_render(app: Flask, runtime: Runtime, spring: str) -> None:
    # Coupons on, under a policy that allows incentives: the sample code is printed.
    with runtime.db.transaction() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == spring))
        campaign.coupon_mode = "pool"
        campaign.policy_settings = {**campaign.policy_settings, "incentives": True}
    client = staff_client(app, "marketer")
    page = client.get(
        PREVIEW, query_string={"sender_name": "Zebedee", "note": "Bring a friend", "coupon_code": "ZZ-42"}
    )
    assert page.status_code == 200
    email = iframes(page.text)[0]["srcdoc"]
    assert "Zebedee" in email and "Bring a friend" in email and "ZZ-42" in email
    assert "Alexandra" not in email
    assert "Zebedee thinks you'll like this" in visible_text(page.text)
    # The form keeps what was typed, and the test-send forms carry it.
    assert 'value="Zebedee"' in page.text
    assert 'name="sender_name" value="Zebedee"' in page.text
    # Without a note or code, the message is shown as it goes without them.
    bare = iframes(client.get(PREVIEW, query_string={"sender_name": "Zebedee", "note": "", "coupon_code": ""}).text)
    assert "blockquote" not in bare[0]["srcdoc"] and "Your code" not in bare[0]["srcdoc"]


def test_a_campaign_without_coupons_prints_no_code_whatever_the_sample(app: Flask, spring: str) -> None:
    page = staff_client(app, "marketer").get(PREVIEW, query_string={"sender_name": "Bob", "coupon_code": "ZZ-42"})
    assert "ZZ-42" not in iframes(page.text)[0]["srcdoc"]
    assert "This campaign gives no coupons" in page.text


def test_sample_data_a_sender_could_not_type_is_refused_beside_its_field(app: Flask, spring: str) -> None:
    page = staff_client(app, "marketer").get(
        PREVIEW, query_string={"sender_name": "Visit spam.example.com", "note": "<b>hi</b>"}
    )
    assert page.status_code == 422
    text = visible_text(page.text)
    assert "The sender name can't contain links or web addresses." in text
    assert "The note can't contain HTML" in text
    # The preview still shows, with the default sample, and the form keeps what was typed.
    assert "Alexandra van den Berg" in iframes(page.text)[0]["srcdoc"]
    assert 'value="Visit spam.example.com"' in page.text


def test_a_template_that_does_not_render_is_listed_not_a_server_error(
    app: Flask, runtime: Runtime, spring: str
) -> None:
    upload(runtime, spring, email_html="<p>{{ sender_name }} {{ no_such_value }}</p>")
    page = staff_client(app, "marketer").get(PREVIEW)
    assert page.status_code == 200
    assert "email.html: 'no_such_value' is undefined" in visible_text(page.text)
    assert 'role="alert"' in page.text
    # The rest still shows: the text message and the landing page.
    assert figure(page.text, "encoding") == "GSM-7"
    assert "<h1>Ten percent off</h1>" in iframes(page.text)[-1]["srcdoc"]


def test_a_text_over_the_campaigns_segment_limit_is_shown_with_the_problem(
    app: Flask, runtime: Runtime, spring: str
) -> None:
    upload(runtime, spring, sms_txt="{{ note }} STOP 🎉")
    page = staff_client(app, "marketer").get(PREVIEW, query_string={"sender_name": "Bob", "note": "A" * 280})
    assert figure(page.text, "segments") == "5"
    assert "needs 5 segments, but the campaign allows at most 3" in visible_text(page.text)
    assert '"🎉"' in html.unescape(page.text)


def test_an_unknown_campaign_is_404(app: Flask) -> None:
    assert staff_client(app, "marketer").get("/console/campaigns/nope/preview").status_code == 404


def test_admins_may_preview_compliance_staff_may_not_and_signed_out_people_sign_in(app: Flask, spring: str) -> None:
    assert staff_client(app, "admin").get(PREVIEW).status_code == 200
    assert staff_client(app, "compliance").get(PREVIEW).status_code == 403
    signed_out = app.test_client().get(PREVIEW)
    assert signed_out.status_code == 302
    assert signed_out.headers["Location"].startswith("/login")


def test_the_console_links_each_campaign_to_its_preview(app: Flask, spring: str) -> None:
    assert f'href="{PREVIEW}"' in staff_client(app, "marketer").get("/console").text


# -- test sends -------------------------------------------------------------------------------


def test_a_test_email_to_your_own_address_arrives_marked_and_writes_nothing(
    app: Flask, runtime: Runtime, transport: MemoryTransport, spring: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = staff_client(app, "marketer")
    before = counts(runtime.db)
    with caplog.at_level(logging.INFO, logger="engine.services.previews"):
        answer = send(client, "Marketer@Staff.Example", sender_name="Zebedee")
    assert answer.status_code == 303
    assert answer.headers["Location"].startswith(PREVIEW)
    [email] = transport.emails
    assert email.to == MARKETER
    assert email.subject == "[Test] Zebedee thinks you'll like this: Ten percent off"
    assert "Zebedee" in email.html and "Zebedee" in email.text
    assert email.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert counts(runtime.db) == before  # no forward, no message row
    # Logged, with who and which campaign, never the address.
    assert any("test email of campaign spring sent by staff" in r.getMessage() for r in caplog.records)
    assert not any("marketer@" in r.getMessage().lower() for r in caplog.records)
    # Back on the page, it says where it went.
    assert "Test e-mail sent to m***@staff.example." in visible_text(client.get(answer.headers["Location"]).text)


def test_a_test_email_to_another_address_is_refused_and_nothing_is_sent(
    app: Flask, transport: MemoryTransport, spring: str
) -> None:
    answer = send(staff_client(app, "marketer"), "someone.else@example.com")
    assert answer.status_code == 422
    assert "only to your own address" in visible_text(answer.text)
    assert transport.emails == [] and transport.sms == []


def test_a_test_text_goes_to_a_listed_number_only(app: Flask, transport: MemoryTransport, spring: str) -> None:
    client = staff_client(app, "marketer")
    assert send(client, "+31 6 12345678", channel="sms").status_code == 303
    [text] = transport.sms
    assert text.to == TEST_NUMBER
    assert text.text.startswith("[Test] Bob sent you an offer from Acme")
    refused = send(client, OTHER_NUMBER, channel="sms")
    assert refused.status_code == 422
    assert "TEST_SMS_NUMBERS" in visible_text(refused.text)
    assert len(transport.sms) == 1


def test_a_number_on_the_email_form_is_refused(app: Flask, transport: MemoryTransport, spring: str) -> None:
    answer = send(staff_client(app, "marketer"), TEST_NUMBER, channel="email")
    assert answer.status_code == 422
    assert transport.sms == [] and transport.emails == []


def test_test_sends_stop_after_ten_an_hour(app: Flask, transport: MemoryTransport, spring: str) -> None:
    client = staff_client(app, "marketer")
    for _ in range(TEST_SENDS_PER_HOUR):
        assert send(client, MARKETER).status_code == 303
    answer = send(client, MARKETER)
    assert answer.status_code == 422
    assert f"You have sent {TEST_SENDS_PER_HOUR} test messages in the last hour" in visible_text(answer.text)
    assert len(transport.emails) == TEST_SENDS_PER_HOUR
    # Refusals cost nothing: another person still has their own ten.
    assert send(staff_client(app, "admin"), "admin@staff.example").status_code == 303


def test_a_test_of_a_template_that_does_not_render_is_refused(
    app: Flask, runtime: Runtime, transport: MemoryTransport, spring: str
) -> None:
    upload(runtime, spring, subject_txt="{{ no_such_value }}")
    answer = send(staff_client(app, "marketer"), MARKETER)
    assert answer.status_code == 422
    assert "does not render" in visible_text(answer.text)
    assert transport.emails == []


def test_an_opted_out_address_gets_no_test(
    app: Flask, runtime: Runtime, transport: MemoryTransport, spring: str
) -> None:
    with runtime.db.transaction() as session:
        suppress_contact(
            session,
            runtime.hasher.hash(parse_email(MARKETER)),
            "email",
            SuppressionScope.GLOBAL,
            SuppressionSource.MANUAL,
            now=runtime.clock.now(),
        )
    answer = send(staff_client(app, "marketer"), MARKETER)
    assert answer.status_code == 422
    assert "opted out" in visible_text(answer.text)
    assert transport.emails == []


def test_a_test_send_needs_the_forms_token_and_the_marketer_role(
    app: Flask, transport: MemoryTransport, spring: str
) -> None:
    client = staff_client(app, "marketer")
    forged = client.post(TEST_SEND, data={"channel": "email", "recipient": MARKETER, "sender_name": "Bob"})
    assert forged.status_code == 400
    compliance = staff_client(app, "compliance")
    token = csrf_token(compliance.get("/console").text)
    refused = compliance.post(
        TEST_SEND, data={"csrf_token": token, "channel": "email", "recipient": "compliance@staff.example"}
    )
    assert refused.status_code == 403
    assert transport.emails == []


def test_a_provider_refusal_is_shown_with_the_address_masked(
    app: Flask, transport: MemoryTransport, spring: str
) -> None:
    transport.fail_next(PermanentError(f"The recipient {MARKETER} is not valid"))
    answer = send(staff_client(app, "marketer"), MARKETER)
    assert answer.status_code == 502
    assert "The provider did not take the test: The recipient m***@staff.example is not valid" in visible_text(
        answer.text
    )
