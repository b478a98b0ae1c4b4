"""Sending webhook deliveries: signed as Standard Webhooks says, retried, given up, and the
endpoints that keep failing disabled.

A job (`workers.jobs.deliver_webhook`, given a delivery's id) claims its delivery in the
database, sends it outside any transaction, and records the answer. A failed attempt waits
(RETRY_DELAYS, with some jitter so that an endpoint coming back is not hit by everything at
once) and the sweep asks for a job again when it is due; after the last one the delivery is
`failed`. Webhooks are delivered at least once: a job that dies after sending is sent again by
the sweep, with the same `webhook-id`, which is how a receiver tells a repeat.

Decided by the app's clock: when an attempt is due, when an endpoint has failed long enough.
The signature's timestamp is the wall clock's instead, since the receiver compares it with
its own (a fixed test clock would make every delivery look stale or from the future).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Select, delete, or_, select, update
from sqlalchemy.orm import Session

from engine import metrics
from engine.clock import Clock
from engine.db import Database, rows_changed
from engine.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from engine.outbound import OutboundError, Resolver, UnsafeUrl, post
from engine.queue import QueueUnavailable

log = logging.getLogger(__name__)

DELIVER = "workers.jobs.deliver_webhook"
# The wait after each failed attempt: eight attempts over about a day, then `failed`.
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
JITTER = 0.1  # each wait is up to this share longer or shorter
# A delivery claimed this long ago and still `sending` lost its job (a worker died): sent again.
STALE_SENDING = timedelta(minutes=5)
# A due delivery whose job was asked for this long ago and has not run (lost with Redis): asked again.
REQUEUE_AFTER = timedelta(minutes=5)
SWEEP_BATCH = 500
# How long the delivery log (and the events it sent) is kept once a delivery is settled.
LOG_KEPT = timedelta(days=30)
FORGET_EVERY_SECONDS = 3600
USER_AGENT = "Fluister-Webhooks/1"
MAX_ERROR_LENGTH = 300


class Enqueuer(Protocol):
    def enqueue(self, function: str, *args: Any) -> None: ...


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: `v1,` and the base64 HMAC-SHA256, keyed with the secret's
    bytes, of `id.timestamp.body`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")


def event_body(event: WebhookEvent) -> bytes:
    """What is posted: the event's type, when it happened, and its data."""
    payload = {"type": event.type, "timestamp": event.created_at.isoformat(), "data": event.data}
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


