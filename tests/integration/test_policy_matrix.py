"""The consent policies as a table: every policy, channel and incentive, from the form to the
send and what is kept afterwards (the table in docs/policies.md, with the reasons).

Each row says what the policy lets happen to a friend on one channel who has given no
consent of their own: refused at the form, held back quietly, or sent; whether the friend's
plaintext contact is still stored once the message has gone; and whether coupons (an
incentive) can be switched on for the campaign.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from engine.models import Forward, Message
from engine.runtime import Runtime
from engine.services.coupons import CouponMode, CouponsNotAllowed, set_mode
from engine.services.forwarding import ForwardRejected
from engine.transports.memory import MemoryTransport
from tests.helpers import make_campaign, submission

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

FRIENDS = {"email": "bob@example.com", "sms": "+31612345678"}


@dataclass(frozen=True)
class Row:
    policy: str
    settings: dict[str, Any]
    channel: str
    outcome: str  # "refused" at the form, "held" back without telling the sender, or "sent"
    contact_kept_after_send: bool | None  # None where nothing is sent
    incentives: bool


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
]


def row_id(row: Row) -> str:
    kind = "texts" if row.settings is CUSTOM_TEXTS else "share-only" if row.settings is CUSTOM_SHARE_ONLY else ""
    return "-".join(filter(None, [row.policy, kind, row.channel]))


@pytest.mark.parametrize("row", MATRIX, ids=row_id)
def test_each_policy_decides_what_happens_to_a_friend(runtime: Runtime, transport: MemoryTransport, row: Row) -> None:
    make_campaign(runtime.db, "matrix", policy_name=row.policy, policy_settings=row.settings)
    friend = FRIENDS[row.channel]
    try:
        receipt = runtime.forwarding.submit("matrix", submission(friend))
    except ForwardRejected as refusal:
        assert row.outcome == "refused", f"refused: {refusal}"
        assert transport.emails == [] and transport.sms == []
        return
    assert row.outcome != "refused", "accepted"
    runtime.queue.drain()
    sent_to = [e.to for e in transport.emails] + [s.to for s in transport.sms]
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
