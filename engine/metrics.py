"""Every metric Fluister exports (`GET /metrics`, Prometheus text format), and the scrape.

The metrics are made once per process, on first use (`recorder()`), in a registry of their own:
importing this module makes nothing. Code that counts calls one of the functions below, a
dictionary look-up and an increment: the forward POST and the send loop count on their hot
paths, so a labelled child is bound once per set of label values and kept.

Label values are bounded: a channel, a provider (a transport of the code), a message status,
a reason, cap name or opt-out source written in the code. Never an id, a slug or a contact:
every distinct value is a series Prometheus keeps for ever.

Several processes (gunicorn's workers, the delivery workers) add up in multiprocess mode: when
PROMETHEUS_MULTIPROC_DIR names a directory (set before the processes start: prometheus_client
reads it at import), each process writes its values to files there, and a scrape, whichever
process answers it, sums the files of all of them. The directory must be emptied before the
processes start (counters from a previous run would otherwise be added in) and shared by every
process of one machine. The backlog (`fluister_queue_*`) is read from PostgreSQL and Redis at
scrape time instead, so it is true however many processes there are.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class Refusal(StrEnum):
    """Why a posted forward form sent nothing (the `reason` of fluister_forwards_refused_total)."""

    HONEYPOT = "honeypot"  # the field people never see was filled in
    FORM_INVALID = "form_invalid"  # a field fails its syntax (a bad address, no friend)
    TOO_FAST = "too_fast"  # sent quicker than a person fills a form in
    EXPIRED = "expired"  # an old, forged or borrowed render stamp
    CHALLENGE = "challenge"  # a proof of work was asked for, or the one sent was not good
    REJECTED = "rejected"  # the campaign's rules refuse it (a friend it cannot reach, a bad link)
    CAPPED = "capped"  # a volume cap (fluister_cap_refusals_total says which)
    SENT_TWICE = "sent_twice"  # a double click or a replay: answered as sent, nothing written
    CAMPAIGN_UNAVAILABLE = "campaign_unavailable"  # no such campaign, or it is closed
    PREVIEW_UNAVAILABLE = "preview_unavailable"  # the preview it needs cannot be rendered
    CAPS_UNAVAILABLE = "caps_unavailable"  # Redis is down: caps cannot be checked, so nothing goes


class WebhookResult(StrEnum):
    """What became of a provider's webhook event (the `result` of fluister_webhook_events_total)."""

    APPLIED = "applied"  # matched a message (or a number) and recorded
    DUPLICATE = "duplicate"  # seen before: a provider's retry
    UNMATCHED = "unmatched"  # for no message of ours
    IGNORED = "ignored"  # a text to our number that is no keyword
    BAD_SIGNATURE = "bad_signature"  # missing or wrong signature: refused with 403
    TOO_LARGE = "too_large"  # refused by its size, before its signature was checked
    MALFORMED = "malformed"  # signed, but not what the provider sends


# Seconds: a provider's answer takes tens to hundreds of milliseconds; a batch of 1000
# recipients, or a timeout, up to tens of seconds.
SEND_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Messages a worker claims at once: DISPATCH_BATCH_SIZE (500 by default) at most.
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)


class _Bound:
    """A labelled metric's children, each bound once: `labels()` validates and locks on every
    call, a dictionary look-up does not."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            # Two threads may both get here: labels() hands them the same child.
            child = self._children[values] = self._metric.labels(*values)
        return child


class Metrics:
    """The metrics, in `registry`. Names and labels are a contract (docs/contracts.md): a
    dashboard and alerts are built on them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.forwards_accepted = Counter(
            "fluister_forwards_accepted",
            "Forward forms accepted: their messages are queued.",
            registry=registry,
        )
        forwards_refused = Counter(
            "fluister_forwards_refused",
            "Forward forms that sent nothing, by reason.",
            ["reason"],
            registry=registry,
        )
        messages = Counter(
            "fluister_messages",
            "Messages reaching a status: sent, failed, suppressed, unknown or queued again by the send "
            "loop; delivered, bounced or failed by a provider's event.",
            ["channel", "provider", "status"],
            registry=registry,
        )
        send_seconds = Histogram(
            "fluister_send_seconds",
            "How long a provider took to answer one request (a message, or a batch of emails).",
            ["channel", "provider"],
            buckets=SEND_SECONDS_BUCKETS,
            registry=registry,
        )
        self.dispatch_batch_size = Histogram(
            "fluister_dispatch_batch_size",
            "Messages a worker claimed in one batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        cap_refusals = Counter(
            "fluister_cap_refusals",
            "Requests a volume cap refused, by cap.",
            ["cap"],
            registry=registry,
        )
        webhook_events = Counter(
            "fluister_webhook_events",
            "Provider webhook events, by provider and what became of them.",
            ["provider", "result"],
            registry=registry,
        )
        opt_outs = Counter(
            "fluister_opt_outs",
            "Opt-outs recorded (a suppression and its log entry), by source.",
            ["source"],
            registry=registry,
        )
        self.campaigns_paused = Counter(
            "fluister_campaigns_paused_automatically",
            "Campaigns the send loop paused: too many failed sends, or the provider refused our account.",
            registry=registry,
        )
        outgoing_webhooks = Counter(
            "fluister_outgoing_webhook_attempts",
            "Attempts at delivering an outgoing webhook, by what became of the delivery.",
            ["result"],
            registry=registry,
        )
        self.webhook_endpoints_disabled = Counter(
            "fluister_webhook_endpoints_disabled",
            "Outgoing webhook endpoints disabled automatically for failing.",
            registry=registry,
        )
        self.forwards_refused = _Bound(forwards_refused)
        self.outgoing_webhooks = _Bound(outgoing_webhooks)
        self.messages = _Bound(messages)
        self.send_seconds = _Bound(send_seconds)
        self.cap_refusals = _Bound(cap_refusals)
        self.webhook_events = _Bound(webhook_events)
        self.opt_outs = _Bound(opt_outs)
        # Every reason and result exists from the start, at 0: rate() and alerts then see the
        # first one happen instead of a series appearing.
        for reason in Refusal:
            self.forwards_refused(reason.value)
        for provider in ("twilio", "sendgrid"):
            for result in WebhookResult:
                self.webhook_events(provider, result.value)
        for outcome in OUTGOING_WEBHOOK_RESULTS:
            self.outgoing_webhooks(outcome)


