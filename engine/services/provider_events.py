"""What providers tell us after a send: delivery receipts, bounces, spam reports, opt-outs.

Each event moves its message forward (never back: a late `sent` does not undo a
`delivered`) and, where it means the person must not be contacted again, writes
suppression. Events are deduplicated by the provider's event id, because
providers retry webhooks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.channels.sendgrid import REFERENCE_ARG
from engine.channels.twilio import OPT_OUT_CODES
from engine.db import Database, utcnow
from engine.models import Message, MessageStatus, ProviderEvent, SuppressionScope, SuppressionSource
from engine.services.suppression import add_suppression

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

# Twilio error codes that mean the number must not be texted again (callbacks carry them as text).
TWILIO_OPT_OUT_CODES = {str(code) for code in OPT_OUT_CODES}


@dataclass(frozen=True)
class _Outcome:
    status: MessageStatus | None
    suppress: tuple[SuppressionScope, SuppressionSource] | None = None
    error_code: str | None = None
    error: str | None = None


@dataclass
class EventReport:
    applied: int = 0
    duplicates: int = 0
    unmatched: int = 0


class ProviderEventService:
    def __init__(self, db: Database) -> None:
        self._db = db

    def twilio_status(self, params: Mapping[str, str], reference: str | None = None) -> EventReport:
        """A Twilio status callback: MessageSid, MessageStatus, ErrorCode; `reference` is our
        message's public id from the callback URL."""
        sid = params.get("MessageSid") or params.get("SmsSid") or ""
        status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
        code = params.get("ErrorCode") or None
        outcome = _twilio_outcome(status, code)
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
            self._apply(session, message, outcome, report, f"twilio {sid} {status}")
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
                self._apply(session, message, _sendgrid_outcome(event), report, f"sendgrid {event_id} {kind}")
        return report

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
    def _apply(session: Session, message: Message | None, outcome: _Outcome, report: EventReport, what: str) -> None:
        if message is None:
            report.unmatched += 1
            log.info("provider event for no message of ours: %s", what)
            return
        report.applied += 1
        current = MessageStatus(message.status)
        if outcome.status is not None and _RANK.get(outcome.status, 0) > _RANK.get(current, -1):
            message.status = outcome.status
            message.updated_at = utcnow()
            if outcome.error_code or outcome.error:
                message.error_code = outcome.error_code
                message.error = outcome.error
        if outcome.suppress is not None:
            scope, source = outcome.suppress
            add_suppression(session, message, scope, source)


def _twilio_outcome(status: str, code: str | None) -> _Outcome:
    if status == "delivered":
        return _Outcome(MessageStatus.DELIVERED)
    if status in ("undelivered", "failed"):
        suppress = (SuppressionScope.GLOBAL, SuppressionSource.STOP) if code in TWILIO_OPT_OUT_CODES else None
        return _Outcome(MessageStatus.FAILED, suppress, error_code=code, error=f"Twilio reported {status}")
    if status == "sent":
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
    if kind in ("unsubscribe", "group_unsubscribe"):
        return _Outcome(None, (SuppressionScope.FRIENDS, SuppressionSource.LINK))
    return _Outcome(None)  # processed, deferred, open, click, group_resubscribe