class WebhookSender:
    def __init__(
        self,
        db: Database,
        queue: Enqueuer,
        clock: Clock,
        *,
        timeout: float,
        allow_local: bool,
        resolver: Resolver,
        disable_after: timedelta,
        disable_after_failures: int,
        ca_certs: str | None = None,
        jitter: Callable[[], float] = lambda: random.uniform(-JITTER, JITTER),
    ) -> None:
        self._db = db
        self._queue = queue
        self._clock = clock
        self._timeout = timeout
        self._allow_local = allow_local
        self.resolver = resolver
        self._disable_after = disable_after
        self._disable_after_failures = disable_after_failures
        self._ca_certs = ca_certs
        self._jitter = jitter

    def enqueue(self, delivery_ids: Iterable[int]) -> None:
        """Ask for a job per delivery. Never raises: a job that could not be asked for is asked
        for again by the sweep (REQUEUE_AFTER), and the request that wrote it must not fail."""
        for delivery_id in delivery_ids:
            try:
                self._queue.enqueue(DELIVER, delivery_id)
            except QueueUnavailable as error:
                log.warning("webhook delivery %d waits for the sweep: %s", delivery_id, error)
                return

    def deliver(self, delivery_id: int) -> str | None:
        """One attempt at a delivery, if it is due; its status afterwards (None: not ours to send)."""
        claimed = self._claim(delivery_id)
        if claimed is None:
            return None
        url, secret, message_id, body = claimed
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, message_id, timestamp, body),
        }
        status: int | None = None
        elapsed: int | None = None
        error: str | None
        try:
            answer = post(
                url,
                body,
                headers,
                timeout=self._timeout,
                allow_local=self._allow_local,
                resolver=self.resolver,
                ca_certs=self._ca_certs,
            )
        except UnsafeUrl as refused:
            error = f"refused: {refused}"
        except OutboundError as failed:
            error = f"no answer: {failed}"
        else:
            status, elapsed = answer.status, answer.elapsed_ms
            excerpt = answer.body.decode("utf-8", "replace").strip()
            error = None if 200 <= status < 300 else f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
        return self._record(delivery_id, status, elapsed, error)

    def sweep(self) -> int:
        """Ask for the jobs of due deliveries (retries, and jobs lost with Redis), and take back
        deliveries whose job died while sending; how many jobs were asked for."""
        now = self._clock.now()
        with self._db.transaction() as session:
            session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.status == DeliveryStatus.SENDING, WebhookDelivery.queued_at < now - STALE_SENDING
                )
                .values(status=DeliveryStatus.PENDING, next_attempt_at=now, queued_at=None)
                .execution_options(synchronize_session=False)
            )
            due = list(
                session.scalars(
                    select(WebhookDelivery.id)
                    .where(
                        WebhookDelivery.status == DeliveryStatus.PENDING,
                        or_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= now),
                        or_(WebhookDelivery.queued_at.is_(None), WebhookDelivery.queued_at < now - REQUEUE_AFTER),
                    )
                    .order_by(WebhookDelivery.id)
                    .limit(SWEEP_BATCH)
                )
            )
            if due:
                session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id.in_(due))
                    .values(queued_at=now)
                    .execution_options(synchronize_session=False)
                )
        self.enqueue(due)
        return len(due)

    def forget_old(self) -> int:
        """Delete settled deliveries older than LOG_KEPT, and events none is left of; how many
        deliveries. Nothing pending is touched, however old."""
        cutoff = self._clock.now() - LOG_KEPT
        with self._db.transaction() as session:
            settled = (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED)
            forgotten = rows_changed(
                session,
                delete(WebhookDelivery)
                .where(WebhookDelivery.status.in_(settled), WebhookDelivery.created_at < cutoff)
                .execution_options(synchronize_session=False),
            )
            still_used = select(WebhookDelivery.event_id)
            session.execute(
                delete(WebhookEvent)
                .where(WebhookEvent.created_at < cutoff, WebhookEvent.id.not_in(still_used))
                .execution_options(synchronize_session=False)
            )
        return forgotten

    def _claim(self, delivery_id: int) -> tuple[str, str, str, bytes] | None:
        now = self._clock.now()
        with self._db.transaction() as session:
            delivery = session.scalar(_locked(delivery_id))
            if delivery is None or delivery.status != DeliveryStatus.PENDING:
                return None  # done, or another job has it (a job asked for twice)
            if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
                return None  # not yet: the sweep asks again when it is due
            endpoint = delivery.endpoint
            if not endpoint.enabled:
                delivery.status = DeliveryStatus.FAILED.value
                delivery.last_error = "not sent: the endpoint is disabled"
                return None
            delivery.status = DeliveryStatus.SENDING.value
            delivery.attempts += 1
            delivery.queued_at = delivery.last_attempt_at = now
            return endpoint.url, endpoint.secret, delivery.event.public_id, event_body(delivery.event)

    def _record(self, delivery_id: int, status: int | None, elapsed: int | None, error: str | None) -> str | None:
        now = self._clock.now()
        with self._db.transaction() as session:
            delivery = session.scalar(_locked(delivery_id))
            if delivery is None or delivery.status != DeliveryStatus.SENDING:
                return None  # taken back by the sweep meanwhile: it is sent again
            endpoint = session.scalar(
                select(WebhookEndpoint).where(WebhookEndpoint.id == delivery.endpoint_id).with_for_update()
            )
            assert endpoint is not None
            delivery.response_status, delivery.response_ms = status, elapsed
            delivery.last_error = error[:MAX_ERROR_LENGTH] if error else None
            delivery.next_attempt_at = None
            if error is None:
                delivery.status = DeliveryStatus.SUCCEEDED.value
                endpoint.failing_since, endpoint.failed_deliveries = None, 0
                metrics.outgoing_webhook("succeeded")
                return delivery.status
            endpoint.failing_since = endpoint.failing_since or now
            if delivery.attempts > len(RETRY_DELAYS):
                delivery.status = DeliveryStatus.FAILED.value
                endpoint.failed_deliveries += 1
                metrics.outgoing_webhook("failed")
                log.warning("webhook delivery %d failed after %d attempts: %s", delivery.id, delivery.attempts, error)
            else:
                wait = RETRY_DELAYS[delivery.attempts - 1]
                delivery.status = DeliveryStatus.PENDING.value
                delivery.next_attempt_at = now + wait * (1 + self._jitter())
                delivery.queued_at = None
                metrics.outgoing_webhook("retry")
            self._disable_if_failing(session, endpoint, now, error)
            return delivery.status

    def _disable_if_failing(self, session: Session, endpoint: WebhookEndpoint, now: datetime, error: str) -> None:
        """Disable an endpoint whose deliveries all failed for `disable_after` (one at least
        given up), or whose last `disable_after_failures` deliveries were all given up."""
        assert endpoint.failing_since is not None
        too_long = endpoint.failed_deliveries >= 1 and now - endpoint.failing_since >= self._disable_after
        too_many = endpoint.failed_deliveries >= self._disable_after_failures
        if not endpoint.enabled or not (too_long or too_many):
            return
        since = endpoint.failing_since.strftime("%Y-%m-%d %H:%M UTC")
        endpoint.enabled = False
        endpoint.disabled_automatically = True
        endpoint.disabled_at = now
        endpoint.disabled_reason = (
            f"Disabled automatically: every delivery has failed since {since} "
            f"({endpoint.failed_deliveries} given up). The last error: {error}"
        )[:2000]
        # What still waits would fail the same way; the log keeps it, and "send again" is there.
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.status == DeliveryStatus.PENDING)
            .values(status=DeliveryStatus.FAILED, last_error="not sent: the endpoint was disabled")
            .execution_options(synchronize_session=False)
        )
        metrics.webhook_endpoint_disabled()
        log.error("webhook endpoint %d disabled: failing since %s", endpoint.id, since)


def _locked(delivery_id: int) -> Select[WebhookDelivery]:
    return select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).with_for_update()
