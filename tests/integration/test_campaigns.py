"""Campaigns on SQLite and PostgreSQL: create, edit, the states and what activation checks, the
history of who changed what, and template rollbacks (versions never change)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from engine.models import Campaign, CampaignEvent, CampaignStatus, Message, Role
from engine.queue import QueueUnavailable
from engine.runtime import Runtime
from engine.services.campaigns import (
    CampaignDraft,
    CampaignSettings,
    ChangeRefused,
    change_status,
    create_campaign,
    edit_campaign,
)
from engine.services.coupons import CouponMode, set_mode
from engine.services.delivery import _pause
from engine.services.history import CLI, Actor, ActorKind
from engine.services.lookups import CampaignNotFound
from engine.services.templates import add_template_versions, rollback_template, upload_templates
from engine.transports.memory import MemoryTransport
from tests.helpers import US_CUSTOM_SMS, make_campaign, submission

MARKETER = Actor("mo@staff.example", ActorKind.USER, Role.MARKETER)
ADMIN = Actor("ann@staff.example", ActorKind.USER, Role.ADMIN)

# A text part that prints what every policy asks of an email.
GOOD_TEXT = (
    "{{ sender_name }} sent you {{ offer_title }} (uploaded text part): {{ link }}\n"
    "Unsubscribe: {{ unsubscribe_link }}\n{{ brand_name }}, {{ postal_address }}\n"
)
# One that prints neither the unsubscribe link nor the postal address.
BARE_TEXT = "{{ offer_title }}: {{ link }}\n"


def draft(**changes: Any) -> CampaignDraft:
    values: dict[str, Any] = {
        "slug": "spring",
        "name": "Spring",
        "offer_title": "Ten percent off",
        "offer_description": "Ten percent off your first order.",
        "brand_name": "Acme",
        "sender_email": "offers@acme.example",
        "postal_address": "1 Main St, Springfield",
        "channels": ("email",),
        "policy_name": "us",
    }
    values.update(changes)
    return CampaignDraft(**values)


def edited(runtime: Runtime, of: str = "spring", **changes: Any) -> CampaignDraft:
    """The campaign's stored settings with some changed, as the edit form sends them."""
    with runtime.db.reading() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == of))
        settings = CampaignSettings.of(campaign)
    values = {**settings.__dict__, **changes}
    return CampaignDraft(**values)


def events(runtime: Runtime, slug: str = "spring") -> list[CampaignEvent]:
    with runtime.db.reading() as session:
        campaign_id = session.scalar(select(Campaign.id).where(Campaign.slug == slug))
        return list(
            session.scalars(
                select(CampaignEvent).where(CampaignEvent.campaign_id == campaign_id).order_by(CampaignEvent.id)
            )
        )


def status_of(runtime: Runtime, slug: str = "spring") -> str:
    with runtime.db.reading() as session:
        return session.scalar(select(Campaign.status).where(Campaign.slug == slug)) or ""


def refusal(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ChangeRefused) as refused:
        call(*args, **kwargs)
    return " | ".join(refused.value.reasons)


# -- create and edit -----------------------------------------------------------------------------------


def test_a_new_campaign_is_a_draft_with_its_creation_in_the_history(runtime: Runtime) -> None:
    create_campaign(runtime.db, draft(), MARKETER)
    assert status_of(runtime) == "draft"
    (created,) = events(runtime)
    assert (created.actor, created.actor_kind, created.action) == ("mo@staff.example", "user", "created")
    assert created.changes["brand_name"] == [None, "Acme"]
    assert created.changes["channels"] == [None, ["email"]]
    assert "already a campaign 'spring'" in refusal(create_campaign, runtime.db, draft(), MARKETER)


def test_an_edit_records_each_changed_field_old_and_new(runtime: Runtime) -> None:
    create_campaign(runtime.db, draft(), MARKETER)
    changes = edit_campaign(runtime.db, "spring", edited(runtime, offer_title="Twenty percent off", caps={}), ADMIN)
    assert changes == {"offer_title": ["Ten percent off", "Twenty percent off"]}
    assert edit_campaign(runtime.db, "spring", edited(runtime), ADMIN) == {}  # nothing changed, nothing recorded
    last = events(runtime)[-1]
    assert (last.actor, last.action, last.changes) == ("ann@staff.example", "edited", changes)


