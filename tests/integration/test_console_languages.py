"""The staff console in the staff member's language and time zone: their own choice beats the
browser's, times are shown on their clock with the zone named, numbers and money are written
the way their language writes them, and a bad choice on the account page is refused whole."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine import create_app
from engine.clock import FixedClock
from engine.models import Campaign, Forward, OptOutAction, User
from engine.runtime import Runtime
from engine.services.contests import ContestDraft, save_contest
from engine.services.history import CLI, Actor, ActorKind
from engine.services.opt_out_log import OptOutRecord, append
from engine.services.variants import VariantInput, add_variant
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import US_CUSTOM_SMS, csrf_token, make_campaign, runtime_of, sign_in, staff_client, visible_text
from tests.integration.test_campaigns_console import edit_form

SUMMER = datetime(2026, 6, 3, 21, 30, tzinfo=UTC)  # 23:30 in Amsterdam (CEST, UTC+2)
WINTER = datetime(2026, 12, 3, 21, 30, tzinfo=UTC)  # 22:30 in Amsterdam (CET, UTC+1)


def forward_of(campaign: Campaign, public_id: str, parent: Forward | None, at: datetime) -> Forward:
    return Forward(
        public_id=public_id,
        campaign_id=campaign.id,
        parent_id=parent.id if parent else None,
        generation=parent.generation + 1 if parent else 1,
        channel="email",
        sender_name="Koffie",
        recipient_contact_hash=f"friend-{public_id}",
        policy_name="custom",
        policy_version=1,
        client_ip_hash="ip",
        created_at=at,
    )


def log_opt_out(runtime: Runtime, at: datetime, contact_hash: str = "a" * 64) -> None:
    with runtime.db.transaction() as session:
        append(session, OptOutRecord(contact_hash, "email", "friends", "link", OptOutAction.OPT_OUT), now=at)


def choose(client: FlaskClient, **values: str) -> tuple[int, str]:
    page = client.get("/account")
    answer = client.post("/account/preferences", data={"csrf_token": csrf_token(page.text), **values})
    return answer.status_code, answer.text


def stored_preferences(runtime: Runtime, email: str) -> tuple[str | None, str | None]:
    with runtime.db.reading() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        return user.locale, user.time_zone


# -- which language ----------------------------------------------------------------------------------


def test_the_console_answers_accept_language_until_the_member_chooses(app: Flask, runtime: Runtime) -> None:
    client = staff_client(app, "compliance")
    dutch = client.get("/console", headers={"Accept-Language": "nl-NL,nl;q=0.9,en;q=0.5"})
    assert '<html lang="nl"' in dutch.text
    assert "Campagnes" in visible_text(dutch.text) and "Afmelden" in visible_text(dutch.text)
    french = client.get("/compliance/opt-outs", headers={"Accept-Language": "fr-BE"})
    assert '<html lang="fr"' in french.text
    assert "Journal des désinscriptions" in visible_text(french.text)
    # A language Fluister has no catalog for: English.
    assert '<html lang="en"' in client.get("/console", headers={"Accept-Language": "de"}).text


def test_the_members_own_language_beats_the_browsers(app: Flask, runtime: Runtime) -> None:
    client = staff_client(app, "compliance")
    status, _ = choose(client, locale="fr", time_zone="")
    assert status == 303
    assert stored_preferences(runtime, "compliance@staff.example") == ("fr", None)
    page = client.get("/compliance/contacts", headers={"Accept-Language": "nl"})
    assert '<html lang="fr"' in page.text
    text = visible_text(page.text)
    assert "Rapport de contact" in text and "Afficher le rapport" in text
    # The confirmation is in the language just chosen.
    account = client.get("/account", headers={"Accept-Language": "nl"})
    assert "Enregistré. La console parle cette langue" in visible_text(account.text)
    # Back to the browser's language.
    assert choose(client, locale="", time_zone="")[0] == 303
    assert '<html lang="nl"' in client.get("/console", headers={"Accept-Language": "nl"}).text


def test_sign_in_pages_follow_the_browser(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/login", headers={"Accept-Language": "fr"})
    text = visible_text(page.text)
    assert "Se connecter" in text and "Adresse e-mail" in text and "Mot de passe" in text
    refused = client.post(
        "/login",
        data={"email": "nobody@staff.example", "password": "wrong password", "csrf_token": csrf_token(page.text)},
        headers={"Accept-Language": "nl"},
    )
    assert refused.status_code == 422
    assert "Dat e-mailadres en wachtwoord horen niet bij een account." in visible_text(refused.text)


# -- bad choices ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"locale": "de", "time_zone": "Europe/Berlin"}, "Choose one of the languages offered."),
        ({"locale": "nl", "time_zone": "Mars/Olympus_Mons"}, "Mars/Olympus_Mons is not a time zone."),
        ({"locale": "nl", "time_zone": "localtime"}, "localtime is not a time zone."),
        ({"locale": "nl", "time_zone": "../../etc/passwd"}, "../../etc/passwd is not a time zone."),
        ({"locale": "nl", "time_zone": "X" * 65}, "Field cannot be longer than 64 characters."),
    ],
)
def test_an_unknown_language_or_time_zone_is_refused_and_nothing_is_saved(
    app: Flask, runtime: Runtime, values: dict[str, str], message: str
) -> None:
    client = staff_client(app, "marketer")
    assert choose(client, locale="en", time_zone="Europe/Paris")[0] == 303
    status, page = choose(client, **values)
    assert status == 422
    assert message in visible_text(page)
    assert 'aria-invalid="true"' in page
    # Neither value changed, the valid one included.
    assert stored_preferences(runtime, "marketer@staff.example") == ("en", "Europe/Paris")


# -- time zones ------------------------------------------------------------------------------------------


def log_rows(page_html: str) -> list[str]:
    """The opt-out log's "when" cells, as read."""
    return [visible_text(cell) for cell in re.findall(r"<td><time[^>]*>.*?</time></td>", page_html)]


