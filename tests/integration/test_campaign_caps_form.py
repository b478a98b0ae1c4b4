"""The campaign form's caps and custom-policy fields, the admins' JSON, the policies explained
beside their choice, and the live cap usage page."""

from __future__ import annotations

import re

from flask import Flask
from sqlalchemy import select

from engine.caps import CapSettings, CapsUnavailable, submission_rules
from engine.models import Campaign
from engine.policy import BUILT_IN
from engine.runtime import Runtime
from engine.services.campaign_guides import CAP_GUIDES, explain_policy
from tests.helpers import form_values, make_campaign, staff_client, visible_text
from tests.integration.test_campaigns_console import edit_form, new_campaign_form


def stored_caps(runtime: Runtime, slug: str = "spring") -> dict[str, int | None]:
    with runtime.db.reading() as session:
        return dict(session.scalar(select(Campaign.caps).where(Campaign.slug == slug)) or {})


def errors_beside(html: str, field: str) -> list[str]:
    """The errors listed right after a field's own input (what the reader sees beside it)."""
    found = re.search(
        rf'<input[^>]*name="{field}"[^>]*>(.*?)(?=<label|</div>\s*<div class="cap"|</fieldset>)', html, re.S
    )
    assert found, field
    return [visible_text(e) for e in re.findall(r"<li>(.*?)</li>", found.group(1), re.S)]


# -- caps -----------------------------------------------------------------------------------------


def test_each_cap_has_its_field_with_the_default_its_unit_and_help(app: Flask, runtime: Runtime) -> None:
    page = staff_client(app, "marketer").get("/console/campaigns/new").text
    text = visible_text(page)
    for guide in CAP_GUIDES:
        assert f'name="cap_{guide.name}"' in page and f'name="cap_{guide.name}_none"' in page
        assert str(guide.label) in text and str(guide.unit) in text
    assert "Empty: the default, 10 friends a day." in text
    assert "Empty: the default, 3 messages per 30 days." in text
    assert "Empty: the default, no cap." in text  # campaign_messages_total
    assert 'placeholder="10,000"' in page  # the daily budget's default, as the reader writes numbers
    assert "see the README" not in text


def test_caps_typed_in_fields_are_stored_and_shown_again(app: Flask, runtime: Runtime) -> None:
    client = staff_client(app, "marketer")
    created = client.post(
        "/console/campaigns/new",
        data=new_campaign_form(client, cap_friends_per_sender_per_day="3", cap_campaign_messages_total=" 5000 "),
    )
    assert created.status_code == 303, visible_text(created.text)
    assert stored_caps(runtime) == {"friends_per_sender_per_day": 3, "campaign_messages_total": 5000}
    shown = form_values(client.get("/console/campaigns/spring/edit").text)
    assert shown["cap_friends_per_sender_per_day"] == ["3"]
    assert shown["cap_campaign_messages_total"] == ["5000"]
    assert shown["cap_submissions_per_ip_per_hour"] == [""]  # the default, not copied in
    # Saved again as shown: nothing changes.
    again = client.post("/console/campaigns/spring/edit", data=edit_form(client))
    assert again.status_code == 303
    assert "Nothing changed." in visible_text(client.get("/console/campaigns/spring").text)


def test_a_bad_cap_is_said_in_words_beside_its_field(app: Flask, runtime: Runtime) -> None:
    client = staff_client(app, "marketer")
    refused = client.post(
        "/console/campaigns/new",
        data=new_campaign_form(
            client,
            cap_friends_per_sender_per_day="ten",
            cap_submissions_per_ip_per_hour="-5",
            cap_campaign_messages_per_day="0",
            cap_campaign_messages_total="100",
            cap_campaign_messages_total_none="y",
        ),
    )
    assert refused.status_code == 422
    assert errors_beside(refused.text, "cap_friends_per_sender_per_day") == [
        "Not a number: type a whole number such as 20, or leave it empty for the default."
    ]
    assert errors_beside(refused.text, "cap_submissions_per_ip_per_hour") == [
        "-5 is too low: a cap is a whole number of at least 1. Leave it empty for the default."
    ]
    assert errors_beside(refused.text, "cap_campaign_messages_per_day")[0].startswith("0 is too low")
    assert errors_beside(refused.text, "cap_campaign_messages_total") == ["Either a number or no cap, not both."]
    assert form_values(refused.text)["cap_friends_per_sender_per_day"] == ["ten"]  # kept as typed
    assert "Traceback" not in refused.text and "ValueError" not in refused.text
    with runtime.db.reading() as session:
        assert session.scalar(select(Campaign.id)) is None