def test_the_slug_may_change_only_in_draft(runtime: Runtime) -> None:
    create_campaign(runtime.db, draft(), MARKETER)
    edit_campaign(runtime.db, "spring", edited(runtime, slug="spring-sale"), MARKETER)
    assert events(runtime, "spring-sale")[-1].changes == {"slug": ["spring", "spring-sale"]}
    change_status(runtime.db, "spring-sale", CampaignStatus.ACTIVE, MARKETER)
    reason = refusal(edit_campaign, runtime.db, "spring-sale", edited(runtime, "spring-sale", slug="sale"), MARKETER)
    assert "slug cannot change once the campaign has been active" in reason
    with pytest.raises(CampaignNotFound):
        edit_campaign(runtime.db, "nope", draft(), MARKETER)


def test_a_live_campaign_stays_fit_to_send(runtime: Runtime) -> None:
    create_campaign(runtime.db, draft(), MARKETER)
    change_status(runtime.db, "spring", CampaignStatus.ACTIVE, MARKETER)
    reason = refusal(edit_campaign, runtime.db, "spring", edited(runtime, postal_address=""), MARKETER)
    assert "a postal address is needed" in reason
    with runtime.db.reading() as session:
        assert session.scalar(select(Campaign.postal_address)) == "1 Main St, Springfield"


def test_an_ended_campaign_is_kept_as_it_ran(runtime: Runtime) -> None:
    create_campaign(runtime.db, draft(), MARKETER)
    change_status(runtime.db, "spring", CampaignStatus.ENDED, MARKETER, "cancelled")
    assert "has ended" in refusal(edit_campaign, runtime.db, "spring", edited(runtime, name="Again"), MARKETER)


def test_only_an_admin_sets_a_custom_policy(runtime: Runtime) -> None:
    custom = {"policy_name": "custom", "policy_settings": US_CUSTOM_SMS}
    assert "only an admin" in refusal(create_campaign, runtime.db, draft(**custom), MARKETER)
    create_campaign(runtime.db, draft(**custom), ADMIN)
    # A marketer may still edit the rest of a custom-policy campaign, as long as its rules stay.
    assert edit_campaign(runtime.db, "spring", edited(runtime, name="Renamed"), MARKETER) == {
        "name": ["Spring", "Renamed"]
    }
    rules = {**US_CUSTOM_SMS, "retention_days": 7}
    assert "only an admin" in refusal(
        edit_campaign, runtime.db, "spring", edited(runtime, policy_settings=rules), MARKETER
    )
    assert edit_campaign(runtime.db, "spring", edited(runtime, policy_settings=rules), ADMIN)["policy_settings"]


# -- states --------------------------------------------------------------------------------------------


def test_every_allowed_transition_is_recorded_with_its_reason(runtime: Runtime) -> None:
    create_campaign(runtime.db, draft(), MARKETER)
    for status, reason in [
        (CampaignStatus.ACTIVE, "launch"),
        (CampaignStatus.PAUSED, "checking the copy"),
        (CampaignStatus.ACTIVE, ""),
        (CampaignStatus.ENDED, "over"),
    ]:
        change_status(runtime.db, "spring", status, MARKETER, reason)
        assert status_of(runtime) == status
    history = [(e.changes["status"], e.reason) for e in events(runtime) if e.action == "status changed"]
    assert history == [
        (["draft", "active"], "launch"),
        (["active", "paused"], "checking the copy"),
        (["paused", "active"], ""),
        (["active", "ended"], "over"),
    ]
    create_campaign(runtime.db, draft(slug="other"), MARKETER)
    change_status(runtime.db, "other", CampaignStatus.ENDED, MARKETER)  # draft → ended: never launched
    create_campaign(runtime.db, draft(slug="third"), MARKETER)
    change_status(runtime.db, "third", CampaignStatus.ACTIVE, MARKETER)
    change_status(runtime.db, "third", CampaignStatus.PAUSED, MARKETER)
    change_status(runtime.db, "third", CampaignStatus.ENDED, MARKETER)  # paused → ended
    assert status_of(runtime, "other") == status_of(runtime, "third") == "ended"