def test_times_are_shown_on_the_members_clock_across_summer_time(app: Flask, runtime: Runtime) -> None:
    log_opt_out(runtime, SUMMER)
    log_opt_out(runtime, WINTER, "b" * 64)
    client = staff_client(app, "compliance")
    assert choose(client, locale="en", time_zone="Europe/Amsterdam")[0] == 303
    page = client.get("/compliance/opt-outs").text
    assert "When (Europe/Amsterdam)" in visible_text(page)
    # Newest first: the winter one at 22:30 (UTC+1), the summer one at 23:30 (UTC+2).
    assert log_rows(page) == ["Dec 3, 2026, 10:30:00 PM", "Jun 3, 2026, 11:30:00 PM"]
    # The instant itself rides along, in UTC, for whoever copies it.
    assert '<time datetime="2026-06-03T21:30:00Z">' in page
    # The same log for someone in New York (EDT, UTC-4) reading Dutch.
    assert choose(client, locale="nl", time_zone="America/New_York")[0] == 303
    page = client.get("/compliance/opt-outs").text
    assert "Wanneer (America/New_York)" in visible_text(page)
    assert log_rows(page) == ["3 dec 2026, 16:30:00", "3 jun 2026, 17:30:00"]


def test_without_a_choice_times_are_in_the_installations_zone(
    database_url: str, settings_for, clock: FixedClock
) -> None:  # type: ignore[no-untyped-def]
    app = create_app(
        settings_for(database_url, default_time_zone="Europe/Brussels"),
        transports=Transports(email=MemoryTransport(), sms=MemoryTransport()),
        clock=clock,
    )
    try:
        log_opt_out(runtime_of(app), SUMMER)
        page = staff_client(app, "compliance").get("/compliance/opt-outs").text
        assert "When (Europe/Brussels)" in visible_text(page)
        assert log_rows(page) == ["Jun 3, 2026, 11:30:00 PM"]
    finally:
        runtime_of(app).db.dispose()


