"""The services one app (and its workers) share, built once by the app factory.

This is the one place where services, counters and Redis clients are made and wired: the web,
the CLI and the workers take them from the app's runtime (`current_runtime()`), never build
their own, so that each exists once per app with the same clock, database and Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from config import Settings
from engine.api_limits import ApiRateLimits
from engine.caps import Limiter, Pacer
from engine.challenge import ChallengeGate, ProofOfWork
from engine.clock import Clock, SystemClock
from engine.contacts import ContactHasher
from engine.db import Database
from engine.form_html import FormHtmlCache
from engine.keywords import KeywordBook
from engine.outages import OutageLog
from engine.outbound import system_resolver
from engine.queue import InProcessJobQueue, RQJobQueue, build_queue
from engine.rendering import TemplateRenderer
from engine.resilience import RetryLog
from engine.services.analytics import VisitCounter
from engine.services.analytics.plays import PlayCounter
from engine.services.analytics.variants import VariantVisitCounter
from engine.services.consents import ConsentImporter
from engine.services.contests import ContestService
from engine.services.coupon_imports import IMPORTS_FOLDER, CouponImports
from engine.services.delivery import DeliveryService, Links
from engine.services.experiments import ExperimentAutopilot, VerdictCache
from engine.services.forwarding import ForwardingService
from engine.services.idempotency import IdempotencyStore
from engine.services.identities import RehashGate
from engine.services.intake import ForwardIntake
from engine.services.payouts import PayoutService
from engine.services.privacy import PrivacyService
from engine.services.provider_events import ProviderEventService
from engine.services.referrers import ReferrerService, confirmed_contact
from engine.services.simulation import SimulationPlan, Simulator
from engine.services.snapshots import CampaignSnapshots
from engine.services.staff import StaffService
from engine.services.suppression import SuppressionService
from engine.services.variants import VariantAssigner
from engine.services.webhook_delivery import WebhookSender
from engine.services.webhooks import WebhookEndpoints, take_new_deliveries
from engine.tokens import Tokens, tokens_for
from engine.transports import EmailTransport, SmsTransport, Transports
from engine.transports.outbox import OutboxTransport
from engine.transports.sendgrid import SendGridTransport
from engine.transports.smtp import SmtpSettings, SmtpTransport
from engine.transports.twilio import TwilioTransport

EXTENSION_KEY = "fluister"


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    db: Database
    tokens: Tokens
    hasher: ContactHasher
    renderer: TemplateRenderer
    queue: RQJobQueue
    transports: Transports
    forwarding: ForwardingService
    # The campaigns this process served, as last committed (engine.services.snapshots).
    snapshots: CampaignSnapshots
    delivery: DeliveryService
    suppression: SuppressionService
    provider_events: ProviderEventService
    limiter: Limiter
    staff: StaffService
    challenge: ChallengeGate
    # Whether the upgrade still owes `flask contacts rehash` (engine.services.identities).
    rehash: RehashGate
    # The keywords (STOP, START, HELP and their other languages) inbound messages are read with.
    keywords: KeywordBook
    privacy: PrivacyService
    consents: ConsentImporter
    # Landing views, counted in Redis; one per app, so that an outage is logged once.
    visits: VisitCounter
    # Plays of landing pages' videos: stamps handed out and checked, plays counted in Redis.
    plays: PlayCounter
    # A/B variants: the draw (its random source injected: tests set a seeded one), and each
    # variant's views and visitors, counted in Redis (engine.services.variants).
    variants: VariantAssigner
    variant_visits: VariantVisitCounter
    # One log line per outage of the database or Redis (engine.web.outages answers 503).
    outages: OutageLog
    # Coupon imports: RQ jobs with Redis, threads of this process in the embedded mode.
    coupon_imports: CouponImports
    # Workers and the scheduler: one log line a minute while Redis or the database is out.
    retries: RetryLog
    # The API's per-client rate limits, and the answers kept for its POSTs' Idempotency-Keys.
    api_limits: ApiRateLimits
    idempotency: IdempotencyStore
    # Outgoing webhooks: the endpoints brands register, and the jobs' sender.
    webhooks: WebhookEndpoints
    webhook_sender: WebhookSender
    # Paying approved rewards out once their hold is over (engine.services.payouts).
    payouts: PayoutService
    # Contests made final when they end, and their winners told (engine.services.contests).
    contests: ContestService

    def simulator(self, plan: SimulationPlan, *, progress: Callable[[int], None] = lambda n: None) -> Simulator:
        """A synthetic campaign run (`flask simulate`) on this runtime's database and caps: one
        per run, since it carries the run's people and events."""
        return Simulator(self.db, self.tokens, self.hasher, self.limiter, plan, progress=progress)

    @cached_property
    def experiment_autopilot(self) -> ExperimentAutopilot:
        """Shifts new visitors towards the likely best variant in campaigns that ask for it."""
        return ExperimentAutopilot(self.db, self.clock, self.variant_visits, self.verdicts)

    @cached_property
    def landing_forms(self) -> FormHtmlCache:
        """A first landing view's form, rendered once per shape in this process (engine.form_html)."""
        return FormHtmlCache()

    @cached_property
    def verdicts(self) -> VerdictCache:
        """The last verdict on each campaign's experiment, read in this process."""
        return VerdictCache()

    @cached_property
    def intake(self) -> ForwardIntake:
        """The checks a posted forward form meets before the forwarding service takes it."""
        return ForwardIntake(
            self.forwarding,
            self.tokens,
            self.challenge.proof_of_work,
            min_form_seconds=self.settings.min_form_seconds,
        )

    @cached_property
    def referrers(self) -> ReferrerService:
        """Referrers' own pages, and the contact they may confirm to follow their rewards."""
        return ReferrerService(
            self.db,
            self.tokens,
            self.hasher,
            self.limiter,
            self.transports,
            base_url=self.settings.public_base_url,
            default_region=self.settings.default_phone_region,
            clock=self.clock,
        )


