"""The consent policies as a table: every policy, channel and incentive, from the form to the
send and what is kept afterwards (the table in docs/policies.md, with the reasons).

Each row says what the policy lets happen to a friend on one channel who has given no
consent of their own: refused at the form, held back quietly, or sent; whether the friend's
plaintext contact is still stored once the message has gone; and whether coupons (an
incentive) can be switched on for the campaign.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from engine import create_app
from engine.clock import FixedClock
from engine.contacts import Contact
from engine.models import Forward, Message
from engine.runtime import Runtime
from engine.services.consents import ConsentImporter
from engine.services.coupons import CouponMode, CouponsNotAllowed, set_mode
from engine.services.forwarding import ForwardRejected, ForwardSubmission
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import make_campaign, runtime_of, submission

CUSTOM_BASE: dict[str, Any] = {
    "version": 2,
    "justification": "Signed off by compliance on 2026-11-20, ticket 77, for the pilot only.",
    "sms_hours": [0, 24],
}
CUSTOM_TEXTS = {
    **CUSTOM_BASE,
    "server_email": True,
    "server_sms": "allowed",
    "incentives": False,
    "retention": "days_after_send",
    "retention_days": 7,
}
CUSTOM_SHARE_ONLY = {
    **CUSTOM_BASE,
    "server_email": False,
    "server_sms": "never",
    "incentives": True,
    "retention": "nothing",
}

CUSTOM_WHATSAPP = {
    **CUSTOM_BASE,
    "channels": {"email": "allowed", "whatsapp": "allowed"},
    "incentives": False,
    "retention": "days_after_send",
    "retention_days": 7,
}

FRIENDS = {"email": "bob@example.com", "sms": "+31612345678", "whatsapp": "+31612345678"}
WHATSAPP_TEMPLATE = {
    "whatsapp": {
        "content_sid": "HX" + "0123456789abcdef" * 2,
        "body": "{{1}} sent you an offer: {{2}}",
        "variables": {"1": "sender_name", "2": "link"},
    }
}


@dataclass(frozen=True)
class Row:
    policy: str
    settings: dict[str, Any]
    channel: str
    outcome: str  # "refused" at the form, "held" back without telling the sender, or "sent"
    contact_kept_after_send: bool | None  # None where nothing is sent
    incentives: bool
    # The friend's own consent to this channel is on record (imported with its evidence).
    consented: bool = False


MATRIX = [
    # us: the brand is the sender (CAN-SPAM); texts only with the friend's own consent (TCPA).
    Row("us", {}, "email", "sent", True, True),
    Row("us", {}, "sms", "held", None, True),
    # eu-strict: email without reward, plaintext erased once sent; no server texts (ACM).
    Row("eu-strict", {}, "email", "sent", False, False),
    Row("eu-strict", {}, "sms", "refused", None, False),
    # share-only: the consumer shares; the server sends nothing (PECR).
    Row("share-only", {}, "email", "refused", None, True),
    Row("share-only", {}, "sms", "refused", None, True),
    # custom: exactly what compliance set, with its justification.
    Row("custom", CUSTOM_TEXTS, "email", "sent", True, False),
    Row("custom", CUSTOM_TEXTS, "sms", "sent", True, False),
    Row("custom", CUSTOM_SHARE_ONLY, "email", "refused", None, True),
    Row("custom", CUSTOM_SHARE_ONLY, "sms", "refused", None, True),
    # WhatsApp (Meta's opt-in rule): only to a number whose WhatsApp consent is on record.
    Row("us", {}, "whatsapp", "held", None, True),
    Row("us", {}, "whatsapp", "sent", True, True, consented=True),
    Row("eu-strict", {}, "whatsapp", "refused", None, False),
    Row("share-only", {}, "whatsapp", "refused", None, True),
    # A custom policy stored before WhatsApp existed never allows it; one may, explicitly.
    Row("custom", CUSTOM_TEXTS, "whatsapp", "refused", None, False),
    Row("custom", CUSTOM_WHATSAPP, "whatsapp", "sent", True, False),
]


KINDS = {id(CUSTOM_TEXTS): "texts", id(CUSTOM_SHARE_ONLY): "share-only", id(CUSTOM_WHATSAPP): "whatsapp"}


def row_id(row: Row) -> str:
    consent = "consented" if row.consented else ""
    return "-".join(filter(None, [row.policy, KINDS.get(id(row.settings), ""), row.channel, consent]))


@pytest.fixture
def app(database_url: str, settings_for, transport: MemoryTransport, clock: FixedClock) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    """The integration app, with WhatsApp among its transports."""
    transports = Transports(email=transport, sms=transport, whatsapp=transport)
    application = create_app(
        settings_for(database_url, whatsapp_transport="outbox"), transports=transports, clock=clock
    )
    yield application
    runtime_of(application).db.dispose()


def matrix_campaign(runtime: Runtime, row: Row) -> None:
    make_campaign(
        runtime.db,
        "matrix",
        policy_name=row.policy,
        policy_settings=row.settings,
        channels=["email", "sms", "whatsapp"],
        channel_settings=WHATSAPP_TEMPLATE,
    )
    if row.consented:
        importer = ConsentImporter(runtime.db, runtime.hasher, "NL", clock=runtime.clock)
        csv = f"contact,evidence\n{FRIENDS[row.channel]},opted in on the brand's site\n".encode()
        assert importer.import_csv(io.BytesIO(csv), row.channel).imported == 1


def friend_submission(row: Row) -> ForwardSubmission:
    """The form's submission to the row's friend, on the row's channel (a phone number is a
    text or a WhatsApp message: the sender's choice)."""
    forwarded = submission(FRIENDS[row.channel])
    return replace(forwarded, friends=[Contact(row.channel, forwarded.friends[0].value)])


@pytest.mark.parametrize("row", MATRIX, ids=row_id)
def test_each_policy_decides_what_happens_to_a_friend(runtime: Runtime, transport: MemoryTransport, row: Row) -> None:
    matrix_campaign(runtime, row)
    friend = FRIENDS[row.channel]
    try:
        receipt = runtime.forwarding.submit("matrix", friend_submission(row))
    except ForwardRejected as refusal:
        assert row.outcome == "refused", f"refused: {refusal}"
        assert transport.emails == [] and transport.sms == [] and transport.whatsapp == []
        return
    assert row.outcome != "refused", "accepted"
    runtime.queue.drain()
    sent_to = [e.to for e in transport.emails] + [s.to for s in transport.sms] + [w.to for w in transport.whatsapp]
    with runtime.db.reading() as session:
        forward = session.scalars(select(Forward)).one()
        message = session.scalars(select(Message)).one()
    # Whatever happens, the message records the policy (and version) that decided it.
    assert (message.policy_name, message.policy_version) == (row.policy, 2 if row.policy == "custom" else 1)
    if row.outcome == "held":
        assert receipt.message_ids == () and sent_to == []
        assert message.status == "suppressed" and forward.recipient_contact is None
        return
    assert sent_to == [friend]
    assert message.status == "sent"
    assert (forward.recipient_contact is not None) is row.contact_kept_after_send


@pytest.mark.parametrize("row", [r for r in MATRIX if r.channel == "email"], ids=row_id)
def test_coupons_only_where_the_policy_allows_incentives(runtime: Runtime, row: Row) -> None:
    make_campaign(runtime.db, "matrix", policy_name=row.policy, policy_settings=row.settings)
    if row.incentives:
        set_mode(runtime.db, "matrix", CouponMode.GENERATED)
    else:
        with pytest.raises(CouponsNotAllowed):
            set_mode(runtime.db, "matrix", CouponMode.GENERATED)