def test_the_logs_days_are_the_members_days(app: Flask, runtime: Runtime) -> None:
    # 23:30 on 3 June in Amsterdam is still 3 June there, though 21:30 UTC; 00:30 on 4 June
    # in Amsterdam (22:30 UTC on the 3rd) is the 4th there.
    log_opt_out(runtime, SUMMER)
    log_opt_out(runtime, datetime(2026, 6, 3, 22, 30, tzinfo=UTC), "b" * 64)
    client = staff_client(app, "compliance")
    assert choose(client, locale="en", time_zone="Europe/Amsterdam")[0] == 303
    june_3 = client.get("/compliance/opt-outs?from=2026-06-03&to=2026-06-03").text
    assert log_rows(june_3) == ["Jun 3, 2026, 11:30:00 PM"]
    june_4 = client.get("/compliance/opt-outs?from=2026-06-04&to=2026-06-04").text
    assert log_rows(june_4) == ["Jun 4, 2026, 12:30:00 AM"]
    # The CSV export stays in UTC whatever the reader's zone.
    export = client.get("/compliance/opt-outs.csv?from=2026-06-04&to=2026-06-04").text
    assert "2026-06-03T22:30:00+00:00" in export and "2026-06-03T21:30:00" not in export


def test_a_campaigns_start_is_typed_and_shown_on_the_members_clock(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "spring")
    client = staff_client(app, "marketer")
    assert choose(client, locale="en", time_zone="Europe/Amsterdam")[0] == 303
    form = client.get("/console/campaigns/spring/edit")
    assert "Starts (Europe/Amsterdam, optional)" in visible_text(form.text)
    fields = edit_form(client, "spring", starts_at="2026-07-01T09:00")
    assert client.post("/console/campaigns/spring/edit", data=fields).status_code == 303
    with runtime.db.reading() as session:
        starts_at = session.scalars(select(Campaign.starts_at).where(Campaign.slug == "spring")).one()
    # 09:00 in Amsterdam in July is 07:00 UTC.
    assert starts_at is not None and starts_at.astimezone(UTC) == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    overview = visible_text(client.get("/console/campaigns/spring").text)
    assert "Runs (Europe/Amsterdam) Jul 1, 2026, 9:00 AM" in overview


# -- numbers and money ---------------------------------------------------------------------------------------


def test_sms_cost_is_in_the_configured_currency_written_for_the_reader(
    database_url: str, settings_for, clock: FixedClock
) -> None:  # type: ignore[no-untyped-def]
    app = create_app(
        settings_for(database_url, sms_price_currency="EUR", sms_price_per_segment=Decimal("0.0725")),
        transports=Transports(email=MemoryTransport(), sms=MemoryTransport()),
        clock=clock,
    )
    try:
        make_campaign(runtime_of(app).db, "spring")
        client = staff_client(app, "marketer")

        def cost(language: str) -> tuple[str, str, str]:
            """The amount (as digits, and with a decimal comma) and how the page writes it."""
            page = client.get("/console/campaigns/spring/preview", headers={"Accept-Language": language}).text
            found = re.search(
                r'data-figure="segments">(\d+)<.*data-figure="cost" data-amount="([^"]+)"[^>]*>([^<]*)<',
                page,
                re.DOTALL,
            )
            assert found is not None
            segments, amount, shown = found.groups()
            assert Decimal(amount) == Decimal("0.0725") * int(segments)
            digits = amount.rstrip("0")
            return digits, digits.replace(".", ","), html.unescape(shown).replace("\xa0", " ").replace("\u202f", " ")

        digits, _, shown = cost("en")
        assert shown == f"€{digits}"
        digits, comma, shown = cost("nl")
        assert shown == f"€ {comma}"
        digits, comma, shown = cost("fr")
        assert shown == f"{comma} €"
    finally:
        runtime_of(app).db.dispose()