def build_runtime(
    app: Flask, settings: Settings, transports: Transports | None = None, clock: Clock | None = None
) -> Runtime:
    clock = clock or SystemClock()
    db = Database(settings.database_url)
    tokens = tokens_for(
        settings.secret_keys, settings.forward_link_max_age_days, settings.unsubscribe_link_max_age_days
    )
    hasher = ContactHasher(settings.contact_hash_key)
    renderer = TemplateRenderer()
    if transports is None:
        transports = _transports_for(settings, db)

    # The in-process queue's idle sweep needs the delivery service, which needs the
    # queue: the callback looks the service up when it runs.
    queue = build_queue(
        app,
        settings.redis_url,
        settings.queue_name,
        on_idle=lambda: _sweep_in_process(current_runtime()),
        autostart=settings.inprocess_worker,
        key_prefix=settings.redis_key_prefix,
    )
    prefix = settings.redis_key_prefix
    limiter = Limiter(queue.connection, prefix=f"{prefix}cap")
    links = Links(settings.public_base_url, tokens, settings.unsubscribe_mailto)
    delivery = DeliveryService(
        db,
        transports,
        renderer,
        links,
        queue,
        sending_stale_after=timedelta(seconds=settings.sending_stale_after_seconds),
        batch_size=settings.dispatch_batch_size,
        concurrency=settings.sms_concurrency,
        pacers={"sms": _sms_pacer(settings, limiter), "email": _email_pacer(settings, limiter)},
        clock=clock,
        hasher=hasher,
    )
    webhook_sender = WebhookSender(
        db,
        queue,
        clock,
        timeout=settings.webhook_timeout_seconds,
        allow_local=settings.webhooks_allow_local,
        resolver=system_resolver,
        disable_after=timedelta(days=settings.webhook_disable_after_days),
        disable_after_failures=settings.webhook_disable_after_failures,
    )
    _send_webhooks_after_commit(db, webhook_sender)
    snapshots = CampaignSnapshots(db)
    runtime = Runtime(
        settings=settings,
        clock=clock,
        db=db,
        tokens=tokens,
        hasher=hasher,
        renderer=renderer,
        queue=queue,
        transports=transports,
        forwarding=ForwardingService(
            db,
            tokens,
            hasher,
            queue,
            limiter,
            renderer,
            links,
            clock=clock,
            snapshots=snapshots,
            default_phone_region=settings.default_phone_region,
        ),
        snapshots=snapshots,
        delivery=delivery,
        suppression=SuppressionService(db, tokens, clock),
        provider_events=ProviderEventService(db, clock),
        limiter=limiter,
        staff=StaffService(db, limiter),
        challenge=ChallengeGate(
            hasher, limiter, ProofOfWork(settings.secret_keys, queue.connection, prefix=f"{prefix}challenge")
        ),
        rehash=RehashGate(db),
        keywords=KeywordBook.build(
            settings.sms_keyword_languages,
            extra_opt_out=settings.sms_opt_out_keywords,
            extra_opt_in=settings.sms_opt_in_keywords,
            extra_help=settings.sms_help_keywords,
        ),
        privacy=PrivacyService(db, hasher, settings.default_phone_region, clock),
        consents=ConsentImporter(db, hasher, settings.default_phone_region, clock=clock),
        visits=VisitCounter(queue.connection, key_prefix=prefix),
        plays=PlayCounter(queue.connection, tokens, key_prefix=prefix),
        variants=VariantAssigner(tokens),
        variant_visits=VariantVisitCounter(queue.connection, key_prefix=prefix),
        outages=OutageLog(),
        coupon_imports=CouponImports(
            db,
            queue.connection,
            settings.instance_path / IMPORTS_FOLDER,
            # The embedded queue's thread may be off (tests) or busy sending: a thread of its own.
            queue=None if isinstance(queue, InProcessJobQueue) else queue,
            key_prefix=prefix,
        ),
        retries=RetryLog(every=settings.outage_log_every_seconds),
        api_limits=ApiRateLimits.for_settings(settings),
        idempotency=IdempotencyStore(db, clock),
        webhooks=WebhookEndpoints(db, clock, allow_local=settings.webhooks_allow_local, resolver=system_resolver),
        webhook_sender=webhook_sender,
        payouts=PayoutService(db, clock, transports, limiter, hasher, queue.enqueue, contacts=confirmed_contact),
        contests=ContestService(db, clock, transports, hasher, queue.enqueue, contacts=confirmed_contact),
    )
    runtime.payouts.links = runtime.referrers.links_for
    runtime.contests.links = runtime.referrers.links_for
    return runtime


