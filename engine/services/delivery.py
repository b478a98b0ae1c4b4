"""Delivery: claim queued messages, render them, hand them to a transport, record the outcome.

At most once per message row. Messages are claimed (`queued → sending`) and that
claim committed before any provider is called; only the worker whose UPDATE moved
a row sends it. Right before the provider call the row gets `handed_at`, committed:
a row that never got it never left us, and goes back to the queue on any failure (or
by the sweeper). A crash after it leaves the row in `sending`, which the sweeper later
marks `unknown` for a person to review: it is never resent blindly.

The send loop works in batches: one query claims up to `batch_size` messages (SKIP
LOCKED on PostgreSQL, so workers never wait for each other's rows); emails that
share a template go to a batching transport (SendGrid) as one request of up to 1000
recipients, rendered once with placeholders; texts go out over a few concurrent
connections; outcomes are written a hundred at a time.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache, partial
from typing import Any

from sqlalchemy import ColumnElement, Select, Update, and_, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.dml import ReturningUpdate

from engine import metrics
from engine.caps import CapsUnavailable, Pacer
from engine.channels import CampaignSending, ComposedMessage, MessageChannel, MessageLinks, registered
from engine.channels import channel as channel_named
from engine.channels import names as channel_names
from engine.clock import Clock, SystemClock
from engine.contacts import Contact, ContactHasher, InvalidContact
from engine.db import Database, rows_changed
from engine.models import (
    Campaign,
    CampaignStatus,
    CampaignVariant,
    Forward,
    Message,
    MessageStatus,
    SuppressionScope,
    SuppressionSource,
)
from engine.policy import BUILT_IN, ConsentPolicy, PolicyError, Retention, policy_for
from engine.queue import DISPATCH_BUDGET_SECONDS, JobQueue, QueueUnavailable
from engine.quiet_hours import DEFAULT_WINDOW, Window, next_allowed
from engine.rendering import EmailBatchTemplate, RenderError, TemplateRenderer, default_templates
from engine.services.composer import (
    campaign_language_values,
    campaign_sending,
    compose,
    compose_context,
    message_locale,
)
from engine.services.consents import consented_hashes
from engine.services.coupons import codes_for_sending
from engine.services.history import SYSTEM, EventAction, record_event
from engine.services.referrers import purge_referrer_contacts
from engine.services.suppression import add_suppression, suppressed_hashes
from engine.services.template_context import campaign_context
from engine.services.templates import SAMPLE_MESSAGE_VALUES
from engine.services.variants import Variant
from engine.services.webhooks import publish
from engine.template_files import resolve
from engine.tokens import Purpose, Tokens
from engine.transports import (
    AccountError,
    AmbiguousError,
    BatchEmailTransport,
    BatchRecipient,
    OutgoingEmailBatch,
    PermanentError,
    TransientError,
    TransportError,
    Transports,
)

log = logging.getLogger(__name__)

# Transient errors are retried with a backoff (10 s, 20 s, 40 s, ... at most 15 minutes, or
# what the provider asks for) until a message is this old: an outage of a few hours passes.
RETRY_FOR = timedelta(hours=24)
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 15 * 60.0
# After the provider refused our account, a campaign's messages wait this long at least.
ACCOUNT_RETRY_SECONDS = 15 * 60.0
# Outcomes are written this many at a time.
RECORD_EVERY = 100
# What differs from one recipient of a campaign to the next; everything else is shared.
PER_RECIPIENT = ("sender_name", "note", "link", "unsubscribe_link", "coupon_code")
# What of a message the public typed into the form.
SENDER_INPUT = ("sender_name", "note")


@dataclass(frozen=True)
class PausePolicy:
    """When a campaign stops sending by itself: so many of its recent sends failing for reasons
    of ours means something is wrong (a broken template, a provider refusing our content) and
    carrying on would only burn reputation.

    Counted in sends, not recipients: one provider request is one sample however many friends
    it carried, and a message sent alone is one. The failures must come from at least
    `min_senders` different senders, so that no one visitor can stop a campaign."""

    failure_rate: float = 0.5
    min_samples: int = 20
    window: int = 100
    min_senders: int = 3


@dataclass
class DeliveryReport:
    sent: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # not ours to send: claimed elsewhere or not due
    retry: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    suppressed: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)  # texts held for the recipient's morning
    provider_requests: int = 0


@dataclass(frozen=True)
class SweepReport:
    marked_unknown: int
    requeued: int  # messages found due and handed to a dispatcher
    purged: int = 0  # friends' contacts erased as their campaign's policy says
    released: int = 0  # stuck in `sending` but never handed to a provider: queued again


class Links:
    """The public URLs (and the unsubscribe mailbox, when there is one) that go into messages."""

    def __init__(self, base_url: str, tokens: Tokens, unsubscribe_mailto: str | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._tokens = tokens
        self._mailto = unsubscribe_mailto

    @property
    def base_url(self) -> str:
        """The public base URL (no trailing slash): where a campaign's logo is served too."""
        return self._base

    def list_unsubscribe(self, message: Message, https_link: str) -> str:
        """The List-Unsubscribe header: the one-click https link first, then mailto if configured."""
        if not self._mailto:
            return f"<{https_link}>"
        return f"<{https_link}>, <mailto:{self._mailto}?subject=unsubscribe%20{message.public_id}>"

    def forward(self, forward: Forward) -> str:
        return f"{self._base}/f/{self._tokens.sign(Purpose.FORWARD, forward.public_id)}"

    def unsubscribe(self, message: Message) -> str:
        return f"{self._base}/u/{self._tokens.sign(Purpose.UNSUBSCRIBE, message.public_id)}"


class Fault(StrEnum):
    """Whose problem a failed send was. Only ours (account, provider, content) can pause a
    campaign: recipient and input faults are what anyone can cause by typing bad numbers, or a
    name or note a template cannot take, into the form; a network fault (a timeout, a reset
    connection) passes by itself."""

    ACCOUNT = "account"
    PROVIDER = "provider"
    CONTENT = "content"
    RECIPIENT = "recipient"
    INPUT = "input"
    NETWORK = "network"


@dataclass(frozen=True)
class _Outcome:
    status: MessageStatus
    provider_id: str | None = None
    error: str | None = None
    code: str | None = None
    purge_contact: bool = False
    retry_in: float | None = None  # seconds, for a message queued again
    opted_out: bool = False
    fault: Fault | None = None
    # When the provider took it: the records (and compliance's "sent before the opt-out?")
    # must say when it went, not when a batch of outcomes was written down.
    sent_at: datetime | None = None


