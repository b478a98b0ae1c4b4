"""Every event whose cause exists is published where it happens, in its transaction, with ids and
hashes only: a forward from the form and a share link, a click on a tracked link, a conversion and
the reward it earns, an approval, a pause (by a person and by the send loop), an opt-out."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from engine.models import Campaign, CampaignStatus, Forward, SuppressionScope, SuppressionSource, WebhookEvent
from engine.runtime import Runtime
from engine.services import coupons
from engine.services.campaigns import change_status
from engine.services.delivery import _pause
from engine.services.history import CLI
from engine.services.rewards import ProgramSettings, ReviewDecision, review, set_program
from engine.services.suppression import suppress_contact
from engine.services.webhooks import EVENT_TYPES, EndpointFields
from engine.sharing import ShareButton
from engine.tokens import Purpose
from tests.helpers import make_campaign, submission
from tests.integration.test_rewards import WITH_INCENTIVES, invite


@pytest.fixture
def listening(runtime: Runtime) -> Runtime:
    """An endpoint for every event type (at a public address literal: no lookup needed)."""
    runtime.webhooks.create("default", EndpointFields(url="https://93.184.216.34/in", event_types=EVENT_TYPES), "test")
    return runtime


def events(runtime: Runtime, event_type: str | None = None) -> list[dict[str, Any]]:
    with runtime.db.reading() as session:
        query = select(WebhookEvent).order_by(WebhookEvent.id)
        if event_type:
            query = query.where(WebhookEvent.type == event_type)
        return [{"type": e.type, **e.data} for e in session.scalars(query)]


def test_forwards_and_clicks(listening: Runtime, campaign: Campaign) -> None:
    runtime = listening
    receipt = runtime.forwarding.submit(
        "spring", submission("bob@example.com", "06 12345678", sender_contact="anna@example.com", note="Hi")
    )
    created = events(runtime, "forward.created")
    assert [(e["campaign"], e["generation"], e["channel"], e["via"], e["parent_forward"]) for e in created] == [
        ("spring", 1, "email", "form", None),
        ("spring", 1, "sms", "form", None),
    ]
    assert str(events(runtime)).count("@") == 0 and "Anna" not in str(events(runtime))
    assert "+31612345678" not in str(events(runtime)) and "Hi" not in str(events(runtime))

    with runtime.db.reading() as session:
        first = session.scalar(select(Forward).where(Forward.id == receipt.forward_ids[0]))
        assert first is not None
    token = runtime.tokens.sign(Purpose.FORWARD, first.public_id)
    runtime.forwarding.follow_link(token, "203.0.113.7", "Mozilla/5.0")
    [clicked] = events(runtime, "forward.clicked")
    assert (clicked["forward"], clicked["generation"]) == (first.public_id, 1)

    runtime.forwarding.share("spring", ShareButton.WHATSAPP, token, "203.0.113.8")
    shared = events(runtime, "forward.created")[-1]
    assert (shared["via"], shared["parent_forward"], shared["generation"]) == ("whatsapp", first.public_id, 2)


def test_a_conversion_its_reward_and_the_approval(listening: Runtime) -> None:
    runtime = listening
    shop = make_campaign(runtime.db, "spring", policy_settings=WITH_INCENTIVES, coupon_mode="pool")
    set_program(runtime.db, "spring", ProgramSettings(True, "A voucher"))
    forward, code = invite(runtime, shop, "Ann", sender_contact="h-ann")
    record = coupons.redeem(runtime.db, "spring", code)

    [converted] = events(runtime, "friend.converted")
    assert converted == {
        "type": "friend.converted",
        "campaign": "spring",
        "redemption": record.id,
        "forward": forward.public_id,
        "generation": 1,
        "chain": [forward.public_id],
    }
    [earned] = events(runtime, "reward.earned")
    assert (earned["redemption"], earned["referrer_key"], earned["status"]) == (record.id, "c:h-ann", "held")
    assert "Ann" not in str(earned)

    review(runtime.db, "spring", earned["reward"], ReviewDecision(True, "reviewer@staff.example"))
    [approved] = events(runtime, "reward.approved")
    assert (approved["reward"], approved["status"]) == (earned["reward"], "approved")


def test_a_referrer_known_only_by_the_name_typed_is_sent_as_a_digest(listening: Runtime) -> None:
    runtime = listening
    shop = make_campaign(runtime.db, "spring", policy_settings=WITH_INCENTIVES, coupon_mode="pool")
    set_program(runtime.db, "spring", ProgramSettings(True, "A voucher"))
    _, code = invite(runtime, shop, "Annabel")  # no contact, no parent: known by address and name
    coupons.redeem(runtime.db, "spring", code)
    [earned] = events(runtime, "reward.earned")
    assert earned["referrer_key"].startswith("a:") and len(earned["referrer_key"]) == 66
    assert "Annabel" not in str(events(runtime))


def test_a_rejection_publishes_nothing(listening: Runtime) -> None:
    runtime = listening
    shop = make_campaign(runtime.db, "spring", policy_settings=WITH_INCENTIVES, coupon_mode="pool")
    set_program(runtime.db, "spring", ProgramSettings(True, "A voucher"))
    _, code = invite(runtime, shop, "Ann")
    coupons.redeem(runtime.db, "spring", code)
    [earned] = events(runtime, "reward.earned")
    review(runtime.db, "spring", earned["reward"], ReviewDecision(False, "reviewer@staff.example", "a bot"))
    assert events(runtime, "reward.approved") == []


def test_pauses_by_a_person_and_by_the_send_loop(listening: Runtime, campaign: Campaign) -> None:
    runtime = listening
    change_status(runtime.db, "spring", CampaignStatus.PAUSED, CLI, "stock ran out")
    change_status(runtime.db, "spring", CampaignStatus.ACTIVE, CLI)
    with runtime.db.transaction() as session:
        _pause(session, campaign.id, "paused: half of the last sends failed", runtime.clock.now())
    assert [(e["automatic"], e["reason"]) for e in events(runtime, "campaign.paused")] == [
        (False, "stock ran out"),
        (True, "paused: half of the last sends failed"),
    ]


def test_an_opt_out_of_a_campaign(listening: Runtime, campaign: Campaign) -> None:
    runtime = listening
    contact_hash = runtime.hasher.hash_text("bob@example.com")
    with runtime.db.transaction() as session:
        suppress_contact(
            session,
            contact_hash,
            "email",
            SuppressionScope.CAMPAIGN,
            SuppressionSource.LINK,
            campaign_id=campaign.id,
            now=runtime.clock.now(),
        )
    assert events(runtime, "opt_out.recorded") == [
        {
            "type": "opt_out.recorded",
            "campaign": "spring",
            "contact_hash": contact_hash,
            "channel": "email",
            "scope": "campaign",
            "source": "link",
        }
    ]


def test_nothing_is_written_when_nobody_listens(runtime: Runtime, campaign: Campaign) -> None:
    runtime.forwarding.submit("spring", submission("bob@example.com"))
    assert events(runtime) == []