@cache
def recorder() -> Metrics:
    """This process's metrics, made on first use."""
    return Metrics(CollectorRegistry(auto_describe=True))


# -- what the code counts ----------------------------------------------------------------


def forward_accepted() -> None:
    recorder().forwards_accepted.inc()


def forward_refused(reason: Refusal) -> None:
    recorder().forwards_refused(reason.value).inc()


def message_status(channel: str, provider: str, status: str) -> None:
    """A message reached `status` (a MessageStatus value) on `channel` through `provider`."""
    recorder().messages(channel, provider, status).inc()


def send_timer(channel: str, provider: str) -> AbstractContextManager[Any]:
    """`with send_timer(...):` around one request to a provider (its time is observed even
    when it raises)."""
    timer: AbstractContextManager[Any] = recorder().send_seconds(channel, provider).time()
    return timer


def dispatch_batch(size: int) -> None:
    recorder().dispatch_batch_size.observe(size)


def cap_refused(cap: str) -> None:
    """A cap refused; `cap` is its name, a constant of the code (never its key)."""
    recorder().cap_refusals(cap).inc()


def webhook_events(provider: str, result: WebhookResult, count: int = 1) -> None:
    if count:
        recorder().webhook_events(provider, result.value).inc(count)


def opt_out(source: str) -> None:
    """An opt-out was recorded; `source` is a SuppressionSource value."""
    recorder().opt_outs(source).inc()


def campaign_paused() -> None:
    recorder().campaigns_paused.inc()


# What an attempt at an outgoing webhook delivery came to: delivered, to be tried again, given up.
OUTGOING_WEBHOOK_RESULTS = ("succeeded", "retry", "failed")


def outgoing_webhook(result: str) -> None:
    recorder().outgoing_webhooks(result).inc()


def webhook_endpoint_disabled() -> None:
    recorder().webhook_endpoints_disabled.inc()


_PROVIDERS: dict[type, str] = {}


def provider_name(transport: object) -> str:
    """The `provider` label of a transport: its `provider` attribute, or its class's name
    without "Transport" (SendGridTransport: sendgrid); one per class of the code."""
    kind = type(transport)
    name = _PROVIDERS.get(kind)
    if name is None:
        name = getattr(transport, "provider", None) or kind.__name__.removesuffix("Transport").lower()
        _PROVIDERS[kind] = name
    return name


# -- the scrape ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    """The delivery backlog as it is now (engine.services.backlog reads it)."""

    due_messages: int  # waiting to be sent, and due
    oldest_due_seconds: float  # how long the longest-waiting of them has been due (0: none)
    queued_jobs: int  # jobs waiting in the RQ queue


class BacklogCollector(Collector):
    """The backlog, read when Prometheus scrapes: one query and one Redis call. When either
    cannot be read, fluister_queue_readable says 0 and the figures are left out (a gap, not a
    false zero)."""

    def __init__(self, read: Callable[[], Backlog]) -> None:
        self._read = read

    def describe(self) -> list[Metric]:
        return []  # registering must not read the database

    def collect(self) -> Iterator[Metric]:
        try:
            backlog = self._read()
        except Exception as error:  # a scrape must still answer, with what it can
            first_line = str(error).splitlines()[0] if str(error) else ""
            log.warning("metrics: the backlog could not be read (%s: %s)", type(error).__name__, first_line)
            yield GaugeMetricFamily("fluister_queue_readable", _READABLE_HELP, value=0)
            return
        yield GaugeMetricFamily("fluister_queue_readable", _READABLE_HELP, value=1)
        yield GaugeMetricFamily(
            "fluister_queue_due_messages",
            "Messages waiting to be sent whose time has come.",
            value=backlog.due_messages,
        )
        yield GaugeMetricFamily(
            "fluister_queue_oldest_due_age_seconds",
            "How long the longest-waiting due message has been due (0 when none is).",
            value=backlog.oldest_due_seconds,
        )
        yield GaugeMetricFamily("fluister_queue_jobs", "Jobs waiting in the delivery queue.", value=backlog.queued_jobs)


_READABLE_HELP = "1 when the backlog figures could be read from PostgreSQL and Redis, else 0."


def multiprocess_dir() -> str | None:
    """Where the processes write their values, as prometheus_client reads it (None: one process)."""
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


def exposition(read_backlog: Callable[[], Backlog] | None = None) -> bytes:
    """The scrape's body (Prometheus text format): every process's metrics in multiprocess
    mode, else this one's, and the backlog."""
    own = recorder()  # this process's series exist, at 0, even before anything happened
    registry = CollectorRegistry()
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(own.registry)
    if read_backlog is not None:
        registry.register(BacklogCollector(read_backlog))
    return generate_latest(registry)


def child_exit(server: object, worker: Any) -> None:
    """gunicorn's hook when a worker exits (config/gunicorn.py): its live gauges go; its
    counters stay, since they still count toward the totals."""
    if multiprocess_dir():
        mark_process_dead(worker.pid)