@dataclass
class _Job:
    """A claimed message, composed, and what its policy says of it."""

    message: Message
    composed: ComposedMessage
    purge_on_send: bool = False
    quiet_window: Window | None = None

    @property
    def campaign(self) -> Campaign:
        return self.message.forward.campaign

    @property
    def sending(self) -> CampaignSending:
        return self.composed.campaign

    @property
    def context(self) -> Mapping[str, Any]:
        return self.composed.context

    @property
    def recipient(self) -> str:
        return self.composed.to


class _Policies:
    """Each policy a batch's messages need, parsed once for the batch: a campaign's current
    one (may it still send?) and the one each message was accepted under (its retention,
    its quiet hours), with the campaign's current settings."""

    def __init__(self, defaults: Mapping[str, str], public_base_url: str) -> None:
        self._defaults = defaults
        self._public_base_url = public_base_url
        self._policies: dict[tuple[str, int], ConsentPolicy | PolicyError] = {}
        self._sendings: dict[tuple[int, str | None, int | None], CampaignSending | PolicyError] = {}

    def policy(self, name: str, campaign: Campaign) -> ConsentPolicy | PolicyError:
        key = (name, campaign.id)
        if key not in self._policies:
            try:
                self._policies[key] = policy_for(name, campaign.policy_settings)
            except PolicyError as error:
                self._policies[key] = error
        return self._policies[key]

    def sending(
        self, campaign: Campaign, locale: str | None = None, variant: CampaignVariant | None = None
    ) -> CampaignSending | PolicyError:
        """What the campaign sends with in `locale` (a forward's: see composer.message_locale), in
        the words of the forward's A/B `variant`."""
        key = (campaign.id, locale, variant.id if variant is not None else None)
        if key not in self._sendings:
            policy = self.policy(campaign.policy_name, campaign)
            if isinstance(policy, PolicyError):
                self._sendings[key] = policy
            else:
                words = Variant.of(variant) if variant is not None else None
                self._sendings[key] = campaign_sending(
                    campaign, self._defaults, policy, locale, words, public_base_url=self._public_base_url
                )
        return self._sendings[key]

    def purges_on_send(self, message: Message) -> bool:
        """Whether the message's policy erases the friend's contact once it is sent. Decided
        before sending: a policy that no longer parses must not break the record of a send."""
        policy = self.policy(message.policy_name, message.forward.campaign)
        if isinstance(policy, PolicyError):
            log.error(
                "message %s: its policy %s no longer parses; contact purged to be safe", message.id, message.policy_name
            )
            return True
        return policy.purges_contact_on_send

    def quiet_window(self, message: Message, channel: MessageChannel) -> Window | None:
        policy = self.policy(message.policy_name, message.forward.campaign)
        if isinstance(policy, PolicyError):
            # The channel's hours under a policy that says nothing of them: the default window.
            return channel.quiet_window(replace(BUILT_IN["share-only"], sms_window=DEFAULT_WINDOW))
        return channel.quiet_window(policy)


def message_values(message: Message, coupon_code: str = "") -> dict[str, str]:
    """This friend's own values of a message (`coupon_code` is empty without coupons, or when
    the pool ran out: `{% if coupon_code %}`)."""
    return {"sender_name": message.forward.sender_name, "note": message.forward.note or "", "coupon_code": coupon_code}


def message_links(message: Message, links: Links) -> MessageLinks:
    unsubscribe = links.unsubscribe(message)
    return MessageLinks(links.forward(message.forward), unsubscribe, links.list_unsubscribe(message, unsubscribe))


def message_context(message: Message, links: Links, coupon_code: str = "") -> dict[str, Any]:
    """What a message's templates may print: the campaign's values, this friend's own, and
    the words of the sender's language."""
    campaign = message.forward.campaign
    return compose_context(
        campaign_context(campaign, links.base_url), message_values(message, coupon_code), message_links(message, links)
    ) | campaign_language_values(campaign, message.forward.locale)


