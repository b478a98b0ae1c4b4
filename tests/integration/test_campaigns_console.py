"""The console's campaign pages on SQLite and PostgreSQL: create and edit with field errors,
status buttons with their refusals, rollbacks, the history, and who may do what."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine import create_app
from engine.models import Campaign, CampaignEvent, CampaignTemplate
from engine.queue import QueueUnavailable
from engine.runtime import Runtime
from engine.services.campaigns import CampaignDraft, ChangeRefused, create_campaign
from engine.services.history import CLI
from engine.services.templates import upload_templates
from tests.helpers import (
    csrf_token,
    form_values,
    make_campaign,
    runtime_of,
    staff_client,
    statuses,
    submission,
    visible_text,
)

GOOD_TEXT = (
    "{{ sender_name }} sent you {{ offer_title }} (uploaded text part): {{ link }}\n"
    "Unsubscribe: {{ unsubscribe_link }}\n{{ brand_name }}, {{ postal_address }}\n"
)


def new_campaign_form(client: FlaskClient, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "csrf_token": csrf_token(client.get("/console/campaigns/new").text),
        "slug": "spring",
        "name": "Spring",
        "offer_title": "Ten percent off",
        "offer_description": "Ten percent off your first order.",
        "brand_name": "Acme",
        "sender_email": "offers@acme.example",
        "postal_address": "1 Main St, Springfield",
        "support_contact": "help@acme.example",
        "channels": ["email"],
        "policy_name": "us",
        "policy_rules": "",
        "policy_justification": "",
        "caps": "",
        "max_friends_per_submission": "5",
        "sms_segment_limit": "3",
        "sms_smart_encoding": "y",
        "coupon_mode": "none",
        "starts_at": "",
        "ends_at": "",
    }
    data.update(changes)
    return data


def edit_form(client: FlaskClient, slug: str = "spring", **changes: Any) -> dict[str, Any]:
    """The edit form as the page fills it in, with some fields changed."""
    page = client.get(f"/console/campaigns/{slug}/edit")
    assert page.status_code == 200
    unticked = ("channels", "sms_smart_encoding")
    data: dict[str, Any] = {name: found[0] for name, found in form_values(page.text).items() if name not in unticked}
    data["channels"] = _ticked(page.text, "channels")
    data.update({"sms_smart_encoding": "y"} if _ticked(page.text, "sms_smart_encoding") else {})
    data["policy_name"] = _ticked(page.text, "policy_name")[0]
    data["coupon_mode"] = _selected(page.text, "coupon_mode")
    data["address_form"] = _selected(page.text, "address_form")
    data.update(changes)
    return data


def _ticked(html: str, name: str) -> list[str]:
    tags = re.findall(rf'<input[^>]*name="{name}"[^>]*>', html)
    return [re.search(r'value="([^"]*)"', tag).group(1) for tag in tags if " checked" in tag]  # type: ignore[union-attr]


def _selected(html: str, name: str) -> str:
    select = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', html, re.DOTALL)
    assert select
    chosen = re.search(r'<option[^>]*\bselected\b[^>]*value="([^"]*)"', select.group(1))
    assert chosen, f"nothing selected in {name}"
    return chosen.group(1)


def history(runtime: Runtime) -> list[tuple[str, str]]:
    with runtime.db.reading() as session:
        return [(e.actor, e.action) for e in session.scalars(select(CampaignEvent).order_by(CampaignEvent.id))]


# -- create ------------------------------------------------------------------------------------------


def test_a_marketer_creates_a_draft_and_sees_it(app: Flask, runtime: Runtime) -> None:
    client = staff_client(app, "marketer")
    home = client.get("/console")
    assert "/console/campaigns/new" in home.text
    created = client.post("/console/campaigns/new", data=new_campaign_form(client))
    assert created.status_code == 303 and created.headers["Location"].endswith("/console/campaigns/spring")
    page = client.get("/console/campaigns/spring")
    text = visible_text(page.text)
    assert "Campaign spring created, in draft." in text
    assert "Status: draft" in text and "Activate" in text and "End for good" in text
    assert "marketer@staff.example created" in text
    assert history(runtime) == [("marketer@staff.example", "created")]
    assert 'href="/console/campaigns/spring"' in client.get("/console").text


def test_field_errors_come_back_with_422_and_nothing_is_stored(app: Flask, runtime: Runtime) -> None:
    client = staff_client(app, "marketer")
    refused = client.post(
        "/console/campaigns/new",
        data=new_campaign_form(
            client,
            slug="Spring Sale",
            sender_email="nope",
            channels=[],
            cap_friends_per_sender_per_day="three",
            max_friends_per_submission="99",
            policy_name="eu-strict",
            coupon_mode="pool",
            starts_at="2027-02-01T00:00",
            ends_at="2027-01-01T00:00",
        ),
    )
    assert refused.status_code == 422
    text = visible_text(refused.text)
    for problem in [
        "1 to 64 lower-case letters",
        "Choose at least one channel.",
        "Not a number: type a whole number such as 20",
        "A whole number from 1 to 50.",
        "and the eu-strict policy allows none",
        "The end must come after the start.",
    ]:
        assert problem in text, problem
    assert refused.text.count('aria-invalid="true"') >= 6
    assert form_values(refused.text)["offer_title"] == ["Ten percent off"]  # kept as typed
    with runtime.db.reading() as session:
        assert session.scalar(select(Campaign.id)) is None


def test_a_custom_policy_needs_an_admin_and_a_justification(app: Flask, runtime: Runtime) -> None:
    marketer = staff_client(app, "marketer")
    custom = {
        "policy_name": "custom",
        "policy_version": "1",
        "policy_channel_email": "allowed",
        "policy_channel_sms": "never",
        "policy_incentives": "y",
        "policy_retention": "nothing",
        "policy_retention_days": "0",
        "policy_sms_from": "8",
        "policy_sms_until": "21",
        "policy_justification": "Signed off by legal, ticket 7.",
    }
    refused = marketer.post("/console/campaigns/new", data=new_campaign_form(marketer, **custom))
    assert refused.status_code == 422 and "only an admin may set a custom consent policy" in refused.text
    admin = staff_client(app, "admin")
    short = admin.post(
        "/console/campaigns/new", data=new_campaign_form(admin, **{**custom, "policy_justification": "ok"})
    )
    assert short.status_code == 422 and "written justification of 20 characters" in short.text
    assert admin.post("/console/campaigns/new", data=new_campaign_form(admin, **custom)).status_code == 303
    with runtime.db.reading() as session:
        settings = session.scalar(select(Campaign.policy_settings))
    assert settings["justification"] == "Signed off by legal, ticket 7." and settings["retention"] == "nothing"


def test_the_forms_need_their_csrf_token(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db)
    client = staff_client(app, "marketer")
    data = new_campaign_form(client, slug="other")
    del data["csrf_token"]
    assert client.post("/console/campaigns/new", data=data).status_code == 400
    assert client.post("/console/campaigns/spring/status", data={"status": "paused"}).status_code == 400
    assert (
        client.post("/console/campaigns/spring/templates/email.txt/rollback", data={"version": "1"}).status_code == 400
    )


# -- edit -------------------------------------------------------------------------------------------


def test_an_edit_shows_up_in_the_history_old_and_new(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, policy_name="us", policy_settings={})
    client = staff_client(app, "marketer")
    form = edit_form(client)
    assert form["offer_title"] == "Ten percent off" and form["channels"] == ["email", "sms"]
    saved = client.post("/console/campaigns/spring/edit", data={**form, "offer_title": "Twenty percent off"})
    assert saved.status_code == 303, visible_text(saved.text)
    text = visible_text(client.get("/console/campaigns/spring").text)
    assert "Saved: offer_title." in text
    assert "offer_title : Ten percent off → Twenty percent off" in text
    # The slug of a campaign that has been live is fixed.
    renamed = client.post("/console/campaigns/spring/edit", data={**edit_form(client), "slug": "autumn"})
    assert renamed.status_code == 422 and "slug cannot change" in renamed.text
    invalid = client.post("/console/campaigns/spring/edit", data={**edit_form(client), "sms_segment_limit": "0"})
    assert invalid.status_code == 422 and "A whole number from 1 to 10." in invalid.text
    assert client.get("/console/campaigns/nope/edit").status_code == 404


# -- status ----------------------------------------------------------------------------------------


def test_the_status_buttons_change_it_and_refusals_are_listed(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, policy_name="us", policy_settings={}, status="draft", postal_address="")
    client = staff_client(app, "marketer")
    page = client.get("/console/campaigns/spring")
    assert "Activation would be refused until these are fixed" in page.text
    assert 'value="paused"' not in page.text  # only the allowed transitions are offered
    token = csrf_token(page.text)
    refused = client.post("/console/campaigns/spring/status", data={"csrf_token": token, "status": "active"})
    assert refused.status_code == 422
    assert "a postal address is needed: the us policy requires it in every email" in visible_text(refused.text)
    wrong = client.post("/console/campaigns/spring/status", data={"csrf_token": token, "status": "paused"})
    assert wrong.status_code == 422 and "cannot become paused" in wrong.text
    ended = client.post(
        "/console/campaigns/spring/status",
        data={"csrf_token": token, "status": "ended", "reason": "never mind", "confirm": "spring"},
    )
    assert ended.status_code == 303
    text = visible_text(client.get("/console/campaigns/spring").text)
    assert "Status: ended" in text and "An ended campaign never comes back." in text
    assert "status changed status : draft → ended never mind" in text


def test_ending_for_good_asks_for_the_slug_typed_and_a_reason(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db)
    client = staff_client(app, "marketer")
    page = client.get("/console/campaigns/spring").text
    # Not a button beside Pause: a folded form of its own.
    assert 'name="status" value="ended"' not in page.split("danger-zone")[0]
    assert "End this campaign for good" in page
    token = csrf_token(page)

    for typed, reason, missing in [
        ("", "done", "Type spring exactly to end the campaign."),
        ("Spring ", "done", "Type spring exactly to end the campaign."),
        ("spring", "  ", "Say why the campaign ends: the history keeps it."),
    ]:
        refused = client.post(
            "/console/campaigns/spring/status",
            data={"csrf_token": token, "status": "ended", "reason": reason, "confirm": typed},
        )
        assert refused.status_code == 422
        assert missing in visible_text(refused.text)
        assert '<details class="danger-zone" open>' in refused.text  # the form stays open with its errors
        assert app.test_client().get("/c/spring").status_code == 200  # still running

    ended = client.post(
        "/console/campaigns/spring/status",
        data={"csrf_token": token, "status": "ended", "reason": "the coffee ran out", "confirm": "spring"},
    )
    assert ended.status_code == 303
    assert app.test_client().get("/c/spring").status_code == 410
    assert "the coffee ran out" in visible_text(client.get("/console/campaigns/spring").text)


def test_pause_and_resume_from_the_console(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db)
    client = staff_client(app, "admin")
    token = csrf_token(client.get("/console/campaigns/spring").text)
    post = {"csrf_token": token, "status": "paused", "reason": "checking the copy"}
    assert client.post("/console/campaigns/spring/status", data=post).status_code == 303
    assert app.test_client().get("/c/spring").status_code == 404
    page = client.get("/console/campaigns/spring").text
    assert "Resume" in page and "checking the copy" in page
    post = {"csrf_token": token, "status": "active"}
    assert client.post("/console/campaigns/spring/status", data=post).status_code == 303
    assert app.test_client().get("/c/spring").status_code == 200


def test_resuming_while_redis_is_down_says_the_sweeper_will_send(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db)
    client = staff_client(app, "admin")
    token = csrf_token(client.get("/console/campaigns/spring").text)
    post = {"csrf_token": token, "status": "paused", "reason": "checking the copy"}
    assert client.post("/console/campaigns/spring/status", data=post).status_code == 303

    def redis_gone(*, extra: bool = False) -> bool:
        raise QueueUnavailable("could not ask for a dispatch: Connection refused")

    runtime.queue.request_dispatch = redis_gone  # type: ignore[method-assign]
    resumed = client.post("/console/campaigns/spring/status", data={"csrf_token": token, "status": "active"})
    assert resumed.status_code == 303
    text = visible_text(client.get("/console/campaigns/spring").text)
    assert "The campaign is active now." in text and "the sweeper sends what waited once it is back" in text
    assert app.test_client().get("/c/spring").status_code == 200


# -- templates -----------------------------------------------------------------------------------------


def test_a_rollback_from_the_overview(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, policy_name="us", policy_settings={})
    assert upload_templates(runtime.db, runtime.renderer, "spring", {"email.txt": GOOD_TEXT.encode()}).accepted
    client = staff_client(app, "marketer")
    page = client.get("/console/campaigns/spring")
    assert "Roll back to version 1" in page.text and "Roll back to version 2" not in page.text
    token = csrf_token(page.text)
    rolled = client.post(
        "/console/campaigns/spring/templates/email.txt/rollback", data={"csrf_token": token, "version": "1"}
    )
    assert rolled.status_code == 303
    text = visible_text(client.get("/console/campaigns/spring").text)
    assert "email.txt: version 3 stored, a copy of version 1." in text
    assert "marketer@staff.example template rolled back email.txt : 2 → 3" in text
    with runtime.db.reading() as session:
        versions = session.scalars(select(CampaignTemplate.version).where(CampaignTemplate.name == "email.txt"))
        assert sorted(versions) == [1, 2, 3]
    again = client.post(
        "/console/campaigns/spring/templates/email.txt/rollback", data={"csrf_token": token, "version": "3"}
    )
    assert again.status_code == 422 and "already the current one" in again.text


def test_uploads_in_the_console_name_the_uploader_in_the_history(app: Flask, runtime: Runtime) -> None:
    import io

    make_campaign(runtime.db, policy_name="us", policy_settings={})
    client = staff_client(app, "marketer")
    page = client.get("/console/campaigns/spring/templates")
    data = {"csrf_token": csrf_token(page.text), "files": [(io.BytesIO(GOOD_TEXT.encode()), "email.txt")]}
    assert client.post("/console/campaigns/spring/templates", data=data).status_code == 303
    assert history(runtime) == [("marketer@staff.example", "templates uploaded")]


# -- who may do what ---------------------------------------------------------------------------------


def test_compliance_reads_the_overview_but_changes_nothing(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db)
    client = staff_client(app, "compliance")
    page = client.get("/console/campaigns/spring")
    assert page.status_code == 200 and "History" in page.text
    assert "/console/campaigns/spring/edit" not in page.text and "Roll back" not in page.text
    assert 'name="status"' not in page.text
    token = csrf_token(page.text)  # the sign-out form's
    assert client.get("/console/campaigns/new").status_code == 403
    assert client.get("/console/campaigns/spring/edit").status_code == 403
    assert (
        client.post("/console/campaigns/spring/status", data={"csrf_token": token, "status": "paused"}).status_code
        == 403
    )
    rollback = client.post(
        "/console/campaigns/spring/templates/sms.txt/rollback", data={"csrf_token": token, "version": "1"}
    )
    assert rollback.status_code == 403
    signed_out = app.test_client().get("/console/campaigns/spring")
    assert signed_out.status_code == 302 and "/login" in signed_out.headers["Location"]
    assert client.get("/console/campaigns/nope").status_code == 404


def test_an_email_only_installation_offers_no_texts_and_refuses_a_campaign_with_them(
    database_url: str, settings_for, clock
) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings_for(database_url, sms_transport="none"), clock=clock)
    runtime = runtime_of(app)
    client = staff_client(app, "marketer")
    page = client.get("/console/campaigns/new").text
    assert 'value="email"' in page and 'value="sms"' not in page

    refused = client.post("/console/campaigns/new", data=new_campaign_form(client, channels=["email", "sms"]))
    assert refused.status_code == 422
    with runtime.db.reading() as session:
        assert session.scalars(select(Campaign)).all() == []
    # The service refuses it too, whoever asks.
    with pytest.raises(ChangeRefused, match="no transport for sms"):
        create_campaign(
            runtime.db,
            CampaignDraft(
                slug="spring", name="Spring", offer_title="Off", brand_name="Acme", channels=("email", "sms")
            ),
            CLI,
            channels_without_transport=runtime.settings.channels_without_transport,
        )
    created = client.post("/console/campaigns/new", data=new_campaign_form(client, channels=["email"]))
    assert created.status_code == 303
    # A text of a campaign that had them before the switch is not lost: it waits, and its campaign
    # stops sending until a person has looked, saying why.
    make_campaign(runtime.db, "texts")
    receipt = runtime.forwarding.submit("texts", submission("06 12345678"))
    runtime.queue.drain()
    assert statuses(runtime.db) == {receipt.message_ids[0]: "queued"}
    with runtime.db.reading() as session:
        texts = session.scalars(select(Campaign).where(Campaign.slug == "texts")).one()
        assert texts.status == "paused" and "no transport is configured for text messages" in (
            texts.status_reason or ""
        )
    runtime.db.dispose()


def test_a_campaigns_languages_and_phone_regions_are_checked_and_stored(app: Flask, runtime: Runtime) -> None:
    client = staff_client(app, "marketer")
    refused = client.post(
        "/console/campaigns/new",
        data=new_campaign_form(client, locales="nl, de", phone_region="XX", extra_phone_regions="be, Q1"),
    )
    assert refused.status_code == 422
    text = visible_text(refused.text)
    assert "no translation for 'de'" in text
    assert "'XX' is not a region phone numbers are known for" in text
    assert "'Q1' is not a region phone numbers are known for" in text
    with runtime.db.reading() as session:
        assert session.scalar(select(Campaign.id)) is None

    created = client.post(
        "/console/campaigns/new",
        data=new_campaign_form(
            client, locales="NL-be, fr", address_form="formal", phone_region="be", extra_phone_regions="nl"
        ),
    )
    assert created.status_code == 303
    with runtime.db.reading() as session:
        campaign = session.scalars(select(Campaign)).one()
        assert campaign.locales == ["nl", "fr"]
        assert (campaign.address_form, campaign.phone_region, campaign.extra_phone_regions) == ("formal", "BE", ["NL"])
    # The edit form shows them as stored, and keeps them when sent back unchanged.
    assert form_values(client.get("/console/campaigns/spring/edit").text)["locales"] == ["nl, fr"]
    assert client.post("/console/campaigns/spring/edit", data=edit_form(client)).status_code == 303
    with runtime.db.reading() as session:
        kept = session.scalars(select(Campaign)).one()
        assert (kept.locales, kept.address_form, kept.phone_region) == (["nl", "fr"], "formal", "BE")


def test_the_sites_that_may_embed_a_campaign_are_checked_and_stored(app: Flask, runtime: Runtime) -> None:
    client = staff_client(app, "marketer")
    for typed, says in [
        ("https://shop.example/winkel", "'https://shop.example/winkel' is not an origin"),
        ("https://*.shop.example", "no wildcards"),
        ("http://shop.example", "use https:// (plain http only for localhost and 127.0.0.1)"),
        ("https://shop.example\nhttps://SHOP.example:443", "'https://shop.example' is listed twice"),
    ]:
        refused = client.post("/console/campaigns/new", data=new_campaign_form(client, embed_origins=typed))
        assert refused.status_code == 422, typed
        assert says in visible_text(refused.text), typed
    with runtime.db.reading() as session:
        assert session.scalar(select(Campaign.id)) is None

    typed = "https://Shop.Example:443/\nhttp://localhost:8080"
    created = client.post("/console/campaigns/new", data=new_campaign_form(client, embed_origins=typed))
    assert created.status_code == 303
    with runtime.db.reading() as session:
        assert session.scalars(select(Campaign)).one().embed_origins == [
            "https://shop.example",
            "http://localhost:8080",
        ]
    shown = form_values(client.get("/console/campaigns/spring/edit").text)["embed_origins"]
    assert shown == ["https://shop.example\nhttp://localhost:8080"]
    # The overview lists them, with the line to put on those sites.
    overview = visible_text(client.get("/console/campaigns/spring").text)
    assert "Sites that may embed it https://shop.example, http://localhost:8080" in overview
    assert '<script src="http://localhost/embed.js" data-fluister-campaign="spring" async></script>' in overview