def test_dashboard_figures_are_written_the_way_the_readers_language_writes_them(app: Flask, runtime: Runtime) -> None:
    from engine.web.console.formats import money, number, percent

    with app.test_request_context(headers={"Accept-Language": "fr"}):
        assert number(1234567).replace("\u202f", " ") == "1 234 567"
        assert percent(0.125).replace("\u202f", " ").replace("\xa0", " ") == "12,5 %"
        assert number(1.5, 2) == "1,50"
        assert money(Decimal("1234.5"), "USD").replace("\u202f", " ").replace("\xa0", " ") == "1 234,50 $US"
    with app.test_request_context(headers={"Accept-Language": "nl"}):
        assert number(1234567) == "1.234.567"
        assert percent(0.125) == "12,5%"
        assert percent(None) == "—"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert number(1234567) == "1,234,567" and percent(0.125) == "12.5%"


# -- the pseudo-locale: no page may show text that skipped the catalogs ------------------------------------


@pytest.fixture
def pseudo_app(database_url: str, settings_for, clock: FixedClock) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    app = create_app(
        settings_for(database_url, pseudo_locale=True),
        transports=Transports(email=MemoryTransport(), sms=MemoryTransport()),
        clock=clock,
    )
    yield app
    runtime_of(app).db.dispose()


# What a page may show untranslated: data (names, slugs, codes, addresses, numbers, dates, hashes),
# the product's name, and the codes that name a value in the records and in filters (a status,
# a channel, a policy), which are the same in every language.
DATA_WORDS = frozenset(
    # Names from the test's records and the product's.
    "Fluister Acme Zomeractie Koffiekorting Koffie Koffiestraat Amsterdam spring herfst prijs default"
    # Roles, statuses, channels, policies, coupon modes, scopes, sources, actions: codes.
    " admin marketer compliance active draft paused ended email sms whatsapp us eu-strict share-only custom"
    " none pool generated campaign friends link one-click keyword stop start bounce spam-report manual"
    " erase-request undo opt-out opt-in created edited status cli variants plain story quiz Verhaal"
    # Each language named in itself; units, formats and header names.
    " WhatsApp English Nederlands Français K CSV JSON UTC KiB GSM-7 UCS-2 px"
    " To From Subject Sender Reply-To List-Unsubscribe List-Unsubscribe-Post Message-ID Content-Language"
    # Signs between figures.
    " # \u00b7 \u2014 \u2013 \u2192".split()
)
DATA_PATTERN = re.compile(
    r"[\w.+-]+@[\w.-]+"  # addresses
    r"|[0-9a-f]{12,}…?"  # hashes
    r"|https?://\S+"
    r"|[A-Z0-9]{16,}"  # a TOTP secret
    r"|otpauth://\S+"
    r"|[\d.,:/%+()T-]+"  # numbers, dates, times (ISO-8601 too)
    r"|[$€][\d.,]+|[A-Z]{2}"  # an amount; a region
    r"|[A-Z][a-z]+/[A-Za-z_]+"  # a time zone
    r"|\S*example\S*"
)


def untranslated(page_html: str, also: set[str] = frozenset()) -> list[str]:
    """Words a person reads (text, titles, labels in attributes) that went through no catalog."""
    # Shown as they are, in every language: code and data (<code>, <pre>, anything marked
    # translate="no"), times and dates Babel wrote (<time>), frames of campaign content, what
    # someone typed (<textarea>).
    body = re.sub(r"<(script|style|datalist|code|pre|time|iframe|textarea)\b.*?</\1>", " ", page_html, flags=re.DOTALL)
    body = re.sub(r'<(\w+)[^>]*\btranslate="no"[^>]*>.*?</\1>', " ", body, flags=re.DOTALL)
    attributes = re.findall(r'(?:title|placeholder|aria-label)="([^"]*)"', body)
    text = " ".join([visible_text(body), *(html.unescape(a) for a in attributes)])
    # Characters a message names as data ("⟦", "é": why a text needs UCS-2) are no words, and
    # a quoted "⟦" would unbalance the brackets below.
    text = re.sub(r'"[^"\s]"', " ", text)
    # Pseudo-translated strings, innermost first (one may hold another as a variable).
    while True:
        stripped = re.sub(r"⟦[^⟦⟧]*⟧", " ", text)
        if stripped == text:
            break
        text = stripped
    words = [w.strip(".,:;()[]\"'") for w in text.split()]
    return [w for w in words if w and w not in DATA_WORDS | also and not DATA_PATTERN.fullmatch(w)]