class DeliveryService:
    def __init__(
        self,
        db: Database,
        transports: Transports,
        renderer: TemplateRenderer,
        links: Links,
        queue: JobQueue,
        *,
        sending_stale_after: timedelta = timedelta(minutes=30),
        pause_policy: PausePolicy | None = None,
        batch_size: int = 500,
        concurrency: int = 4,
        pacers: Mapping[str, Pacer | None] | None = None,
        clock: Clock | None = None,
        hasher: ContactHasher | None = None,
    ) -> None:
        self._db = db
        self._transports = transports
        self._renderer = renderer
        self._links = links
        self._queue = queue
        self._defaults = default_templates()
        self._stale_after = sending_stale_after
        self._pause = pause_policy or PausePolicy()
        self._batch_size = batch_size
        self._clock = clock or SystemClock()
        self._hasher = hasher
        # Per channel name, the provider's rate its sends wait for.
        self._pacers: dict[str, Pacer] = {name: pacer for name, pacer in (pacers or {}).items() if pacer is not None}
        # Channels whose sends are mostly waiting for the provider send over a few connections at once.
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fluister-send")

    # -- use cases -------------------------------------------------------------------

    def deliver(self, message_ids: Sequence[int]) -> DeliveryReport:
        """Send these messages, those of them that are queued and due."""
        report = DeliveryReport()
        claimed = self._claim(ids=message_ids)
        report.skipped = sorted(set(message_ids) - set(claimed))
        if claimed:
            self._process(claimed, report)
        return report

    def dispatch(self, budget_seconds: float = DISPATCH_BUDGET_SECONDS) -> DeliveryReport:
        """Send every due message, a batch at a time, until none is left (the dispatch job).

        After `budget_seconds` it hands over to a fresh job rather than run into the job
        timeout, which would stop it in the middle of a batch.
        """
        report = DeliveryReport()
        deadline = time.monotonic() + budget_seconds
        while True:
            if time.monotonic() > deadline:
                self._ask_for_dispatch()
                return report
            claimed = self._claim(limit=self._batch_size)
            if not claimed:
                # Let the next forward ask for a dispatcher, then look once more: a forward
                # committed just before that would otherwise wait for the sweeper.
                self._queue.dispatch_done()
                claimed = self._claim(limit=self._batch_size)
                if not claimed:
                    return report
            if len(claimed) == self._batch_size:
                # More may be waiting: let an idle worker join in (SKIP LOCKED keeps us apart).
                # Only a wish: without Redis the batch we hold is still ours to send.
                self._ask_for_dispatch()
            self._process(claimed, report)

    def _ask_for_dispatch(self) -> None:
        try:
            self._queue.request_dispatch(extra=True)
        except QueueUnavailable as error:
            log.warning("could not ask for another dispatcher (%s); the sweeper will", error)

    def sweep(self) -> SweepReport:
        """Settle messages stuck in `sending`: back to the queue when they were never handed to
        a provider, `unknown` when they were (they may have gone). Then get due `queued` ones
        dispatched. Dispatching twice is harmless: only one claim of a message can win.
        """
        now = self._clock.now()
        stale = and_(Message.status == MessageStatus.SENDING, Message.claimed_at < now - self._stale_after)
        with self._db.transaction() as session:
            released = rows_changed(
                session,
                update(Message)
                .where(stale, Message.handed_at.is_(None))
                .values(status=MessageStatus.QUEUED, attempts=Message.attempts - 1, updated_at=now)
                .execution_options(synchronize_session=False),
            )
            marked = rows_changed(
                session,
                update(Message)
                .where(stale, Message.handed_at.is_not(None))
                .values(
                    status=MessageStatus.UNKNOWN, error="no outcome recorded: worker stopped mid-send", updated_at=now
                )
                .execution_options(synchronize_session=False),
            )
            # Due now: if their dispatcher was lost (a Redis restart, say), this brings a new one;
            # if one is at work, asking again costs at most one extra job that finds nothing.
            due = session.scalar(select(func.count()).select_from(_claimable(now).subquery())) or 0
        if due:
            self._ask_for_dispatch()  # without Redis, the next sweep asks again
            log.info("sweep: %d due messages handed to a dispatcher", due)
        if released:
            log.warning("sweep: %d messages stuck in sending, never handed over, back to the queue", released)
        if marked:
            log.warning("sweep: %d messages stuck in sending marked unknown", marked)
        purged = self.purge_contacts(now) + self.purge_referrer_contacts(now)
        return SweepReport(marked_unknown=marked, requeued=due, purged=purged, released=released)

    def purge_referrer_contacts(self, now: datetime | None = None) -> int:
        """Referrers' contacts past their time, and pending confirmations past their expiry
        (engine.services.referrers)."""
        with self._db.transaction() as session:
            return purge_referrer_contacts(session, now or self._clock.now())

    def purge_contacts(self, now: datetime | None = None, batch: int = 5000) -> int:
        """Erase friends' plaintext contacts that their policy no longer lets us keep: once
        their message is final (whatever the outcome) under purge-after-send, and so many days
        after it under days-after-send. A message still waiting UNSENT_CONTACT_KEPT_FOR after its
        forward (its campaign paused or ended for good) gives its contact up too, whatever the
        policy: a message that never goes out must not keep a friend's contact forever.
        The hash stays, for suppression and analytics."""
        now = now or self._clock.now()
        expired: list[int] = []
        with self._db.transaction() as session:
            for campaign_id, policy_name, settings in _policies_holding_contacts(session):
                # The age test is part of the query, so that a batch never fills up with contacts
                # still within their time while older ones wait behind them.
                expired += session.scalars(
                    select(Forward.id)
                    .join(Message, Message.forward_id == Forward.id)
                    .where(
                        Forward.campaign_id == campaign_id,
                        Forward.policy_name == policy_name,
                        Forward.recipient_contact.is_not(None),
                        _retention_over(policy_name, settings, now),
                    )
                    .limit(batch - len(expired))
                )
                if len(expired) >= batch:
                    break
            if expired:
                session.execute(
                    update(Forward)
                    .where(Forward.id.in_(expired))
                    .values(recipient_contact=None)
                    .execution_options(synchronize_session=False)
                )
        if expired:
            log.info("retention: erased %d friends' contacts", len(expired))
        return len(expired)

    # -- claim and load --------------------------------------------------------------

    def _claim(self, *, ids: Iterable[int] | None = None, limit: int | None = None) -> list[int]:
        now = self._clock.now()
        claimable = _claimable(now)
        if ids is not None:
            wanted = sorted(set(ids))
            if not wanted:
                return []
            claimable = claimable.where(Message.id.in_(wanted))
        # SKIP LOCKED (PostgreSQL): rows another worker is claiming right now are theirs;
        # do not wait for them. SQLite runs writers one at a time and needs no lock.
        # A materialised CTE runs the LIMIT once: as a plain IN (subquery), PostgreSQL may run
        # the subquery again during the update and claim more rows than asked for.
        picked = (
            claimable.order_by(Message.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=Message)
            .cte("picked")
            .prefix_with("MATERIALIZED")
        )
        with self._db.transaction() as session:
            rows = session.execute(
                update(Message)
                .where(Message.id.in_(select(picked.c.id)), Message.status.in_(WAITING))
                .values(
                    status=MessageStatus.SENDING,
                    attempts=Message.attempts + 1,
                    claimed_at=now,
                    updated_at=now,
                    handed_at=None,
                    request_ref=None,
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
                        selectinload(Message.forward).selectinload(Forward.campaign).selectinload(Campaign.templates),
                        selectinload(Message.forward).selectinload(Forward.campaign).selectinload(Campaign.logo),
                        # In the words of the variant the sender saw (none for most campaigns: no query).
                        selectinload(Message.forward).selectinload(Forward.variant),
                    )
                )
            )

    # -- the send loop ---------------------------------------------------------------

    def _process(self, ids: list[int], report: DeliveryReport) -> None:
        metrics.dispatch_batch(len(ids))
        # No transaction is held while a provider is called.
        recorder = _Recorder(self, report)
        try:
            messages = self._load(ids)
            policies = _Policies(self._defaults, self._links.base_url)
            # Checked again right before sending: an opt-out since the forward was accepted wins.
            suppressed = self._suppressed(messages)
            # And the campaign's policy, as it is now: a channel it no longer allows, or a text
            # to a friend whose consent it needs and who has none (any more), does not go.
            disallowed = self._disallowed(messages, policies)
            # Codes only for friends about to be sent to: a held-back friend uses none.
            sendable = [m for m in messages if m.id not in suppressed and m.id not in disallowed]
            coupon_codes = codes_for_sending(self._db, [m.forward for m in sendable if m.forward.recipient_contact])
            jobs: dict[str, list[_Job]] = {}
            for message in messages:
                if message.id in suppressed:
                    outcome = _Outcome(MessageStatus.SUPPRESSED, error="recipient opted out before the send")
                    recorder.add(message, outcome)
                elif message.id in disallowed:
                    recorder.add(message, _Outcome(MessageStatus.SUPPRESSED, error=disallowed[message.id]))
                elif not message.forward.recipient_contact:
                    recorder.add(message, _Outcome(MessageStatus.FAILED, error="recipient contact no longer stored"))
                else:
                    job = self._job(message, policies, coupon_codes.get(message.forward_id, ""))
                    jobs.setdefault(message.channel, []).append(job)
            for channel in registered():
                if channel.name in jobs:
                    self._send_channel(channel, jobs[channel.name], recorder)
        finally:
            # Whatever went wrong, what happened is written down, and what was never handed to
            # a provider goes back to the queue instead of waiting for the sweeper (which
            # does the same when this cannot: the database gone, the process killed).
            try:
                recorder.flush()
            finally:
                settled = recorder.written | recorder.handed | recorder.lost
                self._release([i for i in ids if i not in settled])

    def _job(self, message: Message, policies: _Policies, coupon_code: str) -> _Job:
        """The message composed, with what its policy says of it. Its campaign's policy is valid
        and its channel registered: `_disallowed` held it back otherwise."""
        # In the sender's language (the forward's), when the campaign still offers it.
        forward = message.forward
        sending = policies.sending(forward.campaign, forward.locale, forward.variant)
        assert not isinstance(sending, PolicyError)
        recipient = Contact(message.channel, message.forward.recipient_contact or "")
        links = message_links(message, self._links)
        composed = compose(sending, recipient, message_values(message, coupon_code), links, message.public_id)
        window = policies.quiet_window(message, channel_named(message.channel))
        return _Job(message, composed, policies.purges_on_send(message), window)

    def _send_channel(self, channel: MessageChannel, jobs: list[_Job], recorder: _Recorder) -> None:
        transport = self._transports.get(channel.name)
        if transport is None:
            # Like a provider refusing our account: nothing can go, the campaign stops until a
            # person has looked, and its messages wait.
            missing = AccountError(f"no transport is configured for {channel.label}s", code="transport")
            for job in jobs:
                recorder.add(job.message, self._failure(job.message, missing))
            return
        if isinstance(transport, BatchEmailTransport):
            self._send_batches(channel, transport, jobs, recorder)
        else:
            self._send_each(channel, transport, jobs, recorder)

    def _send_batches(
        self, channel: MessageChannel, transport: BatchEmailTransport, jobs: list[_Job], recorder: _Recorder
    ) -> None:
        """The e-mail channel's optimisation: one rendering and one request for many recipients."""
        for template, group in self._email_groups(jobs):
            if template is None:
                self._send_each(channel, transport, group, recorder)
                continue
            step = self._email_batch_size(channel, transport)
            for start in range(0, len(group), step):
                self._send_email_batch(channel, transport, template, group[start : start + step], recorder)

    def _email_batch_size(self, channel: MessageChannel, transport: BatchEmailTransport) -> int:
        """The provider's batch, or, when paced, a second's worth: a paced batch waits for a slot
        as long as it takes to send, and smaller batches spread the sends over the second."""
        pacer = self._pacers.get(channel.name)
        if pacer is None:
            return transport.max_batch
        return max(1, min(transport.max_batch, int(pacer.per_second)))

    def _send_email_batch(
        self,
        channel: MessageChannel,
        transport: BatchEmailTransport,
        template: EmailBatchTemplate,
        jobs: list[_Job],
        recorder: _Recorder,
    ) -> None:
        # Our turn in the provider's rate first: a wait that fails (or a worker stopped in it)
        # leaves the messages queued. Only then, right before the request as for a text, are
        # opt-outs checked once more and the messages written down as handed over.
        try:
            self._wait_turn(self._pacers.get(channel.name), len(jobs), _rate_word(channel))
        except TransientError as error:
            for job in jobs:
                recorder.add(job.message, self._failure(job.message, error))
            return
        opted_out = self._suppressed([job.message for job in jobs])
        for job in (j for j in jobs if j.message.id in opted_out):
            recorder.add(job.message, _Outcome(MessageStatus.SUPPRESSED, error="recipient opted out before the send"))
        jobs = [job for job in jobs if job.message.id not in opted_out]
        if not jobs:
            return
        handed = self._hand_over(recorder, [job.message.id for job in jobs], secrets.token_hex(8))
        jobs = [job for job in jobs if job.message.id in handed]
        if not jobs:
            return
        sending = jobs[0].sending
        batch = OutgoingEmailBatch(
            from_name=sending.brand_name,
            from_email=sending.sender_email,
            html=template.html,
            text=template.text,
            recipients=[
                BatchRecipient(
                    to=job.recipient,
                    subject=template.subject_for(job.context),
                    substitutions=template.substitutions(job.context),
                    headers=dict(job.composed.headers),
                    reference=job.composed.reference,
                )
                for job in jobs
            ],
        )
        recorder.report.provider_requests += 1
        try:
            channel_name = jobs[0].composed.channel
            with metrics.send_timer(channel_name, self._provider(channel_name)):
                provider_id = transport.send_email_batch(batch)
        except PermanentError as error:
            if len(jobs) == 1:
                recorder.add(jobs[0].message, self._failure(jobs[0].message, error))
                return
            # One bad recipient refuses the whole request: send one by one, so only it fails.
            log.warning("batch of %d refused (%s); sending one by one", len(jobs), error)
            for job, recipient in zip(jobs, batch.recipients, strict=True):
                email = batch.email_for(recipient)
                # The batch has already taken its place in the provider's rate.
                outcome = self._attempt(job, partial(transport.send_email, email), recorder)
                if outcome is not None:
                    recorder.add(job.message, outcome)
            return
        except Exception as error:
            for job in jobs:
                recorder.add(job.message, self._failure(job.message, error))
            return
        for job in jobs:
            recorder.add(job.message, _sent(job, provider_id, self._clock.now()))

    def _email_groups(self, jobs: list[_Job]) -> Iterator[tuple[EmailBatchTemplate | None, list[_Job]]]:
        """Jobs that can share one rendering: same campaign, same language, same truthiness of
        their own values."""
        groups: dict[tuple[int, str, tuple[bool, ...]], list[_Job]] = {}
        for job in jobs:
            key = (job.campaign.id, job.sending.locale, tuple(bool(job.context[name]) for name in PER_RECIPIENT))
            groups.setdefault(key, []).append(job)
        for group in groups.values():
            first = group[0]
            shared = {k: v for k, v in first.context.items() if k not in PER_RECIPIENT}
            own = {name: first.context[name] for name in PER_RECIPIENT}
            sources = first.sending.sources
            try:
                template = self._renderer.email_batch_template(sources, shared, own) if len(group) > 1 else None
            except Exception:  # a template that breaks the renderer itself: render each alone, to fail each
                log.exception("campaign %s: batch rendering failed; rendering one by one", first.campaign.id)
                template = None
            yield template, group

    def _send_each(self, channel: MessageChannel, transport: Any, jobs: list[_Job], recorder: _Recorder) -> None:
        """Render each message here and send them one by one, or, for a channel whose sends are
        mostly waiting for the provider, over a few connections at once."""
        ready: list[tuple[_Job, Any]] = []
        now = self._clock.now()
        for job in jobs:
            until = next_allowed(job.recipient, now, job.quiet_window) if job.quiet_window is not None else None
            if until is not None:
                recorder.add(
                    job.message,
                    _Outcome(
                        MessageStatus.DEFERRED,
                        error="quiet hours in the recipient's time zone",
                        retry_in=(until - now).total_seconds(),
                    ),
                )
                continue
            try:
                outgoing = channel.render(self._renderer, job.composed)
            except Exception as error:  # nothing was sent: a broken template fails the message
                recorder.add(job.message, self._render_failure(channel, job, error))
                continue
            if not channel.concurrent:
                outcome = self._send_one(channel, transport, job, outgoing, recorder)
                if outcome is not None:
                    recorder.add(job.message, outcome)
                continue
            ready.append((job, outgoing))
        outcomes = self._pool.map(lambda item: self._send_one(channel, transport, item[0], item[1], recorder), ready)
        for (job, _), outcome in zip(ready, outcomes, strict=True):
            if outcome is not None:
                recorder.add(job.message, outcome)

    def _send_one(
        self, channel: MessageChannel, transport: Any, job: _Job, outgoing: Any, recorder: _Recorder
    ) -> _Outcome | None:
        """Send one message. Sent concurrently, the provider's taking it is written down at once:
        its delivery callback may come before this batch's outcomes are written, and must find
        it sent. None when it could not be handed over (it goes back to the queue)."""
        cost = channel.cost(outgoing)
        outcome = self._attempt(
            job,
            lambda: channel.send(transport, outgoing),
            recorder,
            pace=lambda: self._wait_turn(self._pacers.get(channel.name), cost, _rate_word(channel)),
        )
        if channel.concurrent and outcome is not None and outcome.status == MessageStatus.SENT:
            try:
                self._record_acceptance(job.message, outcome)
            except Exception:  # the batch's own record tries again; the sweeper has the rest
                log.exception("message %s: could not record its acceptance now", job.message.id)
            else:
                recorder.accepted.add(job.message.id)
        return outcome

    @staticmethod
    def _wait_turn(pacer: Pacer | None, cost: int, what: str) -> None:
        """Wait for the provider's rate to take `cost` more; a TransientError (tried again
        later, nothing sent) when Redis cannot pace or the wait would be too long."""
        if pacer is None:
            return
        try:
            turn = pacer.wait_turn(cost)
        except CapsUnavailable as error:
            raise TransientError(f"cannot pace {what}s: {error}") from None
        except Exception as error:  # nothing was handed over yet: tried again later, never unknown
            log.exception("pacing %ss failed unexpectedly", what)
            raise TransientError(f"cannot pace {what}s: {type(error).__name__}: {error}") from None
        if not turn:
            raise TransientError(f"the {what} rate is taken for now: trying later")

    # -- outcomes --------------------------------------------------------------------

    def _render_failure(self, channel: MessageChannel, job: _Job, error: Exception) -> _Outcome:
        """A message whose templates do not render. When they do render with sample values in
        place of what its sender typed (a name too long for the text's segments, a note a
        template trips over), the sender's input did it: that fails the message, shows the
        marketer, and counts toward no pause."""
        if not isinstance(error, RenderError):
            log.error("rendering failed unexpectedly", exc_info=error)
            error = RenderError(f"{type(error).__name__}: {error}")
        fault = Fault.INPUT if self._renders_without_input(channel, job) else Fault.CONTENT
        return _Outcome(MessageStatus.FAILED, error=f"template error: {error}", code="render", fault=fault)

    def _renders_without_input(self, channel: MessageChannel, job: _Job) -> bool:
        context = {**job.context, **{name: SAMPLE_MESSAGE_VALUES[name] for name in SENDER_INPUT}}
        try:
            channel.render(self._renderer, replace(job.composed, context=context))
        except Exception:
            return False
        return True

    def _attempt(
        self, job: _Job, send: Callable[[], str], recorder: _Recorder, pace: Callable[[], None] | None = None
    ) -> _Outcome | None:
        """Hand one message to its provider (after `pace`, its turn in the provider's rate):
        None when that could not even be written down (the database is gone), and so nothing
        was sent."""
        if pace is not None:
            # The turn comes before the hand-over: a wait that fails, or a worker stopped in
            # it, leaves the message queued instead of perhaps sent.
            try:
                pace()
            except TransientError as error:
                return self._failure(job.message, error)
        try:
            # Checked once more right before the call: an opt-out committed while the batch was
            # being sent stops the messages not yet handed over.
            if self._suppressed([job.message]):
                return _Outcome(MessageStatus.SUPPRESSED, error="recipient opted out before the send")
            if not self._hand_over(recorder, [job.message.id], None):
                return None
        except Exception:
            log.exception("message %s: could not hand it over; back to the queue", job.message.id)
            return None
        try:
            with metrics.send_timer(job.message.channel, self._provider(job.message.channel)):
                provider_id = send()
        except Exception as error:
            return self._failure(job.message, error)
        return _sent(job, provider_id, self._clock.now())

    def _provider(self, channel: str) -> str:
        """The metrics' name for the provider of a channel (sendgrid, twilio, smtp, outbox)."""
        return metrics.provider_name(self._transports.get(channel))

    def _hand_over(self, recorder: _Recorder, ids: list[int], request_ref: str | None) -> set[int]:
        """Write down (committed) that these messages are about to go to the provider. From
        here on they may have gone, and are never put back in the queue by a failure. Only
        the ones returned are still ours to send: a row the sweeper took back (a worker
        stalled past SENDING_STALE_AFTER_SECONDS) may already be another worker's."""
        with self._db.transaction() as session:
            handed = set(
                session.connection()
                .execute(_hand_over_statement(), {"b_ids": ids, "b_now": self._clock.now(), "b_ref": request_ref})
                .scalars()
            )
        recorder.handed.update(handed)
        recorder.lost.update(set(ids) - handed)
        if len(handed) < len(ids):
            log.warning("%d messages no longer ours to send (taken back by the sweeper)", len(ids) - len(handed))
        return handed

    def _record_acceptance(self, message: Message, outcome: _Outcome) -> None:
        """The provider took this message: one small UPDATE, made as it happens. A callback
        that came first has already moved it on (delivered, failed): that state stays."""
        values = {
            "b_id": message.id,
            "b_provider": outcome.provider_id,
            "b_sent": outcome.sent_at,
            "b_versions": _template_versions(message),
            "b_now": self._clock.now(),
        }
        with self._db.transaction() as session:
            session.connection().execute(_acceptance_statement(), values)

    def _release(self, ids: list[int]) -> None:
        """Claimed messages that were never handed to a provider go back to the queue."""
        if not ids:
            return
        with self._db.transaction() as session:
            released = rows_changed(
                session,
                update(Message)
                .where(Message.id.in_(ids), Message.status == MessageStatus.SENDING, Message.handed_at.is_(None))
                .values(status=MessageStatus.QUEUED, attempts=Message.attempts - 1, updated_at=self._clock.now())
                .execution_options(synchronize_session=False),
            )
        if released:
            log.warning("%d claimed messages not attempted; back to the queue", released)

    def _failure(self, message: Message, error: Exception) -> _Outcome:
        if isinstance(error, AccountError):
            return _Outcome(
                MessageStatus.QUEUED,
                error=str(error),
                code=error.code,
                retry_in=max(error.retry_after or 0, ACCOUNT_RETRY_SECONDS),
                fault=Fault.ACCOUNT,
            )
        if isinstance(error, TransientError):
            if self._clock.now() - message.created_at > RETRY_FOR:
                return _Outcome(
                    MessageStatus.FAILED,
                    error=f"gave up after {message.attempts} attempts over {RETRY_FOR}: {error}",
                    code=error.code,
                    fault=Fault.PROVIDER,
                )
            delay = error.retry_after or min(BACKOFF_BASE_SECONDS * 2 ** (message.attempts - 1), BACKOFF_MAX_SECONDS)
            return _Outcome(MessageStatus.QUEUED, error=str(error), code=error.code, retry_in=delay)
        if isinstance(error, PermanentError):
            return _Outcome(
                MessageStatus.FAILED,
                error=str(error),
                code=error.code,
                opted_out=error.opted_out,
                fault=Fault.RECIPIENT,
            )
        if isinstance(error, AmbiguousError):
            # A timeout or a dropped connection: unsure whether it went, nothing wrong with us.
            return _Outcome(MessageStatus.UNKNOWN, error=str(error), code=error.code, fault=Fault.NETWORK)
        if not isinstance(error, TransportError):
            # Unexpected: it may have happened after the request left, so it is not retried.
            log.error("message %s: unexpected error while sending", message.id, exc_info=error)
        return _Outcome(MessageStatus.UNKNOWN, error=f"{type(error).__name__}: {error}", fault=Fault.PROVIDER)

    def _disallowed(self, messages: list[Message], policies: _Policies) -> dict[int, str]:
        """The messages the campaign's current policy does not let go, with the reason."""
        reasons: dict[int, str] = {}
        needing: dict[tuple[int, str], list[Message]] = {}
        for message in messages:
            campaign = message.forward.campaign
            policy = policies.policy(campaign.policy_name, campaign)
            if isinstance(policy, PolicyError):
                reasons[message.id] = f"the campaign's consent policy is not valid: {policy}"
                continue
            channel = message.channel
            if channel not in channel_names():
                reasons[message.id] = f"no channel {channel} is available to send it"
            elif not policy.may_offer(channel):
                reasons[message.id] = f"the campaign's consent policy no longer lets the server send {channel}"
            elif policy.needs_consent(channel):
                needing.setdefault((campaign.id, channel), []).append(message)
        if needing:
            with self._db.reading() as session:
                for (campaign_id, channel), group in needing.items():
                    hashes = [m.forward.recipient_contact_hash for m in group]
                    consented = consented_hashes(session, campaign_id, channel, hashes)
                    for message in group:
                        if message.forward.recipient_contact_hash not in consented:
                            reasons[message.id] = "no consent of the recipient's own on record"
        return reasons

    def _suppressed(self, messages: list[Message]) -> set[int]:
        """The messages whose recipient must not get them. Each recipient is looked up by its
        hash and by the hash older versions kept for the spelling it goes to (the address
        lowercased): an opt-out kept only under that, which no rehash could move, still stops
        it. One query per campaign and channel."""
        groups: dict[tuple[int, str], list[Message]] = {}
        for message in messages:
            groups.setdefault((message.forward.campaign_id, message.channel), []).append(message)
        suppressed: set[int] = set()
        with self._db.reading() as session:
            for (campaign_id, channel), group in groups.items():
                wanted = {m.id: self._hashes_of(m) for m in group}
                hashes = suppressed_hashes(session, campaign_id, channel, [h for hs in wanted.values() for h in hs])
                suppressed.update(i for i, hs in wanted.items() if not hashes.isdisjoint(hs))
        return suppressed

    def _hashes_of(self, message: Message) -> list[str]:
        forward = message.forward
        hashes = [forward.recipient_contact_hash]
        if self._hasher is not None and forward.recipient_contact:
            try:
                legacy = self._hasher.legacy_hash(Contact(message.channel, forward.recipient_contact))
            except InvalidContact:
                legacy = None
            if legacy is not None:
                hashes.append(legacy)
        return hashes

    def _write(self, pending: list[tuple[Message, _Outcome]], accepted: Collection[int] = ()) -> None:
        """Record outcomes in one transaction. A row the sweeper has meanwhile marked `unknown`
        (a slow batch) gets its real outcome; a row in any other state is left as it is.
        `accepted`: messages whose sending `_record_acceptance` has already written down
        (status, provider id, template versions): only their contact's purge is left to do."""
        now = self._clock.now()
        table = Message.__table__
        statement = (
            table.update()
            .where(
                table.c.id == bindparam("b_id"),
                or_(table.c.status == MessageStatus.SENDING.value, table.c.status == MessageStatus.UNKNOWN.value),
            )
            .values(
                status=bindparam("b_status"),
                updated_at=bindparam("b_now"),
                error=bindparam("b_error"),
                error_code=bindparam("b_code"),
                provider_id=bindparam("b_provider"),
                sent_at=bindparam("b_sent"),
                not_before=bindparam("b_not_before"),
                fault=bindparam("b_fault"),
            )
        )
        rows = [
            {
                "b_id": message.id,
                "b_status": outcome.status.value,
                "b_now": now,
                "b_error": _without_contact(outcome.error, message),
                "b_code": outcome.code,
                "b_provider": outcome.provider_id,
                "b_sent": (outcome.sent_at or now) if outcome.status == MessageStatus.SENT else None,
                "b_not_before": now + timedelta(seconds=outcome.retry_in) if outcome.retry_in is not None else None,
                "b_fault": outcome.fault.value if outcome.fault else None,
            }
            for message, outcome in pending
            if not (message.id in accepted and outcome.status == MessageStatus.SENT)
        ]
        purge = [{"b_forward": m.forward_id} for m, o in pending if o.purge_contact]
        # The template versions each message that went (or may have) was rendered with: the
        # campaign's, as loaded with the message for this batch.
        versions = [
            {"b_id": m.id, "b_versions": _template_versions(m)}
            for m, o in pending
            if o.status == MessageStatus.UNKNOWN or (o.status == MessageStatus.SENT and m.id not in accepted)
        ]
        with self._db.transaction() as session:
            if rows:
                session.connection().execute(statement, rows)
            if versions:
                record = table.update().where(table.c.id == bindparam("b_id"))
                session.connection().execute(record.values(template_versions=bindparam("b_versions")), versions)
            if purge:
                forwards = Forward.__table__
                session.connection().execute(
                    forwards.update().where(forwards.c.id == bindparam("b_forward")).values(recipient_contact=None),
                    purge,
                )
            for message, outcome in pending:
                if outcome.opted_out:
                    # The provider knows the recipient opted out (e.g. replied STOP): so must we.
                    add_suppression(
                        session,
                        session.get_one(Message, message.id),
                        SuppressionScope.GLOBAL,
                        SuppressionSource.STOP,
                        {"provider_error": outcome.code} if outcome.code else None,
                        now=self._clock.now(),
                    )

    def _pause_failing_campaigns(self, campaign_ids: set[int]) -> None:
        policy = self._pause
        finished = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.FAILED, MessageStatus.UNKNOWN)
        with self._db.transaction() as session:
            for campaign_id in campaign_ids:
                # Enough recent messages to fill the window even if they came in full batches.
                recent = session.execute(
                    select(Message.id, Message.fault, Message.request_ref, _SENDER)
                    .join(Message.forward)
                    .where(Forward.campaign_id == campaign_id, Message.status.in_(finished))
                    .order_by(Message.updated_at.desc(), Message.id.desc())
                    .limit(policy.window * 10)
                ).all()
                sends = _sends(recent)[: policy.window]
                failed = [senders for ours, senders in sends if ours]
                senders = set().union(*failed) if failed else set()
                if (
                    len(sends) < policy.min_samples
                    or len(failed) / len(sends) < policy.failure_rate
                    or len(senders) < policy.min_senders
                ):
                    continue
                reason = (
                    f"sending paused automatically: {len(failed)} of its last {len(sends)} sends failed "
                    f"(threshold {policy.failure_rate:.0%}), for {len(senders)} different senders; check the "
                    "errors on its failed messages before resuming. The offer stays up and new forwards wait."
                )
                _pause(session, campaign_id, reason, self._clock.now())

    def _pause_for_account(self, campaign_id: int, error: str) -> None:
        with self._db.transaction() as session:
            _pause(
                session,
                campaign_id,
                f"sending paused automatically: the provider refused our account ({error}). "
                "The offer stays up and new forwards wait.",
                self._clock.now(),
            )

    def _warn_of_input_faults(self, campaign_id: int, error: str) -> None:
        """Tell the marketer (the console shows the reason) that some senders' input breaks the
        campaign's templates; the campaign keeps sending."""
        with self._db.transaction() as session:
            session.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.ACTIVE)
                .values(status_reason=f"{INPUT_FAULT_WARNING}{error}"[:2000])
                .execution_options(synchronize_session=False)
            )