@pytest.mark.parametrize(
    ("path", "wanted", "says"),
    [
        ([], CampaignStatus.PAUSED, "a campaign that is draft cannot become paused; it can become active or ended"),
        ([], CampaignStatus.DRAFT, "already draft"),
        ([CampaignStatus.ACTIVE], CampaignStatus.ACTIVE, "already active"),
        ([CampaignStatus.ACTIVE], CampaignStatus.DRAFT, "cannot become draft"),
        ([CampaignStatus.ACTIVE, CampaignStatus.PAUSED], CampaignStatus.PAUSED, "already paused"),
        ([CampaignStatus.ENDED], CampaignStatus.ACTIVE, "an ended campaign never comes back"),
        ([CampaignStatus.ENDED], CampaignStatus.PAUSED, "an ended campaign never comes back"),
    ],
)
def test_refused_transitions_say_why(
    runtime: Runtime, path: list[CampaignStatus], wanted: CampaignStatus, says: str
) -> None:
    create_campaign(runtime.db, draft(), MARKETER)
    for status in path:
        change_status(runtime.db, "spring", status, MARKETER)
    before = len(events(runtime))
    assert says in refusal(change_status, runtime.db, "spring", wanted, MARKETER)
    assert len(events(runtime)) == before  # a refusal changes nothing and records nothing


def test_activation_needs_what_the_policy_asks_of_the_sender(runtime: Runtime) -> None:
    create_campaign(runtime.db, draft(postal_address="", sender_email=""), MARKETER)
    reason = refusal(change_status, runtime.db, "spring", CampaignStatus.ACTIVE, MARKETER)
    assert "a postal address is needed: the us policy requires it in every email" in reason
    assert "a sender email address is needed" in reason
    assert status_of(runtime) == "draft"
    # eu-strict asks no postal address, and share-only sends nothing itself.
    create_campaign(runtime.db, draft(slug="eu", policy_name="eu-strict", postal_address=""), MARKETER)
    change_status(runtime.db, "eu", CampaignStatus.ACTIVE, MARKETER)
    create_campaign(
        runtime.db, draft(slug="share", policy_name="share-only", postal_address="", sender_email=""), ADMIN
    )
    change_status(runtime.db, "share", CampaignStatus.ACTIVE, MARKETER)


def test_activation_checks_the_templates_against_the_policy(runtime: Runtime) -> None:
    create_campaign(runtime.db, draft(), MARKETER)
    # Stored as they once were, without the checks (an old version, or a policy changed since).
    with runtime.db.transaction() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == "spring"))
        add_template_versions(session, campaign, {"email.txt": BARE_TEXT})
    reason = refusal(change_status, runtime.db, "spring", CampaignStatus.ACTIVE, MARKETER)
    assert "templates: email.txt lacks what the campaign's us policy requires" in reason
    assert "unsubscribe link" in reason and "postal address" in reason


def test_activation_refuses_coupons_under_a_policy_without_incentives(runtime: Runtime) -> None:
    make_campaign(runtime.db, "strict", status=CampaignStatus.DRAFT, policy_name="eu-strict", coupon_mode="pool")
    reason = refusal(change_status, runtime.db, "strict", CampaignStatus.ACTIVE, MARKETER)
    assert "coupons are on" in reason and "does not allow incentives" in reason


def test_an_automatic_pause_is_in_the_history_as_the_systems(runtime: Runtime) -> None:
    campaign = make_campaign(runtime.db)
    with runtime.db.transaction() as session:
        _pause(session, campaign.id, "paused automatically: 9 of its last 10 messages failed", runtime.clock.now())
        _pause(session, campaign.id, "again", runtime.clock.now())  # already paused: nothing happens, nothing recorded
    (paused,) = events(runtime)
    assert (paused.actor, paused.actor_kind, paused.action) == ("system", "system", "status changed")
    assert paused.changes == {"status": ["active", "paused"]}
    assert paused.reason.startswith("paused automatically")


def test_the_command_line_pauses_and_resumes_as_cli(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["campaigns", "pause", "spring", "--reason", "checking"]).exit_code == 0
    assert runner.invoke(args=["campaigns", "resume", "spring"]).exit_code == 0
    again = runner.invoke(args=["campaigns", "resume", "spring"])
    assert again.exit_code == 1 and "spring stays as it is: the campaign is already active" in again.output
    history = [(e.actor, e.actor_kind, e.changes["status"], e.reason) for e in events(runtime)]
    assert history == [("cli", "cli", ["active", "paused"], "checking"), ("cli", "cli", ["paused", "active"], "")]