def test_every_console_page_goes_through_the_catalogs(pseudo_app: Flask) -> None:
    runtime = runtime_of(pseudo_app)
    # Campaign content in words no page text has: it is the brand's, and shown as it is.
    spring = make_campaign(
        runtime.db,
        "spring",
        name="Zomeractie",
        offer_title="Koffiekorting",
        offer_description="Koffie.",
        postal_address="Koffiestraat 1, Amsterdam",
    )
    # A forward forwarded on, so that the dashboard draws its charts and the forward has a tree.
    with runtime.db.transaction() as session:
        first = forward_of(spring, "0123456789abcdef", None, SUMMER - timedelta(days=20))
        session.add(first)
        session.flush()
        session.add(forward_of(spring, "0123456789abcde1", first, SUMMER - timedelta(days=19)))
    # A draft that activation would refuse: the overview lists why.
    make_campaign(
        runtime.db,
        "herfst",
        name="Zomeractie",
        offer_title="Koffiekorting",
        offer_description="Koffie.",
        postal_address="Koffiestraat 1, Amsterdam",
        status="draft",
        sender_email="",
        ends_at=SUMMER,
    )
    log_opt_out(runtime, SUMMER)
    # A campaign that may run a contest, with one set up: the page shows it and its form.
    make_campaign(
        runtime.db,
        "prijs",
        name="Zomeractie",
        offer_title="Koffiekorting",
        offer_description="Koffie.",
        postal_address="Koffiestraat 1, Amsterdam",
        policy_settings={**US_CUSTOM_SMS, "incentives": True},
    )
    start = datetime(2026, 7, 1, 12, 0)
    contest = ContestDraft(
        "Koffiekorting", "Koffie. " * 20, "friends-reached", start, start + timedelta(days=7), "UTC", ("Koffie",)
    )
    save_contest(runtime.db, "prijs", contest, Actor("ops", ActorKind.CLI), datetime(2026, 6, 1, tzinfo=UTC))
    add_variant(runtime.db, "spring", VariantInput("Verhaal", 1, "story"), CLI)
    quiz = VariantInput(
        "Koffie", 1, "quiz", quiz_question="Koffie?", quiz_answers=("Koffie", "Zomeractie"), quiz_correct=1
    )
    add_variant(runtime.db, "spring", quiz, CLI)
    admin = staff_client(pseudo_app, "admin")
    runtime.staff.create_user("second@staff.example", "compliance", "a long enough password 1")
    # An entry with the request's detail, and a member with two-factor sign-in (a button to turn it off).
    with runtime.db.transaction() as session:
        detail = {"client_ip_hash": "b" * 64, "user_agent": "Mozilla/5.0"}
        append(session, OptOutRecord("a" * 64, "email", "global", "one-click", OptOutAction.OPT_OUT, detail=detail))
    guarded = runtime.staff.create_user("guarded@staff.example", "marketer", "a long enough password 3")
    guarded_secret = pyotp.random_base32()
    assert runtime.staff.confirm_totp(guarded.id, guarded_secret, pyotp.TOTP(guarded_secret).now())
    pages = {
        "/console": 200,
        "/console?q=nothing-like-it": 200,
        "/console?status=archived": 200,
        "/console/campaigns/new": 200,
        "/console/campaigns/spring/duplicate": 200,
        "/console/campaigns/spring": 200,
        "/console/campaigns/herfst": 200,
        "/console/campaigns/spring/edit": 200,
        "/console/campaigns/spring/usage": 200,
        "/console/campaigns/spring/templates": 200,
        "/console/campaigns/spring/share-card": 200,
        "/console/campaigns/spring/contests": 200,
        "/console/campaigns/prijs/contests": 200,
        "/console/campaigns/spring/logo": 200,
        "/console/campaigns/spring/variants": 200,
        "/console/campaigns/spring/variants/a": 200,
        "/console/campaigns/spring/variants/b": 200,
        "/console/campaigns/spring/preview": 200,
        "/console/campaigns/spring/coupons": 200,
        "/console/campaigns/spring/rewards": 200,
        "/console/campaigns/spring/dashboard": 200,
        "/console/campaigns/spring/forwards/0123456789abcdef": 200,
        "/console/webhooks": 200,
        "/console/users": 200,
        "/console/api-keys": 200,
        "/console/messages/unknown": 200,
        "/compliance/opt-outs": 200,
        "/compliance/opt-outs/1": 200,
        "/compliance/opt-outs/2": 200,
        "/compliance/contacts": 200,
        f"/compliance/contacts/{'a' * 64}": 200,
        "/account": 200,
        "/account/two-factor": 200,
    }
    leaks: dict[str, list[str]] = {}
    for path, status in pages.items():
        page = admin.get(path)
        assert page.status_code == status, path
        found = untranslated(page.text)
        if found:
            leaks[path] = found
    # The answers to the admin's forms: a first password or a key shown once, refusals beside their fields.
    answers = {
        "/console/users": [
            {"email": "new@staff.example", "role": "marketer", "team": "default"},
            {"email": "not an address", "role": "owner", "team": "No Team"},
        ],
        "/console/api-keys": [
            {"name": "shop", "role": "marketer", "scopes": "redemptions", "team": "default"},
            {"name": "", "role": "compliance", "scopes": "rewards", "team": "No Team"},
        ],
    }
    for path, forms in answers.items():
        for form in forms:
            answer = admin.post(path, data={"csrf_token": csrf_token(admin.get(path).text), **form})
            assert answer.status_code in (201, 422), path
            if untranslated(answer.text):
                leaks[f"POST {path} {form}"] = untranslated(answer.text)
    # The draft's blockers were on its page (and so went through the catalogs too).
    assert '<ul class="errors blockers"><li>' in admin.get("/console/campaigns/herfst").text
    visitor = pseudo_app.test_client()
    login = visitor.get("/login").text
    if untranslated(login):
        leaks["/login"] = untranslated(login)
    # The second step of a sign-in with two-factor codes.
    member = runtime.staff.create_user("twofactor@staff.example", "marketer", "a long enough password 2")
    secret = pyotp.random_base32()
    assert runtime.staff.confirm_totp(member.id, secret, pyotp.TOTP(secret).now())
    assert sign_in(visitor, "twofactor@staff.example", "a long enough password 2").status_code == 303
    code_page = visitor.get("/login/code")
    assert code_page.status_code == 200
    if untranslated(code_page.text):
        leaks["/login/code"] = untranslated(code_page.text)
    assert not leaks, f"text that skipped the catalogs: {leaks}"