class _Recorder:
    """Collects outcomes and writes them a hundred at a time, then fills in the report."""

    def __init__(self, service: DeliveryService, report: DeliveryReport) -> None:
        self._service = service
        self.report = report
        self._pending: list[tuple[Message, _Outcome]] = []
        self.recorded: set[int] = set()
        self.written: set[int] = set()  # their outcome is in the database
        # Messages given to a transport: if something breaks before their outcome is known,
        # they may have gone, so they are never put back in the queue.
        self.handed: set[int] = set()
        # Messages the sweeper took back before we handed them over: no longer ours at all.
        self.lost: set[int] = set()
        # Sent messages whose acceptance was written down as it happened (texts, sent
        # concurrently): their outcome needs no second write.
        self.accepted: set[int] = set()

    def add(self, message: Message, outcome: _Outcome) -> None:
        self.recorded.add(message.id)
        self._pending.append((message, outcome))
        if len(self._pending) >= RECORD_EVERY:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self._service._write(pending, self.accepted)
        self.written.update(message.id for message, _ in pending)
        failing: set[int] = set()
        refused: dict[int, str] = {}
        input_faults: dict[int, str] = {}
        for message, outcome in pending:
            if outcome.fault is Fault.ACCOUNT:
                refused[message.forward.campaign_id] = outcome.error or ""
            if outcome.fault is Fault.INPUT:
                input_faults[message.forward.campaign_id] = outcome.error or ""
            _report_list(self.report, outcome.status).append(message.id)
            metrics.message_status(message.channel, self._service._provider(message.channel), outcome.status)
            if outcome.status == MessageStatus.UNKNOWN:
                log.error("message %s: outcome unknown (%s); left for review, not resent", message.id, outcome.error)
            if outcome.status in (MessageStatus.FAILED, MessageStatus.UNKNOWN):
                failing.add(message.forward.campaign_id)
        for campaign_id, error in input_faults.items():
            self._service._warn_of_input_faults(campaign_id, error)
        for campaign_id, error in refused.items():
            self._service._pause_for_account(campaign_id, error)
        if failing:
            self._service._pause_failing_campaigns(failing)