def test_resuming_from_the_command_line_while_redis_is_down_still_resumes(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["campaigns", "pause", "spring", "--reason", "checking"]).exit_code == 0

    def redis_gone(*, extra: bool = False) -> bool:
        raise QueueUnavailable("could not ask for a dispatch: Connection refused")

    runtime.queue.request_dispatch = redis_gone  # type: ignore[method-assign]
    resumed = runner.invoke(args=["campaigns", "resume", "spring"])
    assert resumed.exit_code == 0, resumed.output
    assert "spring: active" in resumed.output and "the sweeper sends what waited once it is back" in resumed.output
    with runtime.db.reading() as session:
        assert session.scalar(select(Campaign.status).where(Campaign.slug == "spring")) == CampaignStatus.ACTIVE


# -- templates, coupons and rollbacks ------------------------------------------------------------------


def test_uploads_and_coupon_modes_are_in_the_history(runtime: Runtime) -> None:
    make_campaign(runtime.db, policy_name="us", policy_settings={})
    report = upload_templates(runtime.db, runtime.renderer, "spring", {"email.txt": GOOD_TEXT.encode()}, MARKETER)
    assert report.accepted
    set_mode(runtime.db, "spring", CouponMode.GENERATED, MARKETER)
    set_mode(runtime.db, "spring", CouponMode.GENERATED, MARKETER)  # no change, no row
    uploaded, coupons = events(runtime)
    assert (uploaded.action, uploaded.changes) == ("templates uploaded", {"email.txt": [1, 2]})
    assert (coupons.action, coupons.changes) == ("coupons mode", {"coupon_mode": ["none", "generated"]})


def test_a_rollback_stores_the_old_body_as_a_new_version_and_messages_use_it(
    runtime: Runtime, transport: MemoryTransport
) -> None:
    make_campaign(runtime.db, policy_name="us", policy_settings={}, channels=["email"])
    assert upload_templates(runtime.db, runtime.renderer, "spring", {"email.txt": GOOD_TEXT.encode()}).accepted
    report = rollback_template(runtime.db, runtime.renderer, "spring", "email.txt", 1, MARKETER)
    assert report.accepted and [(s.name, s.version) for s in report.stored] == [("email.txt", 3)]
    with runtime.db.reading() as session:
        bodies = {t.version: t.body for t in session.scalar(select(Campaign)).templates if t.name == "email.txt"}
    assert bodies[3] == bodies[1] and bodies[2] == GOOD_TEXT  # versions 1 and 2 untouched
    rolled = events(runtime)[-1]
    assert (rolled.actor, rolled.action, rolled.changes) == (
        MARKETER.name,
        "template rolled back",
        {"email.txt": [2, 3]},
    )
    assert "version 1" in rolled.reason

    receipt = runtime.forwarding.submit("spring", submission("bob@example.com"))
    runtime.delivery.deliver(receipt.message_ids)
    (email,) = transport.emails
    assert "(uploaded text part)" not in email.text
    with runtime.db.reading() as session:
        message = session.scalar(select(Message))
        assert message.template_versions == {
            "subject.txt": 1,
            "email.html": 1,
            "email.txt": 3,
            "sms.txt": 1,
            "landing.html": 1,
        }


def test_a_rollback_is_checked_like_an_upload(runtime: Runtime) -> None:
    make_campaign(runtime.db, policy_name="us", policy_settings={})
    with runtime.db.transaction() as session:
        add_template_versions(session, session.scalar(select(Campaign)), {"email.txt": BARE_TEXT})  # version 2
    assert upload_templates(runtime.db, runtime.renderer, "spring", {"email.txt": GOOD_TEXT.encode()}).accepted
    refused = rollback_template(runtime.db, runtime.renderer, "spring", "email.txt", 2, MARKETER)
    assert not refused.accepted and "email.txt lacks what the campaign's us policy requires" in refused.refusals[0]
    current = rollback_template(runtime.db, runtime.renderer, "spring", "email.txt", 3, MARKETER)
    assert current.refusals == ("version 3 of email.txt is already the current one",)
    missing = rollback_template(runtime.db, runtime.renderer, "spring", "email.txt", 9, MARKETER)
    assert missing.refusals == ("spring has no version 9 of email.txt",)
    assert [e.action for e in events(runtime)] == ["templates uploaded"]


def test_cli_actor_is_not_limited_by_a_role() -> None:
    assert CLI.may_set_custom_policy and CLI.role is None
