"""Delivery: claim queued messages, render them, hand them to a transport, record the outcome.

At most once per message row. A message is claimed (`queued → sending`) and that
claim committed before the provider is called; only the worker whose UPDATE
moved the row sends it. A crash between the provider call and the commit leaves
the row in `sending`, which the sweeper later marks `unknown` for a person to
review: it is never resent blindly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.orm import selectinload

from engine.channels import (
    AmbiguousError,
    OutgoingEmail,
    OutgoingSms,
    PermanentError,
    TransientError,
    Transports,
)
from engine.contacts import Channel
from engine.db import Database, utcnow
from engine.models import (
    Campaign,
    CampaignStatus,
    Forward,
    Message,
    MessageStatus,
    SuppressionScope,
    SuppressionSource,
)
from engine.policy import policy_for
from engine.queue import DELIVER_MESSAGES, JobQueue, QueueUnavailable
from engine.rendering import RenderError, TemplateRenderer, default_templates
from engine.services.suppression import add_suppression, suppressed_hashes
from engine.tokens import Purpose, Tokens

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
REQUEUE_BATCH = 500
# Retry backoff after a transient error, unless the provider said how long to wait.
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 15 * 60.0


@dataclass(frozen=True)
class PausePolicy:
    """When a campaign stops itself: so many of its recent sends failing means something is
    wrong (a revoked API key, a blocked sender, a list of bad numbers) and carrying on would
    only burn reputation."""

    failure_rate: float = 0.5
    min_samples: int = 20
    window: int = 100


@dataclass
class DeliveryReport:
    sent: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # not ours to send: claimed elsewhere or not queued
    retry: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    suppressed: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class SweepReport:
    marked_unknown: int
    requeued: int


class Links:
    """The public URLs (and the unsubscribe mailbox, when there is one) that go into messages."""

    def __init__(self, base_url: str, tokens: Tokens, unsubscribe_mailto: str | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._tokens = tokens
        self._mailto = unsubscribe_mailto

    def list_unsubscribe(self, message: Message, https_link: str) -> str:
        """The List-Unsubscribe header: the one-click https link first, then mailto if configured."""
        if not self._mailto:
            return f"<{https_link}>"
        return f"<{https_link}>, <mailto:{self._mailto}?subject=unsubscribe%20{message.public_id}>"

    def forward(self, forward: Forward) -> str:
        return f"{self._base}/f/{self._tokens.sign(Purpose.FORWARD, forward.public_id)}"

    def unsubscribe(self, message: Message) -> str:
        return f"{self._base}/u/{self._tokens.sign(Purpose.UNSUBSCRIBE, message.public_id)}"


class DeliveryService:
    def __init__(
        self,
        db: Database,
        transports: Transports,
        renderer: TemplateRenderer,
        links: Links,
        queue: JobQueue,
        *,
        sending_stale_after: timedelta = timedelta(minutes=10),
        pause_policy: PausePolicy | None = None,
    ) -> None:
        self._db = db
        self._transports = transports
        self._renderer = renderer
        self._links = links
        self._queue = queue
        self._defaults = default_templates()
        self._stale_after = sending_stale_after
        self._pause = pause_policy or PausePolicy()

    def deliver(self, message_ids: Sequence[int]) -> DeliveryReport:
        report = DeliveryReport()
        claimed = self._claim(message_ids)
        report.skipped = sorted(set(message_ids) - set(claimed))
        if not claimed:
            return report
        # No transaction is held while a provider is called: each outcome is recorded in
        # its own short one, so a crash later in the batch cannot undo the record of this one.
        messages = self._load(claimed)
        # Checked again right before sending: an opt-out since the forward was accepted wins.
        suppressed = self._suppressed(messages)
        for message in messages:
            if message.id in suppressed:
                outcome = _Outcome(MessageStatus.SUPPRESSED, error="recipient opted out before the send")
            else:
                outcome = self._send_one(message)
            self._record(message, outcome, report)
        if report.failed or report.unknown:
            self._pause_failing_campaigns({m.forward.campaign_id for m in messages})
        return report

    def sweep(self) -> SweepReport:
        """Mark messages stuck in `sending` as `unknown`, and enqueue `queued` ones again.

        Enqueueing a queued message twice is harmless: only one claim can win.
        """
        now = utcnow()
        with self._db.transaction() as session:
            marked = session.execute(
                update(Message)
                .where(Message.status == MessageStatus.SENDING, Message.claimed_at < now - self._stale_after)
                .values(
                    status=MessageStatus.UNKNOWN, error="no outcome recorded: worker stopped mid-send", updated_at=now
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            queued = list(
                session.scalars(
                    _claimable(now)
                    .where(
                        or_(
                            and_(Message.not_before.is_(None), Message.updated_at < now - timedelta(seconds=30)),
                            Message.not_before.is_not(None),
                        )
                    )
                    .order_by(Message.id)
                    .limit(REQUEUE_BATCH)
                )
            )
        requeued = 0
        for start in range(0, len(queued), 100):
            try:
                self._queue.enqueue(DELIVER_MESSAGES, queued[start : start + 100])
            except QueueUnavailable:
                log.exception("sweep: could not enqueue queued messages")
                break
            requeued += len(queued[start : start + 100])
        if marked or requeued:
            log.warning("sweep: %d messages marked unknown, %d requeued", marked, requeued)
        return SweepReport(marked_unknown=marked, requeued=requeued)

    # -- steps -----------------------------------------------------------------------

    def _claim(self, message_ids: Iterable[int]) -> list[int]:
        ids = sorted(set(message_ids))
        if not ids:
            return []
        now = utcnow()
        with self._db.transaction() as session:
            # SKIP LOCKED (PostgreSQL): rows another worker is claiming right now are theirs;
            # do not wait for them. SQLite runs writers one at a time and needs no lock.
            claimable = _claimable(now).where(Message.id.in_(ids)).with_for_update(skip_locked=True, of=Message)
            rows = session.execute(
                update(Message)
                .where(Message.id.in_(claimable.scalar_subquery()), Message.status == MessageStatus.QUEUED)
                .values(
                    status=MessageStatus.SENDING,
                    attempts=Message.attempts + 1,
                    claimed_at=now,
                    updated_at=now,
                )
                .returning(Message.id)
                .execution_options(synchronize_session=False)
            )
            return sorted(rows.scalars())

    def _load(self, ids: list[int]) -> list[Message]:
        with self._db.reading() as session:
            return list(
                session.scalars(
                    select(Message)
                    .where(Message.id.in_(ids))
                    .order_by(Message.id)
                    .options(
                        selectinload(Message.forward).selectinload(Forward.campaign).selectinload(Campaign.templates)
                    )
                )
            )

    def _suppressed(self, messages: list[Message]) -> set[int]:
        groups: dict[tuple[int, str], list[Message]] = {}
        for message in messages:
            groups.setdefault((message.forward.campaign_id, message.channel), []).append(message)
        suppressed: set[int] = set()
        with self._db.reading() as session:
            for (campaign_id, channel), group in groups.items():
                hashes = suppressed_hashes(
                    session, campaign_id, channel, [m.forward.recipient_contact_hash for m in group]
                )
                suppressed.update(m.id for m in group if m.forward.recipient_contact_hash in hashes)
        return suppressed

    def _send_one(self, message: Message) -> _Outcome:
        forward = message.forward
        campaign = forward.campaign
        if not forward.recipient_contact:
            return _Outcome(MessageStatus.FAILED, error="recipient contact no longer stored")
        try:
            sources = campaign.template_sources(self._defaults)
            context = self._context(message)
            if message.channel == Channel.EMAIL:
                rendered = self._renderer.render_email(sources, context)
                provider_id = self._transports.email.send_email(
                    OutgoingEmail(
                        to=forward.recipient_contact,
                        from_name=campaign.brand_name,
                        from_email=campaign.sender_email,
                        subject=rendered.subject,
                        html=rendered.html,
                        text=rendered.text,
                        headers=self._email_headers(message, context["unsubscribe_link"]),
                        reference=message.public_id,
                    )
                )
            else:
                text = self._renderer.render_sms(
                    sources, context, segment_limit=campaign.sms_segment_limit, smart=campaign.sms_smart_encoding
                )
                provider_id = self._transports.sms.send_sms(
                    OutgoingSms(to=forward.recipient_contact, text=text, reference=message.public_id)
                )
        except RenderError as error:
            return _Outcome(MessageStatus.FAILED, error=f"template error: {error}", code="render")
        except TransientError as error:
            if message.attempts >= MAX_ATTEMPTS:
                return _Outcome(
                    MessageStatus.FAILED, error=f"gave up after {message.attempts} attempts: {error}", code=error.code
                )
            delay = error.retry_after or min(BACKOFF_BASE_SECONDS * 2 ** (message.attempts - 1), BACKOFF_MAX_SECONDS)
            return _Outcome(MessageStatus.QUEUED, error=str(error), code=error.code, retry_in=delay)
        except PermanentError as error:
            return _Outcome(MessageStatus.FAILED, error=str(error), code=error.code, opted_out=error.opted_out)
        except AmbiguousError as error:
            return _Outcome(MessageStatus.UNKNOWN, error=str(error), code=error.code)
        except Exception as error:  # an unexpected failure may have happened after the request left
            log.exception("message %s: unexpected error while sending", message.id)
            return _Outcome(MessageStatus.UNKNOWN, error=f"{type(error).__name__}: {error}")
        purge = policy_for(message.policy_name, campaign.policy_settings).purges_contact_on_send
        return _Outcome(MessageStatus.SENT, provider_id=provider_id, purge_contact=purge)

    def _context(self, message: Message) -> dict[str, Any]:
        forward = message.forward
        campaign = forward.campaign
        return {
            "sender_name": forward.sender_name,
            "note": forward.note or "",
            "campaign_name": campaign.name,
            "offer_title": campaign.offer_title,
            "offer_description": campaign.offer_description,
            "brand_name": campaign.brand_name,
            "postal_address": campaign.postal_address,
            "support_contact": campaign.support_contact,
            "link": self._links.forward(forward),
            "unsubscribe_link": self._links.unsubscribe(message),
        }

    def _record(self, message: Message, outcome: _Outcome, report: DeliveryReport) -> None:
        now = utcnow()
        values: dict[str, Any] = {
            "status": outcome.status,
            "updated_at": now,
            "error": outcome.error,
            "error_code": outcome.code,
        }
        if outcome.status == MessageStatus.SENT:
            values.update(provider_id=outcome.provider_id, sent_at=now)
        if outcome.retry_in is not None:
            values["not_before"] = now + timedelta(seconds=outcome.retry_in)
        with self._db.transaction() as session:
            session.execute(
                update(Message)
                .where(Message.id == message.id, Message.status == MessageStatus.SENDING)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if outcome.opted_out:
                # The provider knows the recipient opted out (e.g. replied STOP): so must we.
                add_suppression(
                    session, session.get(Message, message.id), SuppressionScope.GLOBAL, SuppressionSource.STOP
                )
            if outcome.purge_contact:
                session.execute(
                    update(Forward)
                    .where(Forward.id == message.forward_id)
                    .values(recipient_contact=None)
                    .execution_options(synchronize_session=False)
                )
        {
            MessageStatus.SENT: report.sent,
            MessageStatus.QUEUED: report.retry,
            MessageStatus.UNKNOWN: report.unknown,
            MessageStatus.SUPPRESSED: report.suppressed,
        }.get(outcome.status, report.failed).append(message.id)
        if outcome.status == MessageStatus.UNKNOWN:
            log.error("message %s: outcome unknown (%s); left for review, not resent", message.id, outcome.error)
        elif outcome.status == MessageStatus.FAILED:
            log.warning("message %s: failed (%s)", message.id, outcome.error)

    def _pause_failing_campaigns(self, campaign_ids: set[int]) -> None:
        policy = self._pause
        finished = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.FAILED, MessageStatus.UNKNOWN)
        with self._db.transaction() as session:
            for campaign_id in campaign_ids:
                recent = list(
                    session.scalars(
                        select(Message.status)
                        .join(Message.forward)
                        .where(Forward.campaign_id == campaign_id, Message.status.in_(finished))
                        .order_by(Message.updated_at.desc(), Message.id.desc())
                        .limit(policy.window)
                    )
                )
                failures = sum(1 for status in recent if status in (MessageStatus.FAILED, MessageStatus.UNKNOWN))
                if len(recent) < policy.min_samples or failures / len(recent) < policy.failure_rate:
                    continue
                reason = (
                    f"paused automatically: {failures} of its last {len(recent)} messages failed "
                    f"(threshold {policy.failure_rate:.0%}); check the errors on its failed messages before resuming"
                )
                paused = session.execute(
                    update(Campaign)
                    .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.ACTIVE)
                    .values(status=CampaignStatus.PAUSED, status_reason=reason, updated_at=utcnow())
                    .execution_options(synchronize_session=False)
                ).rowcount
                if paused:
                    log.error("campaign %s %s", campaign_id, reason)

    def _email_headers(self, message: Message, unsubscribe_link: str) -> dict[str, str]:
        domain = message.forward.campaign.sender_email.rpartition("@")[2] or "fluister.invalid"
        return {
            "Message-ID": f"<{message.public_id}@{domain}>",
            "List-Unsubscribe": self._links.list_unsubscribe(message, unsubscribe_link),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }


@dataclass(frozen=True)
class _Outcome:
    status: MessageStatus
    provider_id: str | None = None
    error: str | None = None
    code: str | None = None
    purge_contact: bool = False
    retry_in: float | None = None  # seconds, for a message queued again
    opted_out: bool = False


def _claimable(now: datetime) -> Select[tuple[int]]:
    """Queued messages whose campaign is active and whose retry time has come."""
    return (
        select(Message.id)
        .join(Message.forward)
        .join(Forward.campaign)
        .where(
            Message.status == MessageStatus.QUEUED,
            Campaign.status == CampaignStatus.ACTIVE,
            or_(Message.not_before.is_(None), Message.not_before <= now),
        )
    )