# Messages waiting to be sent: queued, or deferred until a moment (quiet hours).
WAITING = (MessageStatus.QUEUED.value, MessageStatus.DEFERRED.value)

FINAL_STATES = tuple(
    s.value
    for s in (
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.BOUNCED,
        MessageStatus.FAILED,
        MessageStatus.SUPPRESSED,
        MessageStatus.CAPPED,
        MessageStatus.UNKNOWN,
    )
)


# A message that has not gone out this long after its forward keeps no plaintext contact.
UNSENT_CONTACT_KEPT_FOR = timedelta(days=30)


def _policies_holding_contacts(session: Session) -> list[tuple[int, str, dict[str, Any]]]:
    """(campaign, policy the forwards were made under, the campaign's policy settings) for
    every group of forwards that still holds plaintext contacts."""
    pairs = session.execute(
        select(Forward.campaign_id, Forward.policy_name).where(Forward.recipient_contact.is_not(None)).distinct()
    ).all()
    settings: dict[int, dict[str, Any]] = dict(
        session.execute(
            select(Campaign.id, Campaign.policy_settings).where(Campaign.id.in_({c for c, _ in pairs}))
        ).all()
    )
    return [(campaign_id, policy_name, settings.get(campaign_id) or {}) for campaign_id, policy_name in pairs]


