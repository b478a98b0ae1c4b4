"""Job functions, enqueued by dotted path (`workers.jobs.dispatch`)."""

from __future__ import annotations

from flask import has_app_context

from engine.resilience import DATABASE, dependency_of
from engine.runtime import current_runtime


def dispatch() -> dict[str, int]:
    """Send every message that is due, in batches, until none is left."""
    _ensure_app_context()
    runtime = current_runtime()
    try:
        # Not a message while old contact hashes wait for their rehash (RehashPending): an opt-out
        # kept under one could be missed. The messages stay queued; the sweeper asks again later.
        runtime.rehash.check()
        report = runtime.delivery.dispatch()
    except Exception as error:
        dependency = dependency_of(error)
        if dependency is None:
            raise
        # The database went away: what was claimed goes back to the queue by the sweeper (never
        # handed over) or is settled by it. One log line a minute, not a traceback per job.
        runtime.retries.failed(dependency, error, retry_in=runtime.settings.sweep_every_seconds)
        return {}
    runtime.retries.recovered(DATABASE)  # says so only when it was out
    return {
        "sent": len(report.sent),
        "skipped": len(report.skipped),
        "retry": len(report.retry),
        "failed": len(report.failed),
        "unknown": len(report.unknown),
        "suppressed": len(report.suppressed),
        "provider_requests": report.provider_requests,
    }


def import_coupons(import_id: str) -> None:
    """Import an uploaded CSV of coupon codes, spooled in the instance folder under its id."""
    _ensure_app_context()
    current_runtime().coupon_imports.run(import_id)


def pay_rewards() -> None:
    """The payout pass: rewards whose hold period is over are paid out by their method."""
    _ensure_app_context()
    current_runtime().payouts.run_due()


def send_reward_code(reward_id: int) -> None:
    """Send an approved reward's code to its referrer (at most once)."""
    _ensure_app_context()
    current_runtime().payouts.send(reward_id)


def send_contest_notice(winner_id: int) -> None:
    """Tell a contest's winner they won (at most once)."""
    _ensure_app_context()
    current_runtime().contests.send(winner_id)


def _ensure_app_context() -> None:
    # Our workers run jobs inside the app context; a plain `rq worker` does not, so
    # build the app once for this process and keep its context pushed.
    if not has_app_context():
        from engine import create_app

        create_app().app_context().push()


def deliver_webhook(delivery_id: int) -> str | None:
    """One attempt at a webhook delivery (signed, sent, its answer recorded); its status after."""
    _ensure_app_context()
    return current_runtime().webhook_sender.deliver(delivery_id)
