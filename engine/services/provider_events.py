"""What providers tell us: delivery receipts, bounces, spam reports, and texts people send us.

Each event moves its message forward (never back: a late `sent` does not undo a
`delivered`) and, where it means the person must not be contacted again, writes
suppression, with the provider's event id in the opt-out log. Events are deduplicated
by the provider's event id, because providers retry webhooks.

Texts to our number (STOP, START, HELP, as `engine.keywords` reads them) arrive with no
message of ours to hang on: they act on the sender's number, by hash.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine import metrics
from engine.channels import UnknownChannel, claiming
from engine.channels import channel as channel_named
from engine.clock import Clock
from engine.db import Database
from engine.models import (
    Campaign,
    Consent,
    ConsentSource,
    Forward,
    Message,
    MessageStatus,
    ProviderEvent,
    SuppressionScope,
    SuppressionSource,
)
from engine.services.suppression import add_suppression, lift_keyword_opt_outs, suppress_contact
from engine.transports.sendgrid import REFERENCE_ARG
from engine.transports.twilio import OPT_OUT_CODES, OUTSIDE_WHATSAPP_WINDOW

log = logging.getLogger(__name__)


# A later state never gives way to an earlier one.
_RANK = {
    MessageStatus.SENDING: 0,
    MessageStatus.UNKNOWN: 0,
    MessageStatus.SENT: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.BOUNCED: 3,
    MessageStatus.FAILED: 3,
}

# States of a message the worker may not have recorded yet when its first callback comes.
_NOT_YET_RECORDED = (MessageStatus.SENDING, MessageStatus.UNKNOWN)

# Twilio error codes that mean the number must not be texted again (callbacks carry them as text).
TWILIO_OPT_OUT_CODES = {str(code) for code in OPT_OUT_CODES}
# What staff read for the failures whose code alone says little.
TWILIO_FAILURES = {
    str(OUTSIDE_WHATSAPP_WINDOW): "WhatsApp refused a message that was no approved template outside its 24-hour "
    "window (63016): check the campaign's Content Template",
}


@dataclass(frozen=True)
class _Outcome:
    status: MessageStatus | None
    suppress: tuple[SuppressionScope, SuppressionSource] | None = None
    error_code: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class TextedBy:
    """The campaign that last texted a number: whom a HELP reply names, and in which language
    (the language that text was in: its forward's, else the campaign's default)."""

    campaign_id: int
    message_id: int
    brand_name: str
    support_contact: str
    locale: str = "en"
    address_form: str = "informal"


@dataclass
class EventReport:
    applied: int = 0
    duplicates: int = 0
    unmatched: int = 0


class ProviderEventService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        # Its stamps (a send first heard of here, an opt-out, a withdrawn consent) are compared
        # with the ones delivery makes, so they are on the same clock.
        self._clock = clock

    def twilio_status(self, params: Mapping[str, str], reference: str | None = None) -> EventReport:
        """A Twilio status callback: MessageSid, MessageStatus, ErrorCode; `reference` is our
        message's public id from the callback URL."""
        sid = params.get("MessageSid") or params.get("SmsSid") or ""
        status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
        code = params.get("ErrorCode") or None
        report = EventReport()
        with self._db.transaction() as session:
            message = None
            if reference:
                message = session.scalar(select(Message).where(Message.public_id == reference))
            if message is None and sid:
                message = session.scalar(select(Message).where(Message.provider_id == sid))
            if message is None:
                # Not remembered as seen: Twilio retries, and the message may be findable then.
                report.unmatched += 1
                log.info("twilio status for no message of ours: %s %s", sid, status)
                return report
            if not self._first_time(session, "twilio", f"{sid}:{status}", status):
                report.duplicates += 1
                return report
            if not message.provider_id and sid:
                message.provider_id = sid
            detail = {"provider": "twilio", "message_sid": sid, "event": status, "error_code": code}
            outcome = _twilio_outcome(_state_on(message.channel, status), status, code)
            self._apply(session, message, outcome, report, f"twilio {sid} {status}", detail, self._clock.now())
        return report

    def sendgrid_events(self, events: Iterable[Mapping[str, Any]]) -> EventReport:
        """A batch from SendGrid's Event Webhook."""
        report = EventReport()
        with self._db.transaction() as session:
            for event in events:
                kind = str(event.get("event", ""))
                event_id = str(event.get("sg_event_id", ""))
                if not event_id or not self._first_time(session, "sendgrid", event_id, kind):
                    report.duplicates += 1
                    continue
                message = self._sendgrid_message(session, event)
                detail = {"provider": "sendgrid", "event_id": event_id, "event": kind}
                if message is not None and not message.provider_id:
                    message.provider_id = str(event.get("sg_message_id", "")).split(".", 1)[0][:128] or None
                what = f"sendgrid {event_id} {kind}"
                now = self._clock.now()
                self._apply(session, message, _sendgrid_outcome(event), report, what, detail, now, _event_time(event))
        return report

    # -- texts to our number ---------------------------------------------------------

    def twilio_opt_out(self, contact_hash: str, keyword: str, message_sid: str, channel: str | None = None) -> bool:
        """STOP (or another opt-out word) from a number: no more texts to it, from any
        campaign, and any consent it gave is withdrawn, on the channel it came in on (texts,
        unless a channel that shares Twilio's hooks says otherwise). False for a retried webhook."""
        channel = channel or _bare_number_channel()
        now = self._clock.now()
        with self._db.transaction() as session:
            if message_sid and not self._first_time(session, "twilio", f"inbound:{message_sid}", "opt-out"):
                return False
            # The text is most likely a reply to the last one we sent: the log names it.
            texted = _last_texted(session, contact_hash, channel)
            suppress_contact(
                session,
                contact_hash,
                channel,
                SuppressionScope.GLOBAL,
                SuppressionSource.STOP,
                campaign_id=texted.campaign_id if texted else None,
                message_id=texted.message_id if texted else None,
                detail={"provider": "twilio", "keyword": keyword, "message_sid": message_sid},
                now=now,
            )
            session.execute(
                update(Consent)
                .where(
                    Consent.contact_hash == contact_hash,
                    Consent.channel == channel,
                    Consent.revoked_at.is_(None),
                )
                .values(revoked_at=now)
                .execution_options(synchronize_session=False)
            )
        return True

    def twilio_opt_in(self, contact_hash: str, keyword: str, message_sid: str, channel: str | None = None) -> bool:
        """START (or UNSTOP, YES) from a number: its STOPs are lifted and its consent recorded,
        the keyword and Twilio's message id as evidence. False for a retried webhook."""
        channel = channel or _bare_number_channel()
        evidence = {"provider": "twilio", "keyword": keyword, "message_sid": message_sid}
        now = self._clock.now()
        with self._db.transaction() as session:
            if message_sid and not self._first_time(session, "twilio", f"inbound:{message_sid}", "opt-in"):
                return False
            lift_keyword_opt_outs(session, contact_hash, channel, evidence, now=now)
            # For every campaign of the brand: the person texted the brand's number itself.
            session.add(
                Consent(
                    contact_hash=contact_hash,
                    channel=channel,
                    campaign_id=None,
                    source=ConsentSource.KEYWORD.value,
                    evidence=evidence,
                    given_at=now,
                )
            )
        return True

    def last_texted_by(self, contact_hash: str, channel: str | None = None) -> TextedBy | None:
        """The campaign whose text (on `channel`) this number got last, if any."""
        with self._db.reading() as session:
            return _last_texted(session, contact_hash, channel or _bare_number_channel())

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def _first_time(session: Session, provider: str, event_id: str, kind: str) -> bool:
        try:
            with session.begin_nested():
                session.add(ProviderEvent(provider=provider, event_id=event_id[:128], kind=kind[:32]))
        except IntegrityError:
            return False
        return True

    @staticmethod
    def _sendgrid_message(session: Session, event: Mapping[str, Any]) -> Message | None:
        reference = event.get(REFERENCE_ARG)
        if isinstance(reference, str) and reference:
            return session.scalar(select(Message).where(Message.public_id == reference))
        # Without our argument, SendGrid's message id starts with the X-Message-Id it answered.
        sg_message_id = str(event.get("sg_message_id", "")).split(".", 1)[0]
        if not sg_message_id:
            return None
        return session.scalar(select(Message).where(Message.provider_id == sg_message_id))

    @staticmethod
    def _apply(
        session: Session,
        message: Message | None,
        outcome: _Outcome,
        report: EventReport,
        what: str,
        detail: Mapping[str, Any],
        now: datetime,
        at: datetime | None = None,
    ) -> None:
        if message is None:
            report.unmatched += 1
            log.info("provider event for no message of ours: %s", what)
            return
        report.applied += 1
        current = MessageStatus(message.status)
        if outcome.status is not None and message.sent_at is None and current in _NOT_YET_RECORDED:
            # The provider's word came before the worker wrote the send down: the provider had
            # it, so it was sent, at the latest now. The worker's own record keeps this state.
            message.sent_at = at or now
        if outcome.status is not None and _RANK.get(outcome.status, 0) > _RANK.get(current, -1):
            metrics.message_status(message.channel, detail["provider"], outcome.status)
            message.status = outcome.status
            message.updated_at = now
            if outcome.error_code or outcome.error:
                message.error_code = outcome.error_code
                message.error = outcome.error
        if outcome.suppress is not None:
            scope, source = outcome.suppress
            add_suppression(session, message, scope, source, {k: v for k, v in detail.items() if v}, now=now)