def _retention_over(policy_name: str, settings: dict[str, Any], now: datetime) -> ColumnElement[bool]:
    """Messages whose friend's contact the policy no longer lets us keep."""
    never_sent = and_(Message.status.in_(WAITING), Message.created_at < now - UNSENT_CONTACT_KEPT_FOR)
    final = Message.status.in_(FINAL_STATES)
    try:
        policy = policy_for(policy_name, settings)
    except PolicyError:
        return or_(final, never_sent)  # a policy that no longer parses keeps nothing
    if policy.retention is not Retention.DAYS_AFTER_SEND:
        return or_(final, never_sent)
    cutoff = now - timedelta(days=policy.retention_days)
    # Counted from the send, or for a message that ended without one, from its last change.
    finished_before = or_(Message.sent_at < cutoff, and_(Message.sent_at.is_(None), Message.updated_at < cutoff))
    return or_(and_(final, finished_before), never_sent)


OUR_FAULTS = (Fault.ACCOUNT.value, Fault.PROVIDER.value, Fault.CONTENT.value)


INPUT_FAULT_WARNING = "still sending, but some messages fail on what their sender typed; the templates must cope: "

# Who sent a message's forward, as far as we can tell: their network first (an IPv4 address or
# an IPv6 /64: a visitor can type any name and contact, and take any address of their /64),
# else their contact, else their name.
_SENDER = func.coalesce(
    Forward.client_network_hash, Forward.client_ip_hash, Forward.sender_contact_hash, Forward.sender_name
)