def _send_webhooks_after_commit(db: Database, sender: WebhookSender) -> None:
    """Webhook deliveries written in a transaction get their jobs once it has committed (a job
    asked for earlier could run before the rows exist); a rollback forgets them."""

    def committed(session: Session) -> None:
        sender.enqueue(take_new_deliveries(session))

    def rolled_back(session: Session) -> None:
        take_new_deliveries(session)

    event.listen(db.sessions, "after_commit", committed)
    event.listen(db.sessions, "after_rollback", rolled_back)


def _sweep_in_process(runtime: Runtime) -> None:
    """The embedded queue's idle round: the messages' sweep, and webhook retries that are due."""
    try:
        runtime.delivery.sweep()
    finally:
        runtime.webhook_sender.sweep()


def _transports_for(settings: Settings, db: Database) -> Transports:
    # Config has checked the names and that each transport's own settings are there.
    outbox = OutboxTransport(db)
    email: EmailTransport = outbox
    sms: SmsTransport = outbox
    if settings.email_transport == "smtp" and settings.smtp_url:
        email = SmtpTransport(SmtpSettings.from_url(settings.smtp_url))
    elif settings.email_transport == "sendgrid" and settings.sendgrid_api_key:
        email = SendGridTransport(settings.sendgrid_api_key, settings.sendgrid_api_host)
    twilio = _twilio_for(settings)
    if settings.sms_transport == "twilio" and twilio is not None:
        sms = twilio
    # SMS_TRANSPORT=none (an email-only installation): no transport for texts, so no campaign may
    # enable them, and a text of one that had them waits with its campaign paused, saying why.
    transports = Transports(email=email) if settings.sms_transport == "none" else Transports(email=email, sms=sms)
    # WhatsApp only where configured: without a transport, no campaign may enable it.
    if settings.whatsapp_transport == "twilio" and twilio is not None:
        transports = transports.with_channel("whatsapp", twilio)
    elif settings.whatsapp_transport == "outbox":
        transports = transports.with_channel("whatsapp", outbox)
    return transports


def _twilio_for(settings: Settings) -> TwilioTransport | None:
    """One Twilio transport (one pooled connection) for texts and WhatsApp alike."""
    if "twilio" not in (settings.sms_transport, settings.whatsapp_transport):
        return None
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        return None
    return TwilioTransport(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        messaging_service_sid=settings.twilio_messaging_service_sid,
        from_number=settings.twilio_from if settings.sms_transport == "twilio" else None,
        whatsapp_from=settings.twilio_whatsapp_from if settings.whatsapp_transport == "twilio" else None,
        api_base=settings.twilio_api_base,
        status_callback=f"{settings.public_base_url}/hooks/twilio/status",
    )


def _sms_pacer(settings: Settings, limiter: Limiter) -> Pacer | None:
    if settings.sms_segments_per_second is None:
        return None
    sender = settings.twilio_messaging_service_sid or settings.twilio_from or settings.sms_transport
    return Pacer(limiter, f"sms:{sender}", settings.sms_segments_per_second)


def _email_pacer(settings: Settings, limiter: Limiter) -> Pacer | None:
    if settings.email_messages_per_second is None:
        return None
    return Pacer(limiter, f"email:{settings.email_transport}", settings.email_messages_per_second)


def current_runtime() -> Runtime:
    return runtime_of(current_app)


def runtime_of(app: Flask) -> Runtime:
    return app.extensions[EXTENSION_KEY]