def test_removing_a_cap_needs_an_admin_and_a_reason_beside_the_field(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, policy_name="us", policy_settings={}, caps={"campaign_messages_per_day": 500})
    marketer = staff_client(app, "marketer")
    refused = marketer.post(
        "/console/campaigns/spring/edit",
        data=edit_form(marketer, cap_campaign_messages_per_day="", cap_campaign_messages_per_day_none="y"),
    )
    assert refused.status_code == 422
    assert errors_beside(refused.text, "cap_campaign_messages_per_day_none") == [
        "Only an admin may remove a cap; type a number instead."
    ]
    admin = staff_client(app, "admin")
    removal = {"cap_campaign_messages_per_day": "", "cap_campaign_messages_per_day_none": "y"}
    no_reason = admin.post("/console/campaigns/spring/edit", data=edit_form(admin, **removal))
    assert no_reason.status_code == 422
    assert errors_beside(no_reason.text, "cap_campaign_messages_per_day_none") == [
        "Removing a cap needs a reason: say why below, the history keeps it."
    ]
    assert "Say why the cap is removed." in visible_text(no_reason.text)
    assert stored_caps(runtime) == {"campaign_messages_per_day": 500}
    removed = admin.post(
        "/console/campaigns/spring/edit", data=edit_form(admin, **removal, reason="Launch day, the brand pays.")
    )
    assert removed.status_code == 303
    assert stored_caps(runtime) == {"campaign_messages_per_day": None}
    # Shown again as no cap: the box ticked, the number empty.
    page = admin.get("/console/campaigns/spring/edit").text
    assert re.search(r'<input checked[^>]*name="cap_campaign_messages_per_day_none"', page)


# -- the admins' JSON -----------------------------------------------------------------------------


def test_only_admins_see_the_json_and_its_errors_are_said_with_line_and_column(app: Flask, runtime: Runtime) -> None:
    marketer_page = staff_client(app, "marketer").get("/console/campaigns/new").text
    assert 'name="caps"' not in marketer_page and "Advanced: JSON" not in marketer_page
    admin = staff_client(app, "admin")
    page = admin.get("/console/campaigns/new").text
    assert "Advanced: JSON (admins only)" in visible_text(page) and 'name="caps"' in page
    broken = admin.post(
        "/console/campaigns/new",
        data=new_campaign_form(
            admin, cap_friends_per_sender_per_day="3", caps='{\n  "campaign_messages_total": 5\n  "x": 1}'
        ),
    )
    assert broken.status_code == 422
    assert "Line 3, column 3: expected a comma." in visible_text(broken.text)
    assert "Expecting" not in broken.text and "delimiter" not in broken.text
    not_an_object = admin.post("/console/campaigns/new", data=new_campaign_form(admin, caps="[5]"))
    assert 'Type a JSON object, in braces: {"name": value}.' in visible_text(not_an_object.text)
    used = admin.post(
        "/console/campaigns/new",
        data=new_campaign_form(admin, cap_friends_per_sender_per_day="3", caps='{"campaign_messages_total": 5}'),
    )
    assert used.status_code == 303
    assert stored_caps(runtime) == {"campaign_messages_total": 5}  # the JSON replaces the fields


def test_json_posted_by_a_marketer_is_refused_not_applied(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, policy_name="us", policy_settings={})
    marketer = staff_client(app, "marketer")
    for forged in ({"caps": '{"campaign_messages_per_day": 1}'}, {"policy_rules": '{"version": 2}'}):
        refused = marketer.post("/console/campaigns/spring/edit", data=edit_form(marketer, **forged))
        assert refused.status_code == 422
        assert "Only an admin may type these settings as JSON; use the fields instead." in visible_text(refused.text)
    assert stored_caps(runtime) == {}


# -- the custom policy's rules --------------------------------------------------------------------


def test_an_admin_sets_a_custom_policy_in_fields_and_sees_them_again(app: Flask, runtime: Runtime) -> None:
    admin = staff_client(app, "admin")
    rules = {
        "policy_name": "custom",
        "policy_version": "2",
        "policy_channel_email": "allowed",
        "policy_channel_sms": "with_consent",
        "policy_retention": "days_after_send",
        "policy_retention_days": "14",
        "policy_sms_from": "9",
        "policy_sms_until": "20",
        "policy_preview_required": "y",
        "policy_justification": "Signed off by legal, ticket 12.",
    }
    bad = admin.post("/console/campaigns/new", data=new_campaign_form(admin, **{**rules, "policy_retention_days": "x"}))
    assert bad.status_code == 422
    assert errors_beside(bad.text, "policy_retention_days") == ["Not a number: type a whole number."]
    created = admin.post("/console/campaigns/new", data=new_campaign_form(admin, **rules))
    assert created.status_code == 303, visible_text(created.text)
    with runtime.db.reading() as session:
        settings = session.scalar(select(Campaign.policy_settings))
    assert settings["channels"]["sms"] == "with_consent" and settings["retention_days"] == 14
    assert settings["sms_hours"] == [9, 20] and settings["preview_required"] is True
    assert settings["incentives"] is False and settings["version"] == 2
    shown = form_values(admin.get("/console/campaigns/spring/edit").text)
    assert shown["policy_retention_days"] == ["14"] and shown["policy_channel_sms"] == ["with_consent"]
    assert shown["policy_sms_from"] == ["9"] and shown["policy_preview_required"] == ["y"]
    assert "policy_incentives" not in shown  # not ticked


