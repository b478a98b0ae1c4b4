"""Messages whose fate is uncertain (`unknown`), and an operator's reconciliation of them.

A message is `unknown` when it was handed to a provider and no outcome came back (a worker
stopped mid-send, an ambiguous answer such as a timeout after the request left). It may have
gone, so nothing sends it again on its own. An operator looks in the provider's log and either
marks it sent, or puts it back in the queue. Putting back is safe only for a message that was
never handed over; one that was goes back only when forced, after the provider's log shows it
did not arrive. Every reconciliation is written in the campaign's history (who, which message,
from what to what), in the same transaction as the change.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.db import Database
from engine.models import Campaign, Forward, Message, MessageStatus
from engine.queue import JobQueue, QueueUnavailable
from engine.services.history import Actor, EventAction, record_event

log = logging.getLogger(__name__)

# One page of the console (and of the command's output) at a time: enough to act on.
LIST_LIMIT = 500


@dataclass(frozen=True)
class UnknownMessage:
    """An `unknown` message as an operator reviews it: never the recipient's contact."""

    id: int
    public_id: str
    campaign: str
    channel: str
    reason: str  # the stored error: why its outcome is not known
    error_code: str | None
    provider_id: str | None
    handed_at: datetime | None  # None: it never left us
    age: timedelta  # since it was written

    @property
    def handed_over(self) -> bool:
        return self.handed_at is not None

    @property
    def age_text(self) -> str:
        """Like 3h 5m, or 2d 4h: precise enough to tell a stuck message from a fresh one."""
        minutes = max(int(self.age.total_seconds()) // 60, 0)
        days, minutes = divmod(minutes, 24 * 60)
        hours, minutes = divmod(minutes, 60)
        return f"{days}d {hours}h" if days else f"{hours}h {minutes}m"


@dataclass
class Reconciliation:
    """What happened to each message asked about."""

    done: list[int] = field(default_factory=list)
    handed_over: list[int] = field(default_factory=list)  # refused: may have gone (requeue without force)
    not_unknown: dict[int, str] = field(default_factory=dict)  # refused: its status now
    missing: list[int] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return bool(self.handed_over or self.not_unknown)


def list_unknown(db: Database, clock: Clock, *, limit: int = LIST_LIMIT) -> list[UnknownMessage]:
    now = clock.now()
    with db.reading() as session:
        rows = session.execute(
            select(Message, Campaign.slug)
            .join(Forward, Message.forward_id == Forward.id)
            .join(Campaign, Forward.campaign_id == Campaign.id)
            .where(Message.status == MessageStatus.UNKNOWN)
            .order_by(Message.created_at, Message.id)
            .limit(limit)
        ).all()
        return [
            UnknownMessage(
                message.id,
                message.public_id,
                slug,
                message.channel,
                message.error or "no reason recorded",
                message.error_code,
                message.provider_id,
                message.handed_at,
                now - message.created_at,
            )
            for message, slug in rows
        ]


def requeue(
    db: Database,
    queue: JobQueue,
    clock: Clock,
    actor: Actor,
    ids: Iterable[int] = (),
    *,
    never_handed_over: bool = False,
    force: bool = False,
) -> Reconciliation:
    """Put `unknown` messages back in the queue: those in `ids`, or with `never_handed_over`
    every one that never left us. A handed-over one is refused unless `force` (the operator
    checked the provider's log: it did not arrive)."""
    report = Reconciliation()
    now = clock.now()
    with db.transaction() as session:
        if never_handed_over:
            messages = _unknown_never_handed(session)
        else:
            messages = _locked(session, ids, report)
            if report.missing:  # a mistyped id: change nothing, so the operator can retype the list
                return report

        def back_in_queue(message: Message) -> bool:
            if message.handed_at is not None and not force:
                report.handed_over.append(message.id)
                return False
            message.status = MessageStatus.QUEUED
            message.handed_at = None
            message.not_before = None
            message.updated_at = now
            return True

        reason = "requeued after checking the provider's log" if force else "requeued"
        _settle(session, messages, report, actor, reason, MessageStatus.QUEUED, back_in_queue)
    if report.done:
        log.warning("%d unknown messages requeued by %s: %s", len(report.done), actor.name, report.done)
        try:
            queue.request_dispatch(extra=True)
        except QueueUnavailable as error:  # they are queued: the sweeper dispatches them
            log.warning("could not ask for a dispatcher (%s); the sweeper will", error)
    return report


def mark_sent(db: Database, clock: Clock, actor: Actor, ids: Iterable[int]) -> Reconciliation:
    """Record that `unknown` messages did go (the operator found them in the provider's log):
    they count as sent, and are never sent again."""
    report = Reconciliation()
    now = clock.now()
    with db.transaction() as session:
        messages = _locked(session, ids, report)
        if report.missing:  # a mistyped id: change nothing, so the operator can retype the list
            return report

        def sent(message: Message) -> bool:
            message.status = MessageStatus.SENT
            message.sent_at = message.handed_at or now
            message.updated_at = now
            return True

        reason = "marked sent after checking the provider's log"
        _settle(session, messages, report, actor, reason, MessageStatus.SENT, sent)
    if report.done:
        log.warning("%d unknown messages marked sent by %s: %s", len(report.done), actor.name, report.done)
    return report


def _locked(session: Session, ids: Iterable[int], report: Reconciliation) -> list[tuple[Message, int]]:
    wanted = sorted(set(ids))
    found = session.execute(
        select(Message, Forward.campaign_id)
        .join(Forward, Message.forward_id == Forward.id)
        .where(Message.id.in_(wanted))
        .order_by(Message.id)
        .with_for_update(of=Message)
    ).all()
    present = {message.id for message, _ in found}
    report.missing.extend(i for i in wanted if i not in present)
    return [(message, campaign_id) for message, campaign_id in found]


def _unknown_never_handed(session: Session) -> list[tuple[Message, int]]:
    rows = session.execute(
        select(Message, Forward.campaign_id)
        .join(Forward, Message.forward_id == Forward.id)
        .where(Message.status == MessageStatus.UNKNOWN, Message.handed_at.is_(None))
        .order_by(Message.id)
        .with_for_update(of=Message)
    ).all()
    return [(message, campaign_id) for message, campaign_id in rows]


def _settle(
    session: Session,
    messages: list[tuple[Message, int]],
    report: Reconciliation,
    actor: Actor,
    reason: str,
    to: MessageStatus,
    change: Callable[[Message], bool],
) -> None:
    """Move each `unknown` message to `to` by `change` (False: it stays as it is), and write
    the moves in each campaign's history. A message no longer `unknown` is left alone."""
    events: dict[int, dict[str, list[str]]] = defaultdict(dict)
    for message, campaign_id in messages:
        if message.status != MessageStatus.UNKNOWN:
            report.not_unknown[message.id] = message.status
            continue
        if not change(message):
            continue
        report.done.append(message.id)
        events[campaign_id][f"message {message.public_id}"] = [MessageStatus.UNKNOWN, to]
    for campaign_id, changes in events.items():
        record_event(session, campaign_id, actor, EventAction.MESSAGES_RECONCILED, changes, reason)
