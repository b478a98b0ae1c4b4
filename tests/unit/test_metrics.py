"""The metrics' contract (names and labels a dashboard and alerts are built on), the Grafana
dashboard that uses them, and multiprocess mode: values written by separate processes add up
in one scrape."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from engine import PROJECT_ROOT, metrics
from engine.metrics import Backlog, BacklogCollector, Metrics

# name: (type, labels). Changing one breaks dashboards and alerts: say so in the release notes.
CONTRACT = {
    "fluister_forwards_accepted": ("counter", ()),
    "fluister_forwards_refused": ("counter", ("reason",)),
    "fluister_messages": ("counter", ("channel", "provider", "status")),
    "fluister_send_seconds": ("histogram", ("channel", "provider")),
    "fluister_dispatch_batch_size": ("histogram", ()),
    "fluister_cap_refusals": ("counter", ("cap",)),
    "fluister_webhook_events": ("counter", ("provider", "result")),
    "fluister_opt_outs": ("counter", ("source",)),
    "fluister_campaigns_paused_automatically": ("counter", ()),
    "fluister_outgoing_webhook_attempts": ("counter", ("result",)),
    "fluister_webhook_endpoints_disabled": ("counter", ()),
    "fluister_queue_readable": ("gauge", ()),
    "fluister_queue_due_messages": ("gauge", ()),
    "fluister_queue_oldest_due_age_seconds": ("gauge", ()),
    "fluister_queue_jobs": ("gauge", ()),
}
SAMPLE_SUFFIXES = ("_total", "_created", "_bucket", "_count", "_sum")


def _exported() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every metric a scrape can show, with the labels of its samples (`le` aside)."""
    registry = CollectorRegistry()
    Metrics(registry)
    registry.register(BacklogCollector(lambda: Backlog(3, 12.5, 1)))
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for family in registry.collect():
        labels = tuple(sorted({name for s in family.samples for name in s.labels if name != "le"}))
        found[family.name] = (family.type, labels)
    return found


def test_every_metric_name_and_its_labels_are_the_contract() -> None:
    exported = _exported()
    # Labelled metrics without a sample yet show no labels: compare the declared ones.
    declared = {name: (kind, tuple(sorted(labels))) for name, (kind, labels) in CONTRACT.items()}
    assert set(exported) == set(declared)
    for name, (kind, labels) in exported.items():
        assert kind == declared[name][0], name
        assert set(labels) <= set(declared[name][1]), name


def test_labelled_metrics_take_exactly_their_labels() -> None:
    registry = CollectorRegistry()
    made = Metrics(registry)
    made.messages("email", "sendgrid", "sent").inc()
    made.send_seconds("sms", "twilio").observe(0.2)
    made.cap_refusals("friends per sender per day").inc()
    made.opt_outs("stop").inc()
    families = {f.name: f for f in registry.collect()}
    for name, (_, labels) in CONTRACT.items():
        if name in families and labels:
            sample_labels = {k for s in families[name].samples for k in s.labels if k != "le"}
            assert sample_labels == set(labels), name


def test_every_refusal_reason_and_webhook_result_is_there_from_the_start() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    reasons = {
        s.labels["reason"] for f in registry.collect() if f.name == "fluister_forwards_refused" for s in f.samples
    }
    assert reasons == {r.value for r in metrics.Refusal}
    results = {
        (s.labels["provider"], s.labels["result"])
        for f in registry.collect()
        if f.name == "fluister_webhook_events"
        for s in f.samples
    }
    assert {result for _, result in results} == {r.value for r in metrics.WebhookResult}


def test_the_provider_label_is_named_after_the_transport() -> None:
    class SendGridTransport:
        pass

    class Named:
        provider = "smtp"

    assert metrics.provider_name(SendGridTransport()) == "sendgrid"
    assert metrics.provider_name(Named()) == "smtp"


def test_an_unreadable_backlog_leaves_a_gap_and_says_so() -> None:
    def down() -> Backlog:
        raise ConnectionError("database gone")

    families = {f.name: f for f in BacklogCollector(down).collect()}
    assert set(families) == {"fluister_queue_readable"}
    assert families["fluister_queue_readable"].samples[0].value == 0


def test_the_grafana_dashboard_uses_only_metrics_that_exist() -> None:
    dashboard = json.loads((PROJECT_ROOT / "docs" / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in _panels(dashboard) for target in panel.get("targets", [])]
    assert expressions, "the dashboard has no queries"
    used = {_metric_of(name) for expr in expressions for name in re.findall(r"\bfluister_[a-z0-9_]+", expr)}
    assert used - set(CONTRACT) == set()
    # Every metric is on the dashboard somewhere (readable only in a panel's colour, so aside).
    assert set(CONTRACT) - used - {"fluister_queue_readable"} == set()
    assert dashboard["title"] and dashboard["uid"] and isinstance(dashboard["schemaVersion"], int)


def _panels(dashboard: dict) -> list[dict]:  # type: ignore[type-arg]
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def _metric_of(sample: str) -> str:
    if sample in CONTRACT:
        return sample
    for suffix in SAMPLE_SUFFIXES:
        if sample.endswith(suffix) and sample.removesuffix(suffix) in CONTRACT:
            return sample.removesuffix(suffix)
    return sample


WRITER = """
import sys
from engine import metrics
metrics.forward_accepted()
metrics.forward_refused(metrics.Refusal.CAPPED)
metrics.message_status("email", "sendgrid", "sent")
metrics.dispatch_batch(int(sys.argv[1]))
with metrics.send_timer("email", "sendgrid"):
    pass
"""


def test_two_processes_add_up_in_one_scrape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    for batch in ("10", "30"):
        subprocess.run([sys.executable, "-c", WRITER, batch], check=True, cwd=PROJECT_ROOT, env=environment)
    assert len(list(directory.glob("counter_*.db"))) == 2  # one file each: two processes wrote

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
    }
    assert samples[("fluister_forwards_accepted_total", ())] == 2
    assert samples[("fluister_forwards_refused_total", (("reason", "capped"),))] == 2
    sent = (("channel", "email"), ("provider", "sendgrid"), ("status", "sent"))
    assert samples[("fluister_messages_total", sent)] == 2
    assert samples[("fluister_dispatch_batch_size_count", ())] == 2
    assert samples[("fluister_dispatch_batch_size_sum", ())] == 40
    assert samples[("fluister_send_seconds_count", (("channel", "email"), ("provider", "sendgrid")))] == 2


def test_gunicorn_marks_a_dead_worker_in_multiprocess_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    live = tmp_path / "gauge_livesum_4242.db"
    live.write_bytes(b"")
    counter = tmp_path / "counter_4242.db"
    counter.write_bytes(b"")

    class Worker:
        pid = 4242

    metrics.child_exit(None, Worker())
    assert not live.exists()  # a dead process's live gauges go
    assert counter.exists()  # its counts still count