def _state_on(channel: str, status: str) -> str | None:
    """The message state a provider's status word means on this channel (its module says)."""
    try:
        return channel_named(channel).provider_status(status)
    except UnknownChannel:
        return None


def _twilio_outcome(state: str | None, status: str, code: str | None) -> _Outcome:
    if state == MessageStatus.DELIVERED:
        return _Outcome(MessageStatus.DELIVERED)
    if state == MessageStatus.FAILED:
        suppress = (SuppressionScope.GLOBAL, SuppressionSource.STOP) if code in TWILIO_OPT_OUT_CODES else None
        error = f"Twilio reported {status}" + (f": {TWILIO_FAILURES[code]}" if code in TWILIO_FAILURES else "")
        return _Outcome(MessageStatus.FAILED, suppress, error_code=code, error=error)
    if state == MessageStatus.SENT:
        return _Outcome(MessageStatus.SENT)
    return _Outcome(None)  # queued, accepted, sending, read: nothing to record


_DROP_REASONS = {
    "bounced address": SuppressionSource.BOUNCE,
    "unsubscribed address": SuppressionSource.LINK,
    "spam reporting address": SuppressionSource.SPAM_REPORT,
}


def _sendgrid_outcome(event: Mapping[str, Any]) -> _Outcome:
    kind = event.get("event")
    reason = str(event.get("reason", ""))[:500] or None
    if kind == "delivered":
        return _Outcome(MessageStatus.DELIVERED)
    if kind == "bounce":
        # A block is the receiving server refusing this message, not the address being gone.
        if event.get("type") == "blocked":
            return _Outcome(MessageStatus.FAILED, error_code="blocked", error=reason)
        return _Outcome(
            MessageStatus.BOUNCED,
            (SuppressionScope.GLOBAL, SuppressionSource.BOUNCE),
            error_code="bounce",
            error=reason,
        )
    if kind == "dropped":
        # SendGrid drops mail to addresses on its own suppression lists; mirror them in ours.
        source = next((src for word, src in _DROP_REASONS.items() if word in (reason or "").lower()), None)
        suppress = (SuppressionScope.GLOBAL, source) if source else None
        return _Outcome(MessageStatus.FAILED, suppress, error_code="dropped", error=reason)
    if kind == "spamreport":
        return _Outcome(None, (SuppressionScope.GLOBAL, SuppressionSource.SPAM_REPORT))
    if kind == "unsubscribe":
        # SendGrid's "Opt Out of All Emails": the address joins its global unsubscribe list and
        # SendGrid drops every later mail to it, so ours must say the same.
        return _Outcome(None, (SuppressionScope.GLOBAL, SuppressionSource.LINK))
    if kind == "group_unsubscribe":
        # Out of one unsubscribe group, a kind of mail: ours are all mail forwarded by friends.
        return _Outcome(None, (SuppressionScope.FRIENDS, SuppressionSource.LINK))
    return _Outcome(None)  # processed, deferred, open, click, group_resubscribe


