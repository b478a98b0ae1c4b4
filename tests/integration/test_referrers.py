"""Referrers' own pages, on SQLite and PostgreSQL, through HTTP: the page behind the thanks
page, counts only, confirming a number by code or an address by signed link (consent to hear
about rewards only), every bad input, the one-click stop, retention, privacy, and the API."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine.clock import FixedClock
from engine.contacts import parse_contact
from engine.models import (
    Click,
    Consent,
    Coupon,
    Forward,
    Redemption,
    Referrer,
    Reward,
    SuppressionScope,
    SuppressionSource,
)
from engine.runtime import Runtime
from engine.services.consents import consented_hashes
from engine.services.referrers import confirmed_contact
from engine.services.rewards import ProgramSettings, set_program
from engine.services.suppression import suppress_contact
from engine.tokens import Purpose
from engine.transports.memory import MemoryTransport
from tests.helpers import (
    US_CUSTOM_SMS,
    copy_button,
    csrf_token,
    forward_form,
    make_campaign,
    staff_client,
    static_path,
    visible_text,
)

WITH_INCENTIVES = {**US_CUSTOM_SMS, "incentives": True}
NUMBER = "+31612345678"
ADDRESS = "ann@example.com"


@pytest.fixture
def shop(runtime: Runtime) -> str:
    make_campaign(runtime.db, "shop", policy_settings=WITH_INCENTIVES, coupon_mode="pool")
    set_program(runtime.db, "shop", ProgramSettings(True, "a coffee"))
    return "shop"


def forward_and_open_page(client: FlaskClient, slug: str, friends: tuple[str, ...] = ("bob@example.com",)) -> str:
    """Forward through the form as a person would; the path of the page the thanks page links."""
    sent = client.post(f"/c/{slug}/forward", data=forward_form(client.get(f"/c/{slug}").text, friends=friends))
    assert sent.status_code == 303
    thanks = client.get(f"/c/{slug}/thanks")
    found = re.search(r'id="referrer-page-link" href="([^"]+)"', thanks.text) or re.search(
        r'href="([^"]+)" id="referrer-page-link"', thanks.text
    )
    assert found, thanks.text
    return found.group(1)


def counts(page_html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', page_html)}


def referrer_row(runtime: Runtime) -> Referrer:
    with runtime.db.reading() as session:
        (row,) = session.scalars(select(Referrer))
        return row


def text_code(transport: MemoryTransport) -> str:
    found = re.search(r"\b(\d{6})\b", transport.sms[-1].text)
    assert found
    return found.group(1)


def follow(client: FlaskClient, page: str, contact: str) -> object:
    html = client.get(page).text
    return client.post(f"{page}/follow", data={"csrf_token": csrf_token(html), "contact": contact})


def enter(client: FlaskClient, page: str, code: str) -> object:
    html = client.get(f"{page}/code").text
    return client.post(f"{page}/code", data={"csrf_token": csrf_token(html), "code": code})


# -- the page --------------------------------------------------------------------------------------


def test_the_thanks_page_leads_to_a_page_of_counts_and_a_personal_link(app: Flask, runtime: Runtime, shop: str) -> None:
    client = app.test_client()
    page = forward_and_open_page(client, shop, ("bob@example.com", "carl@example.com"))
    html = client.get(page)
    assert html.status_code == 200
    assert html.headers["Cache-Control"] == "no-store"
    assert counts(html.text) == {"reached": 2, "clicked": 0, "converted": 0}
    link = re.search(r'id="personal-link" value="([^"]+)"|value="([^"]+)" id="personal-link"', html.text)
    personal = next(g for g in link.groups() if g) if link else None
    assert personal and personal.startswith("http://fluister.test/f/")
    assert "<svg" in html.text  # its QR code
    assert copy_button(html.text, "personal-link")["text"] == "Copy link"
    assert static_path("copy.js") in html.text
    assert "a coffee" in html.text

    # Someone opens the personal link, and a friend opens their invitation: counted, never named.
    other = app.test_client()
    assert other.get(personal.removeprefix("http://fluister.test")).status_code == 303
    with runtime.db.transaction() as session:
        bob = session.scalars(select(Forward).where(Forward.channel == "email")).first()
        assert bob is not None
        session.add(Click(forward_id=bob.id, client_ip_hash="ip-bob"))
    again = client.get(page).text
    assert counts(again) == {"reached": 3, "clicked": 2, "converted": 0}
    assert "bob@example.com" not in again and "carl" not in again


def test_a_forged_or_foreign_page_link_is_a_404(app: Flask, runtime: Runtime, shop: str) -> None:
    client = app.test_client()
    page = forward_and_open_page(client, shop)
    assert client.get(page + "x").status_code == 404
    foreign = runtime.tokens.sign(Purpose.FORWARD, referrer_row(runtime).public_id)
    assert client.get(f"/r/{foreign}").status_code == 404
    assert client.get("/r/" + "A" * 600).status_code == 404
    assert client.post(f"/r/{foreign}/stop").status_code == 404


# -- confirming a number by code ---------------------------------------------------------------------


def test_a_number_confirmed_by_code_is_consent_to_rewards_messages_only(
    app: Flask, runtime: Runtime, shop: str, transport: MemoryTransport
) -> None:
    client = app.test_client()
    page = forward_and_open_page(client, shop)
    with runtime.db.reading() as session:
        assert session.scalar(select(Referrer.contact)) is None  # nothing kept before confirming
    asked = follow(client, page, "06 1234 5678")
    assert asked.status_code == 303 and asked.headers["Location"].endswith("/code")
    assert [sms.to for sms in transport.sms] == [NUMBER]
    code = text_code(transport)
    with runtime.db.reading() as session:
        row = session.scalar(select(Referrer))
        assert row is not None and code not in (row.pending_secret_hash or "")  # hashed at rest

    wrong = enter(client, page, "000000" if code != "000000" else "111111")
    assert wrong.status_code == 422 and "4 tries left" in visible_text(wrong.text)
    done = enter(client, page, code)
    assert done.status_code == 303
    shown = client.get(done.headers["Location"]).text
    assert "+3161****78" in shown and NUMBER not in shown

    row = referrer_row(runtime)
    with runtime.db.reading() as session:
        assert confirmed_contact(session, row.campaign_id, row.referrer_key) == parse_contact(NUMBER, "NL")
        (consent,) = session.scalars(select(Consent))
        assert (consent.purpose, consent.channel, consent.source) == ("rewards", "sms", "confirmed")
        # A campaign's texts to friends still need consent to offers: this is none.
        assert consented_hashes(session, row.campaign_id, "sms", [consent.contact_hash]) == set()
    # The code is spent.
    assert enter(client, page, code).status_code == 410
    # What a message about their rewards carries: their page and the one-click stop.
    links = runtime.referrers.links_for(row.campaign_id, row.referrer_key)
    assert links is not None
    assert links[1] == links[0] + "/stop" and links[0].startswith("http://fluister.test/r/")
    assert runtime.referrers.links_for(row.campaign_id, "c:someone-else") is None


def test_an_expired_code_and_too_many_wrong_ones_confirm_nothing(
    app: Flask, runtime: Runtime, shop: str, transport: MemoryTransport, clock: FixedClock
) -> None:
    client = app.test_client()
    page = forward_and_open_page(client, shop)
    follow(client, page, NUMBER)
    code = text_code(transport)
    clock.advance(timedelta(minutes=11))
    assert enter(client, page, code).status_code == 410

    follow(client, page, NUMBER)
    code = text_code(transport)
    wrong = "123456" if code != "123456" else "654321"
    answers = [enter(client, page, wrong).status_code for _ in range(5)]
    assert answers == [422, 422, 422, 422, 429]
    assert enter(client, page, code).status_code == 410  # the code died with the fifth wrong one
    assert enter(client, page, "12ab").status_code == 410
    assert referrer_row(runtime).contact is None


def test_a_flood_of_codes_is_throttled(
    app: Flask, runtime: Runtime, shop: str, transport: MemoryTransport, clock: FixedClock
) -> None:
    client = app.test_client()
    page = forward_and_open_page(client, shop)
    assert follow(client, page, NUMBER).status_code == 303
    again = follow(client, page, NUMBER)
    assert again.status_code == 429 and int(again.headers["Retry-After"]) <= 60
    answers = []
    for _ in range(6):
        clock.advance(timedelta(seconds=61))
        answers.append(follow(client, page, NUMBER).status_code)
    assert answers == [303, 303, 303, 303, 429, 429]  # five an hour
    assert len(transport.sms) == 5


def test_bad_contacts_are_refused_on_the_form(app: Flask, shop: str, transport: MemoryTransport) -> None:
    client = app.test_client()
    page = forward_and_open_page(client, shop)
    for typed in ("", "not a contact", "x" * 300):
        answer = follow(client, page, typed)
        assert answer.status_code == 422
        assert "Enter your e-mail address or mobile number" in visible_text(answer.text)
    no_csrf = client.post(f"{page}/follow", data={"contact": NUMBER})
    assert no_csrf.status_code == 400
    assert transport.sms == []


def test_an_opted_out_contact_gets_nothing_and_is_told_the_same(
    app: Flask, runtime: Runtime, shop: str, transport: MemoryTransport
) -> None:
    with runtime.db.transaction() as session:
        suppress_contact(
            session,
            runtime.hasher.hash(parse_contact(NUMBER, "NL")),
            "sms",
            SuppressionScope.GLOBAL,
            SuppressionSource.STOP,
            now=runtime.clock.now(),
        )
    client = app.test_client()
    page = forward_and_open_page(client, shop)
    asked = follow(client, page, NUMBER)
    assert asked.status_code == 303 and asked.headers["Location"].endswith("/code")  # as for anyone
    assert transport.sms == []


# -- confirming an address by signed link ----------------------------------------------------------


def test_an_address_is_confirmed_by_its_signed_link_and_only_by_a_click_on_its_button(
    app: Flask, runtime: Runtime, shop: str, transport: MemoryTransport
) -> None:
    client = app.test_client()
    page = forward_and_open_page(client, shop)
    asked = follow(client, page, ADDRESS)
    assert asked.status_code == 303 and "sent=email" in asked.headers["Location"]
    (email,) = [e for e in transport.emails if e.to == ADDRESS]
    assert email.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    confirm = re.search(r"http://fluister\.test(/r/confirm/\S+)", email.text)
    assert confirm
    link = confirm.group(1)

    mail_client = app.test_client()  # opened in the mail app's browser: another session
    shown = mail_client.get(link)
    assert shown.status_code == 200
    assert referrer_row(runtime).contact is None  # a scanner's GET confirms nothing
    assert mail_client.post(link + "x", data={"csrf_token": csrf_token(shown.text)}).status_code == 404
    done = mail_client.post(link, data={"csrf_token": csrf_token(shown.text)})
    assert done.status_code == 303
    assert referrer_row(runtime).contact == ADDRESS
    assert mail_client.post(link, data={"csrf_token": csrf_token(shown.text)}).status_code == 410  # used


def test_a_confirmation_link_past_its_hour_confirms_nothing(
    app: Flask, runtime: Runtime, shop: str, transport: MemoryTransport, clock: FixedClock
) -> None:
    client = app.test_client()
    page = forward_and_open_page(client, shop)
    follow(client, page, ADDRESS)
    link = re.search(r"http://fluister\.test(/r/confirm/\S+)", transport.emails[-1].text)
    assert link
    clock.advance(timedelta(minutes=61))
    shown = client.get(link.group(1))
    assert client.post(link.group(1), data={"csrf_token": csrf_token(shown.text)}).status_code == 410
    assert referrer_row(runtime).contact is None


# -- stopping ----------------------------------------------------------------------------------------


def confirm_number(client: FlaskClient, page: str, transport: MemoryTransport) -> None:
    follow(client, page, NUMBER)
    assert enter(client, page, text_code(transport)).status_code == 303


def test_one_click_stops_rewards_messages_and_forgets_the_contact(
    app: Flask, runtime: Runtime, shop: str, transport: MemoryTransport
) -> None:
    client = app.test_client()
    page = forward_and_open_page(client, shop)
    confirm_number(client, page, transport)
    assert "Stop messages about my rewards" in client.get(f"{page}/stop").text
    assert referrer_row(runtime).contact == NUMBER  # the GET only asks

    # As a mail provider posts it: no cookies, no CSRF token.
    stopped = app.test_client().post(f"{page}/stop", data={"List-Unsubscribe": "One-Click"})
    assert stopped.status_code == 200 and "Stopped" in stopped.text
    row = referrer_row(runtime)
    assert (row.contact, row.contact_hash, row.revoked_at is not None) == (None, None, True)
    with runtime.db.reading() as session:
        assert confirmed_contact(session, row.campaign_id, row.referrer_key) is None
        (consent,) = session.scalars(select(Consent))
        assert consent.revoked_at is not None
    assert "Follow your rewards" in client.get(page).text  # they may confirm again


# -- eu-strict -----------------------------------------------------------------------------------------


def test_without_incentives_the_page_shows_counts_and_says_why_there_are_no_rewards(
    app: Flask, runtime: Runtime, transport: MemoryTransport
) -> None:
    make_campaign(runtime.db, "strict", policy_name="eu-strict", policy_settings={}, channels=["email"])
    client = app.test_client()
    landing = client.get("/c/strict").text
    posted = client.post("/c/strict/forward", data=forward_form(landing, friends=("bob@example.com",)))
    # eu-strict shows a preview first: send what was previewed.
    if posted.status_code == 200:
        fields = forward_form(posted.text, friends=("bob@example.com",))
        fields["preview_token"] = re.search(r'name="preview_token"[^>]*value="([^"]+)"', posted.text).group(1)  # type: ignore[union-attr]
        posted = client.post("/c/strict/forward", data=fields)
    assert posted.status_code == 303
    thanks = client.get("/c/strict/thanks").text
    assert "offers no rewards" in visible_text(thanks)
    page = re.search(r'href="([^"]+)" id="referrer-page-link"', thanks)
    assert page
    html = client.get(page.group(1)).text
    assert counts(html) == {"reached": 1, "clicked": 0, "converted": 0}
    assert 'data-rewards="none"' in html and "allows no incentives" in html
    assert 'id="follow-form"' not in html
    refused = client.post(f"{page.group(1)}/follow", data={"csrf_token": csrf_token(thanks), "contact": ADDRESS})
    assert refused.status_code == 422 and "offers no rewards" in visible_text(refused.text)


# -- retention and privacy ---------------------------------------------------------------------------


def test_a_confirmed_contact_is_kept_while_rewards_are_open_plus_the_retention(
    app: Flask, runtime: Runtime, shop: str, transport: MemoryTransport, clock: FixedClock
) -> None:
    client = app.test_client()
    page = forward_and_open_page(client, shop)
    confirm_number(client, page, transport)
    row = referrer_row(runtime)
    with runtime.db.transaction() as session:
        forward = session.scalars(select(Forward).where(Forward.channel == "email")).one()
        coupon = Coupon(campaign_id=row.campaign_id, code="C-1", forward_id=forward.id)
        session.add(coupon)
        session.flush()
        redemption = Redemption(campaign_id=row.campaign_id, coupon_id=coupon.id, forward_id=forward.id)
        session.add(redemption)
        session.flush()
        session.add(
            Reward(
                campaign_id=row.campaign_id,
                redemption_id=redemption.id,
                forward_id=forward.id,
                referrer_key=row.referrer_key,
                referrer_name="Anna",
                status="held",
                flags=[],
                flagged=False,
            )
        )
    clock.advance(timedelta(days=45))
    runtime.delivery.sweep()
    assert referrer_row(runtime).contact == NUMBER  # a reward is still open

    with runtime.db.transaction() as session:
        reward = session.scalars(select(Reward)).one()
        reward.status = "rejected"
        reward.reviewed_at = clock.now()
    clock.advance(timedelta(days=29))
    runtime.delivery.sweep()
    assert referrer_row(runtime).contact == NUMBER  # within the 30 days of retention
    clock.advance(timedelta(days=2))
    runtime.delivery.sweep()
    row = referrer_row(runtime)
    assert (row.contact, row.contact_hash) == (None, None)
    with runtime.db.reading() as session:
        assert session.scalars(select(Consent)).one().revoked_at is not None


def test_a_pending_confirmation_is_dropped_once_expired(
    app: Flask, runtime: Runtime, shop: str, transport: MemoryTransport, clock: FixedClock
) -> None:
    client = app.test_client()
    page = forward_and_open_page(client, shop)
    follow(client, page, ADDRESS)
    assert referrer_row(runtime).pending_contact == ADDRESS
    clock.advance(timedelta(minutes=61))
    runtime.delivery.sweep()
    row = referrer_row(runtime)
    assert (row.pending_contact, row.pending_contact_hash, row.pending_secret_hash) == (None, None, None)


def test_the_privacy_export_and_erase_cover_a_referrers_contact(
    app: Flask, runtime: Runtime, shop: str, transport: MemoryTransport
) -> None:
    client = app.test_client()
    page = forward_and_open_page(client, shop)
    confirm_number(client, page, transport)
    document = runtime.privacy.export(NUMBER)
    assert document["referrer_contacts"] == [
        {
            "campaign": "shop",
            "channel": "sms",
            "confirmed": True,
            "confirmed_at": document["referrer_contacts"][0]["confirmed_at"],
            "pending_until": None,
            "purpose": "rewards",
        }
    ]
    assert [(c["purpose"], c["revoked_at"]) for c in document["consents"]] == [("rewards", None)]
    report = runtime.privacy.erase(NUMBER)
    assert report.referrer_contacts_erased == 1
    row = referrer_row(runtime)
    assert (row.contact, row.contact_hash) == (None, None)
    after = runtime.privacy.export(NUMBER)
    assert after["referrer_contacts"] == []
    assert after["consents"][0]["revoked_at"] is not None
    assert runtime.privacy.erase(NUMBER).referrer_contacts_erased == 0


# -- the API -------------------------------------------------------------------------------------------


def test_the_api_reads_a_referrer_by_key_or_by_confirmed_contact(
    app: Flask, runtime: Runtime, shop: str, transport: MemoryTransport
) -> None:
    client = app.test_client()
    page = forward_and_open_page(client, shop)
    key = referrer_row(runtime).referrer_key
    staff = staff_client(app, "marketer")
    by_key = staff.get(f"/api/v1/campaigns/shop/referrers/{key}")
    assert by_key.status_code == 200
    assert by_key.json["counts"] == {"reached": 1, "clicked": 0, "converted": 0}
    assert by_key.json["rewards"] == {"earned": 0, "pending": 0, "approved": 0, "paid": 0, "rejected": 0}
    assert by_key.json["confirmed"] is False

    assert staff.get(f"/api/v1/campaigns/shop/referrers?contact={NUMBER}").status_code == 404
    confirm_number(client, page, transport)
    found = staff.get("/api/v1/campaigns/shop/referrers", query_string={"contact": "06 12345678"})
    assert found.status_code == 200
    assert (found.json["referrer_key"], found.json["confirmed_channel"]) == (key, "sms")
    assert NUMBER not in found.text

    bad = staff.get("/api/v1/campaigns/shop/referrers?contact=nonsense")
    assert bad.status_code == 400 and bad.mimetype == "application/problem+json"
    assert staff.get("/api/v1/campaigns/shop/referrers").status_code == 400
    assert staff.get("/api/v1/campaigns/shop/referrers/c:nobody").status_code == 404
    assert staff.get(f"/api/v1/campaigns/nope/referrers/{key}").status_code == 404
    assert app.test_client().get(f"/api/v1/campaigns/shop/referrers/{key}").status_code in (302, 401)


def test_the_page_and_its_code_speak_the_campaigns_language(
    app: Flask, runtime: Runtime, transport: MemoryTransport
) -> None:
    make_campaign(runtime.db, "koffie", policy_settings=WITH_INCENTIVES, locales=["nl"], address_form="formal")
    set_program(runtime.db, "koffie", ProgramSettings(True, "een koffie"))
    client = app.test_client()
    page = forward_and_open_page(client, "koffie")
    html = client.get(page).text
    assert "Vrienden bereikt" in html and "Uw beloningen" in html
    follow(client, page, NUMBER)
    assert "is uw code om uw beloningen te volgen" in transport.sms[-1].text
    wrong = enter(client, page, "000000" if text_code(transport) != "000000" else "111111")
    assert "Nog 4 pogingen" in visible_text(wrong.text)


def test_the_api_answers_odd_keys_and_contacts_with_4xx(app: Flask, runtime: Runtime, shop: str) -> None:
    forward_and_open_page(app.test_client(), shop)
    staff = staff_client(app, "marketer")
    for key in ("p:99999999999999999999", "p:\uff11\uff12", "c:" + "f" * 200, "a:", "x", "p:"):
        assert staff.get(f"/api/v1/campaigns/shop/referrers/{key}").status_code == 404, key
    assert staff.get("/api/v1/campaigns/sh%00op/referrers/x").status_code == 404
    assert staff.get("/api/v1/campaigns/sh%00op/referrers", query_string={"contact": NUMBER}).status_code == 404
    for contact in ("x" * 300, "+", "@", "\u200b", "a\x00@example.com"):
        answer = staff.get("/api/v1/campaigns/shop/referrers", query_string={"contact": contact})
        assert answer.status_code == 400 and answer.mimetype == "application/problem+json", contact


def test_compliance_staff_see_a_referrers_consent_as_for_rewards_only(
    app: Flask, runtime: Runtime, shop: str, transport: MemoryTransport
) -> None:
    client = app.test_client()
    confirm_number(client, forward_and_open_page(client, shop), transport)
    compliance = staff_client(app, "compliance")
    form = compliance.get("/compliance/contacts").text
    report = compliance.post(
        "/compliance/contacts", data={"csrf_token": csrf_token(form), "contact": NUMBER}, follow_redirects=True
    )
    assert report.status_code == 200
    assert 'data-purpose="rewards"' in report.text
    assert "about their own rewards only" in visible_text(report.text)


def test_confirmations_count_against_the_campaigns_message_budget(
    app: Flask, runtime: Runtime, transport: MemoryTransport
) -> None:
    make_campaign(runtime.db, "small", policy_settings=WITH_INCENTIVES, caps={"campaign_messages_per_day": 2})
    set_program(runtime.db, "small", ProgramSettings(True, "a coffee"))
    client = app.test_client()
    page = forward_and_open_page(client, "small")  # one friend: one of the day's two messages
    other = app.test_client()
    other_page = forward_and_open_page(other, "small", ("dan@example.com",))  # the second
    refused = follow(other, other_page, NUMBER)
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert transport.sms == []
    assert follow(client, page, ADDRESS).status_code == 429  # the same budget: nothing left today


def test_without_rewards_switched_on_no_contact_is_asked_for(
    app: Flask, runtime: Runtime, transport: MemoryTransport
) -> None:
    make_campaign(runtime.db, "plain", policy_settings=WITH_INCENTIVES)  # incentives allowed, rewards off
    client = app.test_client()
    page = forward_and_open_page(client, "plain")
    assert "Follow your rewards" not in client.get("/c/plain/thanks").text
    html = client.get(page).text
    assert counts(html) == {"reached": 1, "clicked": 0, "converted": 0}
    assert 'data-follow="off"' in html and 'id="follow-form"' not in html
    # A form posted all the same is refused: there is nothing to follow, so no contact is taken.
    token = csrf_token(client.get("/c/plain").text)
    forged = client.post(f"{page}/follow", data={"csrf_token": token, "contact": NUMBER})
    assert forged.status_code == 422 and "no rewards to follow" in visible_text(forged.text)
    assert transport.sms == []
