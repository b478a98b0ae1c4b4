"""Opt-outs: the unsubscribe link (and RFC 8058 one-click), and the suppression checks.

Suppression is checked when a forward is accepted and again just before each send;
both checks go through `suppressed_hashes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.db import Database
from engine.models import Message, Suppression, SuppressionScope, SuppressionSource
from engine.models.suppression import keys_covering, scope_key
from engine.services.opt_out_log import OptOutRecord, append
from engine.tokens import InvalidToken, Purpose, Tokens


@dataclass(frozen=True)
class UnsubscribeView:
    """What the unsubscribe page may say: who sent it, through whom, on which channel. No contact."""

    sender_name: str
    brand_name: str
    campaign_name: str
    channel: str


def suppressed_hashes(session: Session, campaign_id: int, channel: str, hashes: Iterable[str]) -> set[str]:
    """Those of these contact hashes that must not get a message of this campaign on this channel."""
    wanted = list(set(hashes))
    if not wanted:
        return set()
    rows = session.scalars(
        select(Suppression.contact_hash).where(
            Suppression.contact_hash.in_(wanted),
            Suppression.channel == channel,
            Suppression.scope_key.in_(keys_covering(campaign_id)),
        )
    )
    return set(rows)


def add_suppression(
    session: Session,
    message: Message,
    scope: SuppressionScope,
    source: SuppressionSource,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Suppress the recipient of this message (by hash, on its channel) and log the opt-out.

    Already suppressed is fine; the opt-out is logged all the same, since compliance must be
    able to show every request and when it was honoured."""
    forward = message.forward
    key = scope_key(scope, forward.campaign_id)
    campaign_id = forward.campaign_id if scope is SuppressionScope.CAMPAIGN else None
    append(
        session,
        OptOutRecord(
            contact_hash=forward.recipient_contact_hash,
            channel=message.channel,
            scope=scope.value,
            source=source.value,
            # The campaign the opt-out came through, whatever its scope.
            campaign_id=forward.campaign_id,
            message_id=message.id,
            detail=detail or {},
        ),
    )
    exists = session.scalar(
        select(Suppression.id).where(
            Suppression.contact_hash == forward.recipient_contact_hash,
            Suppression.channel == message.channel,
            Suppression.scope_key == key,
        )
    )
    if exists is not None:
        return
    try:
        # A savepoint: two opt-outs racing (a click and a provider event) write the same row,
        # and losing that race must not undo the rest of the caller's transaction.
        with session.begin_nested():
            session.add(
                Suppression(
                    contact_hash=forward.recipient_contact_hash,
                    channel=message.channel,
                    scope=scope.value,
                    scope_key=key,
                    campaign_id=campaign_id,
                    source=source.value,
                    message_id=message.id,
                )
            )
    except IntegrityError:
        pass


class SuppressionService:
    def __init__(self, db: Database, tokens: Tokens) -> None:
        self._db = db
        self._tokens = tokens

    def describe(self, token: str) -> UnsubscribeView:
        """Raises InvalidToken / ExpiredToken."""
        with self._db.reading() as session:
            return _view(self._message(session, token))

    def unsubscribe(self, token: str, scope: SuppressionScope, source: SuppressionSource) -> UnsubscribeView:
        """Suppress the recipient of the message behind the token; doing it twice is harmless."""
        with self._db.transaction() as session:
            message = self._message(session, token)
            add_suppression(session, message, scope, source)
            return _view(message)

    def _message(self, session: Session, token: str) -> Message:
        public_id = self._tokens.verify(Purpose.UNSUBSCRIBE, token)
        message = session.scalar(select(Message).where(Message.public_id == public_id))
        if message is None:
            raise InvalidToken("no message behind this token")
        return message


def _view(message: Message) -> UnsubscribeView:
    campaign = message.forward.campaign
    return UnsubscribeView(
        sender_name=message.forward.sender_name,
        brand_name=campaign.brand_name,
        campaign_name=campaign.name,
        channel=message.channel,
    )