def _event_time(event: Mapping[str, Any]) -> datetime | None:
    """When SendGrid says the event happened (a Unix time), if it says."""
    stamp = event.get("timestamp")
    if isinstance(stamp, int | float) and not isinstance(stamp, bool) and 0 < stamp < 2**33:
        return datetime.fromtimestamp(stamp, UTC)
    return None


def _bare_number_channel() -> str:
    """The channel a bare number (no scheme) on Twilio's hooks belongs to: texts."""
    claimed = claiming("twilio", "")
    assert claimed is not None, "a registered channel claims Twilio's bare numbers"
    return claimed[0].name


def _last_texted(session: Session, contact_hash: str, channel: str) -> TextedBy | None:
    row = session.execute(
        select(
            Message.id,
            Campaign.id,
            Campaign.brand_name,
            Campaign.support_contact,
            Campaign.sender_email,
            Forward.locale,
            Campaign.locales,
            Campaign.address_form,
        )
        .join(Forward, Forward.id == Message.forward_id)
        .join(Campaign, Campaign.id == Forward.campaign_id)
        .where(
            Forward.recipient_contact_hash == contact_hash,
            Message.channel == channel,
            Message.sent_at.is_not(None),
        )
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    message_id, campaign_id, brand_name, support_contact, sender_email, sent_in, locales, address_form = row
    offered = list(locales or ()) or ["en"]
    locale = sent_in if sent_in in offered else offered[0]
    # The brand's own address answers when no support contact was set.
    return TextedBy(campaign_id, message_id, brand_name, support_contact or sender_email, locale, address_form)
