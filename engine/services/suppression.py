"""Opt-outs: the unsubscribe link (and RFC 8058 one-click), and the suppression checks.

Every opt-out, whatever its route, is written by `suppress_contact`: the suppression and
its opt-out log entry, in one transaction. Suppression is checked when a forward is
accepted and again just before each send; both checks go through `suppressed_hashes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine import metrics
from engine.clock import Clock
from engine.db import Database
from engine.models import Campaign, Message, OptOutAction, OptOutEntry, Suppression, SuppressionScope, SuppressionSource
from engine.models.suppression import keys_covering, scope_key
from engine.services.opt_out_log import OptOutRecord, append, take_turn
from engine.services.webhooks import publish
from engine.tokens import InvalidToken, Purpose, Tokens


@dataclass(frozen=True)
class UnsubscribeView:
    """What the unsubscribe page may say: who sent it, through whom, on which channel. No contact."""

    sender_name: str
    brand_name: str
    campaign_name: str
    channel: str
    # The page speaks the language the friend's message was in (the sender's), among the
    # campaign's languages, in the campaign's address form.
    locale: str | None = None
    locales: tuple[str, ...] = ("en",)
    address_form: str = "informal"


def suppressed_hashes(session: Session, campaign_id: int, channel: str, hashes: Iterable[str]) -> set[str]:
    """Those of these contact hashes that must not get a message of this campaign on this channel."""
    wanted = list(set(hashes))
    if not wanted:
        return set()
    return set(session.scalars(suppressed_query(campaign_id, {channel: wanted})))


def suppressed_query(campaign_id: int, hashes_by_channel: Mapping[str, Iterable[str]]) -> Select[str]:
    """The query of suppressed_hashes for contacts on several channels at once (a part of a
    larger read: a forward checks its friends in one round trip)."""
    return select(Suppression.contact_hash).where(
        or_(
            *(
                and_(Suppression.channel == channel, Suppression.contact_hash.in_(sorted(set(hashes))))
                for channel, hashes in hashes_by_channel.items()
            )
        ),
        Suppression.scope_key.in_(keys_covering(campaign_id)),
    )


def _opt_out_event(
    session: Session,
    contact_hash: str,
    channel: str,
    scope: SuppressionScope,
    source: SuppressionSource,
    campaign_id: int | None,
) -> dict[str, Any]:
    """What a webhook says of an opt-out: the contact's keyed hash, never the contact. One of a
    campaign goes to its team; one everywhere (no campaign named) to every team that listens."""
    event: dict[str, Any] = {
        "contact_hash": contact_hash,
        "channel": channel,
        "scope": scope.value,
        "source": source.value,
    }
    if scope is SuppressionScope.CAMPAIGN and campaign_id is not None:
        event["campaign"] = session.scalar(select(Campaign.slug).where(Campaign.id == campaign_id))
    return event


def suppress_contact(
    session: Session,
    contact_hash: str,
    channel: str,
    scope: SuppressionScope,
    source: SuppressionSource,
    *,
    campaign_id: int | None = None,
    message_id: int | None = None,
    detail: Mapping[str, Any] | None = None,
    now: datetime,
) -> OptOutEntry | None:
    """Suppress a contact (by hash) on a channel, and log the opt-out, in the caller's transaction;
    the entry logged, or None when this very opt-out (same scope, same source) already stands.

    Every opt-out goes through here, whether it arrives with a message to hang it on (a link,
    a provider event) or without (a STOP from a number). `campaign_id` is the campaign the
    opt-out came through, whatever its scope; a campaign-scoped opt-out needs one.
    Already suppressed another way (another source) is logged all the same, since compliance
    must be able to show every distinct request and when it was honoured.
    `now` is the app's clock: compliance compares these stamps with the messages' `sent_at`."""
    if scope is SuppressionScope.CAMPAIGN and campaign_id is None:
        raise ValueError("a campaign-scoped opt-out needs its campaign")
    # The log's turn first: a repeat racing its original (a one-click POST retried at once)
    # then sees the original's suppression, and is not logged twice.
    take_turn(session)
    key = scope_key(scope, campaign_id)
    existing = session.scalar(
        select(Suppression).where(
            Suppression.contact_hash == contact_hash,
            Suppression.channel == channel,
            Suppression.scope_key == key,
        )
    )
    if existing is not None and existing.source == source.value:
        # The same opt-out again (a one-click POSTed five times, a second STOP): one request,
        # one entry. Compliance shows when it was first asked and honoured.
        return None
    entry = append(
        session,
        OptOutRecord(
            contact_hash=contact_hash,
            channel=channel,
            scope=scope.value,
            source=source.value,
            campaign_id=campaign_id,
            message_id=message_id,
            detail=detail or {},
        ),
        now,
    )
    metrics.opt_out(source.value)
    event = _opt_out_event(session, contact_hash, channel, scope, source, campaign_id)
    publish(session, "opt_out.recorded", event, now=now)
    if existing is not None:
        # START lifts only what STOP put in place: an opt-out made another way since (a link,
        # a bounce, an erasure) must outlast it, so it takes the row over.
        if existing.source == SuppressionSource.STOP and source is not SuppressionSource.STOP:
            existing.source = source.value
        return entry
    try:
        # A savepoint: two opt-outs racing (a click and a provider event) write the same row,
        # and losing that race must not undo the rest of the caller's transaction.
        with session.begin_nested():
            session.add(
                Suppression(
                    contact_hash=contact_hash,
                    channel=channel,
                    scope=scope.value,
                    scope_key=key,
                    campaign_id=campaign_id if scope is SuppressionScope.CAMPAIGN else None,
                    source=source.value,
                    message_id=message_id,
                    created_at=now,
                )
            )
    except IntegrityError:
        pass
    return entry


def add_suppression(
    session: Session,
    message: Message,
    scope: SuppressionScope,
    source: SuppressionSource,
    detail: Mapping[str, Any] | None = None,
    *,
    now: datetime,
) -> None:
    """Suppress the recipient of this message (by hash, on its channel) and log the opt-out."""
    forward = message.forward
    suppress_contact(
        session,
        forward.recipient_contact_hash,
        message.channel,
        scope,
        source,
        campaign_id=forward.campaign_id,
        message_id=message.id,
        detail=detail,
        now=now,
    )


def lift_keyword_opt_outs(
    session: Session, contact_hash: str, channel: str, detail: Mapping[str, Any] | None = None, *, now: datetime
) -> OptOutEntry:
    """The person texted START (or UNSTOP, YES): lift what their STOPs put in place, and log it.

    Only suppressions whose source is `stop` go: START is the answer to STOP on the same
    channel (carriers and Twilio pair them, and Twilio lifts only its own STOP block). An
    unsubscribe link, a bounce, a spam report, a staff entry or an erasure request was made
    some other way, and a text cannot undo it: the person (or their carrier) said so
    elsewhere, sometimes for one campaign only, and only that route may take it back.
    The opt-in is logged even when nothing was lifted, as evidence of what the person asked."""
    lifted = list(
        session.scalars(
            select(Suppression).where(
                Suppression.contact_hash == contact_hash,
                Suppression.channel == channel,
                Suppression.source == SuppressionSource.STOP.value,
            )
        )
    )
    for suppression in lifted:
        session.delete(suppression)
    return append(
        session,
        OptOutRecord(
            contact_hash=contact_hash,
            channel=channel,
            scope=SuppressionScope.GLOBAL.value,
            source=SuppressionSource.START.value,
            action=OptOutAction.OPT_IN,
            detail={**(detail or {}), "lifted": len(lifted)},
        ),
        now,
    )


class SuppressionService:
    def __init__(self, db: Database, tokens: Tokens, clock: Clock) -> None:
        self._db = db
        self._tokens = tokens
        self._clock = clock

    def describe(self, token: str) -> UnsubscribeView:
        """Raises InvalidToken / ExpiredToken."""
        with self._db.reading() as session:
            return _view(self._message(session, token))

    def unsubscribe(
        self,
        token: str,
        scope: SuppressionScope,
        source: SuppressionSource,
        detail: Mapping[str, Any] | None = None,
    ) -> UnsubscribeView:
        """Suppress the recipient of the message behind the token; doing it twice is harmless.
        `detail` is the request's metadata for the log (hashed address, user agent)."""
        with self._db.transaction() as session:
            message = self._message(session, token)
            add_suppression(session, message, scope, source, detail, now=self._clock.now())
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
        locale=message.forward.locale,
        locales=tuple(campaign.locales or ("en",)),
        address_form=campaign.address_form,
    )