def _sends(rows: Sequence[Any]) -> list[tuple[bool, set[str]]]:
    """Recent messages (newest first) as sends: one per provider request (its recipients
    together) or per message that went alone; whether it failed for a reason of ours, and the
    senders it carried."""
    sends: dict[object, tuple[bool, set[str]]] = {}
    for message_id, fault, request_ref, sender in rows:
        key = request_ref or message_id
        ours, senders = sends.get(key, (False, set()))
        senders.add(sender)
        sends[key] = (ours or fault in OUR_FAULTS, senders)
    return list(sends.values())


def _pause(session: Session, campaign_id: int, reason: str, now: datetime) -> None:
    """An automatic pause at `now` (the app's clock): the campaign stops sending; its page
    stays up and takes forwards, which wait for a person to resume it."""
    paused = rows_changed(
        session,
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.ACTIVE)
        .values(status=CampaignStatus.PAUSED, status_reason=reason[:2000], paused_automatically=True, updated_at=now)
        .execution_options(synchronize_session=False),
    )
    if paused:
        metrics.campaign_paused()
        log.error("campaign %s %s", campaign_id, reason)
        changes = {"status": [CampaignStatus.ACTIVE.value, CampaignStatus.PAUSED.value]}
        record_event(session, campaign_id, SYSTEM, EventAction.STATUS_CHANGED, changes, reason)
        slug = session.scalar(select(Campaign.slug).where(Campaign.id == campaign_id))
        publish(session, "campaign.paused", {"campaign": slug, "automatic": True, "reason": reason[:2000]}, now=now)


