"""Opt-outs: the unsubscribe link (and RFC 8058 one-click), and the suppression checks.

Every opt-out, whatever its route, is written by `suppress_contact`: the suppression and
its opt-out log entry, in one transaction. Suppression is checked when a forward is
accepted and again just before each send; both checks go through `suppressed_hashes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, or_, select
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

# The widest first: what the page says stands when several opt-outs cover the campaign.
_WIDEST_FIRST = (SuppressionScope.GLOBAL, SuppressionScope.FRIENDS, SuppressionScope.CAMPAIGN)


@dataclass(frozen=True)
class UnsubscribeView:
    """What the unsubscribe page may say: who sent it, through whom, on which channel. No contact.

    It speaks the brand's words (its name, the offer's title), never the campaign's internal
    name, and says which opt-out already stands, so that a second visit does not ask again."""

    sender_name: str
    brand_name: str
    offer_title: str
    channel: str
    standing: SuppressionScope | None = None
    # Signed for a short while after an opt-out made on the page: it can be taken back.
    undo: str | None = None
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
    values = {"b_hashes": wanted, "b_channel": channel, "b_keys": list(keys_covering(campaign_id))}
    return set(session.connection().execute(_suppressed_statement(), values).scalars())


@cache
def _suppressed_statement() -> Select[Any]:
    """Built once: the send loop asks before every text it hands over, and building the ORM's
    statement each time cost more than the query."""
    table = Suppression.__table__
    return select(table.c.contact_hash).where(
        table.c.contact_hash.in_(bindparam("b_hashes", expanding=True)),
        table.c.channel == bindparam("b_channel"),
        table.c.scope_key.in_(bindparam("b_keys", expanding=True)),
    )


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
            message = self._message(session, token)
            return _view(message, _standing(session, message))

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
            # A mail provider's one-click has nobody to show an undo to.
            undo = None
            if source is SuppressionSource.LINK:
                undo = self._tokens.sign(Purpose.UNSUBSCRIBE_UNDO, f"{message.public_id}:{scope.value}")
            return _view(message, _standing(session, message), undo)

    def undo(self, token: str, undo: str, detail: Mapping[str, Any] | None = None) -> UnsubscribeView:
        """Take back the opt-out this page just made, and log that the person asked so.

        Only the suppression the link itself wrote goes (same message, same scope, still from
        the link): an opt-out that stands for another reason (a STOP, a bounce, a complaint, an
        erasure, or the link of another message) outlasts any undo. Raises InvalidToken /
        ExpiredToken, for either token, and for an undo signed for another message."""
        with self._db.transaction() as session:
            message = self._message(session, token)
            public_id, _, scope_name = self._tokens.verify(Purpose.UNSUBSCRIBE_UNDO, undo).rpartition(":")
            if public_id != message.public_id or scope_name not in {s.value for s in SuppressionScope}:
                raise InvalidToken("the undo is for another message")
            scope = SuppressionScope(scope_name)
            forward = message.forward
            take_turn(session)
            lifted = session.scalar(
                select(Suppression).where(
                    Suppression.contact_hash == forward.recipient_contact_hash,
                    Suppression.channel == message.channel,
                    Suppression.scope_key == scope_key(scope, forward.campaign_id),
                    Suppression.source == SuppressionSource.LINK.value,
                    Suppression.message_id == message.id,
                )
            )
            if lifted is not None:
                session.delete(lifted)
                session.flush()
                append(
                    session,
                    OptOutRecord(
                        contact_hash=forward.recipient_contact_hash,
                        channel=message.channel,
                        scope=scope.value,
                        source=SuppressionSource.UNDO.value,
                        action=OptOutAction.OPT_IN,
                        campaign_id=forward.campaign_id,
                        message_id=message.id,
                        detail=dict(detail or {}),
                    ),
                    self._clock.now(),
                )
            return _view(message, _standing(session, message))

    def _message(self, session: Session, token: str) -> Message:
        public_id = self._tokens.verify(Purpose.UNSUBSCRIBE, token)
        message = session.scalar(select(Message).where(Message.public_id == public_id))
        if message is None:
            raise InvalidToken("no message behind this token")
        return message


def _standing(session: Session, message: Message) -> SuppressionScope | None:
    """The widest opt-out that stops this campaign's messages to this recipient on this channel."""
    forward = message.forward
    keys = set(
        session.scalars(
            select(Suppression.scope_key).where(
                Suppression.contact_hash == forward.recipient_contact_hash,
                Suppression.channel == message.channel,
                Suppression.scope_key.in_(keys_covering(forward.campaign_id)),
            )
        )
    )
    return next((scope for scope in _WIDEST_FIRST if scope_key(scope, forward.campaign_id) in keys), None)


def _view(message: Message, standing: SuppressionScope | None, undo: str | None = None) -> UnsubscribeView:
    campaign = message.forward.campaign
    return UnsubscribeView(
        sender_name=message.forward.sender_name,
        brand_name=campaign.brand_name,
        offer_title=campaign.offer_title,
        channel=message.channel,
        standing=standing,
        undo=undo,
        locale=message.forward.locale,
        locales=tuple(campaign.locales or ("en",)),
        address_form=campaign.address_form,
    )