# -- the policies explained -----------------------------------------------------------------------


def test_each_policy_is_explained_from_its_own_rules(app: Flask) -> None:
    with app.test_request_context():
        explained = {name: " ".join(explain_policy(BUILT_IN[name]).facts) for name in BUILT_IN}
        assert f"then {BUILT_IN['us'].retention_days} days more" in explained["us"]
        assert "erased once the message has gone" in explained["eu-strict"]
        assert "never stored" in explained["share-only"]
        for name, text in explained.items():
            policy = BUILT_IN[name]
            assert ("Incentives are allowed" in text) is policy.incentives, name
            assert ("No incentives" in text) is not policy.incentives, name
            assert ("sees the whole message before it goes" in text) is policy.preview_required, name
        assert "Only between 08:00 and 21:00" in explained["us"]
        assert "Text messages: never sent by the server" in explained["eu-strict"]


def test_the_form_shows_each_policy_beside_its_radio(app: Flask, runtime: Runtime) -> None:
    page = staff_client(app, "marketer").get("/console/campaigns/new").text
    for name in ("us", "eu-strict", "share-only", "custom"):
        assert re.search(
            rf'<input[^>]*aria-describedby="policy-about-{name}"[^>]*type="radio"[^>]*value="{name}"', page
        )
        assert f'id="policy-about-{name}"' in page
    assert "then 30 days more" in visible_text(page)
    assert "README" not in visible_text(page)


# -- live usage -----------------------------------------------------------------------------------


def test_the_usage_page_shows_each_cap_its_use_and_when_it_frees(app: Flask, runtime: Runtime) -> None:
    campaign = make_campaign(runtime.db, caps={"campaign_messages_per_day": 4})
    caps = CapSettings.from_overrides({"campaign_messages_per_day": 4})
    rules = submission_rules(caps, campaign.id, ip_hash="ip", network_hash="net", sender_key="anna", friends=3)
    assert runtime.limiter.acquire(rules).allowed
    client = staff_client(app, "compliance")  # every staff role may read it
    assert 'href="/console/campaigns/spring/usage"' in client.get("/console/campaigns/spring").text
    assert 'href="/console/campaigns/spring/usage">live usage' in client.get("/console").text
    page = client.get("/console/campaigns/spring/usage")
    assert page.status_code == 200 and page.mimetype == "text/html"
    daily = re.search(r'<tr data-cap="campaign_messages_per_day">(.*?)</tr>', page.text, re.S)
    assert daily
    assert re.search(r'<meter[^>]*max="4"[^>]*value="3"', daily.group(1))
    row = visible_text(daily.group(1))
    assert "4 messages a day" in row and "3 of 4 (75%)" in row and "the last 24 hours, rolling" in row
    assert "all free by" in row and "one more every 6 hours" in row
    total = visible_text(re.search(r'<tr data-cap="campaign_messages_total">(.*?)</tr>', page.text, re.S).group(1))  # type: ignore[union-attr]
    assert "no cap" in total
    sender = visible_text(re.search(r'<tr data-cap="friends_per_sender_per_day">(.*?)</tr>', page.text, re.S).group(1))  # type: ignore[union-attr]
    assert "10 friends a day" in sender and "one count each" in sender
    assert 'class="table-scroll"' in page.text  # the table scrolls in its own box on a phone
    assert client.get("/console/campaigns/nope/usage").status_code == 404
    # The JSON API is unchanged.
    assert client.get("/api/v1/campaigns/spring/caps").json["limits"]["campaign_messages_per_day"] == 4


def test_the_usage_page_says_when_the_counters_cannot_be_read(app: Flask, runtime: Runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    make_campaign(runtime.db)

    def unreachable(rules: object) -> None:
        raise CapsUnavailable("cannot read caps: connection refused")

    monkeypatch.setattr(runtime.limiter, "usage", unreachable)
    page = staff_client(app, "marketer").get("/console/campaigns/spring/usage")
    assert page.status_code == 503
    assert "The cap counters cannot be read right now (Redis is unreachable)." in visible_text(page.text)


def test_an_unknown_cap_in_the_admins_json_is_said_beside_it(app: Flask, runtime: Runtime) -> None:
    admin = staff_client(app, "admin")
    refused = admin.post("/console/campaigns/new", data=new_campaign_form(admin, caps='{"friends_per_day": 3}'))
    assert refused.status_code == 422
    assert re.search(r'<details class="advanced" open>', refused.text)  # unfolded, to show the error
    assert "Unknown cap 'friends_per_day'." in visible_text(refused.text)