@cache
def _hand_over_statement() -> ReturningUpdate[Any]:
    """Messages about to go to the provider, still ours (`sending`): written down, with the
    request they go in. Built once: a text is handed over on its own, so this runs once a
    text and the ORM's statement building would cost more than the database."""
    table = Message.__table__
    return (
        table.update()
        .where(table.c.id.in_(bindparam("b_ids", expanding=True)), table.c.status == MessageStatus.SENDING.value)
        .values(handed_at=bindparam("b_now"), request_ref=bindparam("b_ref"))
        .returning(table.c.id)
    )


@cache
def _acceptance_statement() -> Update:
    """A message the provider took: sent (unless a callback has already moved it on), with the
    provider's id, when, and the template versions it was rendered from. Built once, as above."""
    table = Message.__table__
    moving = (MessageStatus.SENDING.value, MessageStatus.UNKNOWN.value)
    return (
        table.update()
        .where(table.c.id == bindparam("b_id"))
        .values(
            status=case((table.c.status.in_(moving), MessageStatus.SENT.value), else_=table.c.status),
            provider_id=bindparam("b_provider"),
            sent_at=bindparam("b_sent"),
            template_versions=bindparam("b_versions"),
            updated_at=bindparam("b_now"),
        )
    )


def _template_versions(message: Message) -> dict[str, int]:
    """The campaign's own template versions its message was rendered from, by file name
    (`email.nl.html` for a Dutch one); a file at its built-in default has none."""
    campaign = message.forward.campaign
    current = campaign.current_templates()
    used = resolve(campaign.own_sources(), {}, message_locale(campaign, message.forward.locale)).files
    return {name: current[name].version for name in used}


def _report_list(report: DeliveryReport, status: MessageStatus) -> list[int]:
    return {
        MessageStatus.SENT: report.sent,
        MessageStatus.QUEUED: report.retry,
        MessageStatus.DEFERRED: report.deferred,
        MessageStatus.UNKNOWN: report.unknown,
        MessageStatus.SUPPRESSED: report.suppressed,
    }.get(status, report.failed)


def _without_contact(error: str | None, message: Message) -> str | None:
    """Provider errors quote the address ("The 'To' number +316... is not valid"): stored
    errors outlive the contact's retention, so they get the masked form."""
    contact = message.forward.recipient_contact
    if not error or not contact:
        return error
    return error.replace(contact, Contact(message.channel, contact).masked())


def _sent(job: _Job, provider_id: str, at: datetime) -> _Outcome:
    return _Outcome(MessageStatus.SENT, provider_id=provider_id, purge_contact=job.purge_on_send, sent_at=at)


def _rate_word(channel: MessageChannel) -> str:
    """How a pacing error names the channel's messages: "text" for a text message."""
    return channel.label.split()[0]


def due_messages(*columns: Any, now: datetime) -> Select[Any]:
    """`columns` of the messages the send loop may claim at `now`: waiting, of an active campaign,
    their retry (or quiet-hours) time come. The metrics' backlog counts exactly these."""
    return (
        select(*columns)
        .select_from(Message)
        .join(Message.forward)
        .join(Forward.campaign)
        .where(
            Message.status.in_(WAITING),
            Campaign.status == CampaignStatus.ACTIVE,
            or_(Message.not_before.is_(None), Message.not_before <= now),
        )
    )


def _claimable(now: datetime) -> Select[int]:
    """Queued messages whose campaign is active and whose retry time has come."""
    return due_messages(Message.id, now=now)