def test_the_pseudo_check_finds_untranslated_text(pseudo_app: Flask) -> None:
    # The check itself: a page with one plain English sentence fails it.
    assert untranslated("<p>⟦Šîĝñ îñ⟧ <code>flask users create</code></p>") == []
    assert untranslated("<p>⟦Šîĝñ îñ⟧ Sign in</p>") == ["Sign", "in"]
    assert untranslated('<input placeholder="e-mail address">') == ["e-mail", "address"]


def test_password_refusals_are_in_the_members_language_beside_their_field(app: Flask, runtime: Runtime) -> None:
    client = staff_client(app, "marketer")
    assert choose(client, locale="nl", time_zone="")[0] == 303
    page = client.get("/account")

    def change(current: str, new: str) -> str:
        data = {"current": current, "new": new, "repeat": new, "csrf_token": csrf_token(page.text)}
        answer = client.post("/account/password", data=data)
        assert answer.status_code == 422
        return answer.text

    short = change("correct horse battery staple", "kort")
    beside = r'name="{}"[^>]*>\s*<ul class="errors"><li>{}'
    assert re.search(beside.format("new", r"Het wachtwoord moet minstens 12 tekens lang zijn\."), short)
    wrong = change("not the password at all", "a much longer new password 7")
    assert re.search(beside.format("current", r"Het huidige wachtwoord klopt niet\."), wrong)
