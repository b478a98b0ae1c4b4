"""What an operator does without SQL: accounts, API keys, uncertain messages and a simulated
campaign, from the command line. Exit codes: 0 done, 1 refused, 2 usage or an unknown object."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from engine.clock import FixedClock
from engine.models import Campaign, CampaignEvent, Forward, Message, MessageStatus
from engine.runtime import Runtime
from engine.transports import AmbiguousError
from engine.transports.memory import MemoryTransport
from tests.helpers import STAFF_PASSWORD, sign_in, submission

NEW_PASSWORD = "violet-harbour-lantern-41"


def cli(app: Flask, *args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=list(args), input=stdin)


# -- accounts -------------------------------------------------------------------------------------


def test_users_list_shows_each_account_and_never_a_secret(app: Flask, runtime: Runtime) -> None:
    runtime.staff.create_user("ada@staff.example", "admin", STAFF_PASSWORD, team="ops")
    runtime.staff.create_user("bo@staff.example", "marketer", STAFF_PASSWORD)
    runtime.staff.disable_user("bo@staff.example")
    listed = cli(app, "users", "list")
    assert listed.exit_code == 0, listed.output
    rows = {line.split("\t")[0]: line.split("\t") for line in listed.output.splitlines()[1:]}
    assert rows["ada@staff.example"][1:4] == ["admin", "ops", "active"]
    assert rows["bo@staff.example"][1:4] == ["marketer", "default", "disabled"]
    assert "scrypt" not in listed.output and STAFF_PASSWORD not in listed.output


def test_a_disabled_account_is_signed_out_and_comes_back_when_enabled(app: Flask, runtime: Runtime) -> None:
    runtime.staff.create_user("bo@staff.example", "marketer", STAFF_PASSWORD)
    client = app.test_client()
    assert sign_in(client, "bo@staff.example").status_code == 303
    assert client.get("/console").status_code == 200

    assert cli(app, "users", "disable", "bo@staff.example").exit_code == 0
    assert client.get("/console").status_code != 200
    assert sign_in(client, "bo@staff.example").status_code != 303

    enabled = cli(app, "users", "enable", "Bo@Staff.example")
    assert enabled.exit_code == 0, enabled.output
    assert "bo@staff.example: enabled" in enabled.output
    assert sign_in(client, "bo@staff.example").status_code == 303


def test_reset_password_applies_the_rules_and_ends_every_session(app: Flask, runtime: Runtime) -> None:
    runtime.staff.create_user("bo@staff.example", "marketer", STAFF_PASSWORD)
    client = app.test_client()
    assert sign_in(client, "bo@staff.example").status_code == 303

    weak = cli(app, "users", "reset-password", "bo@staff.example", "--password-stdin", stdin="password123\n")
    assert weak.exit_code == 1
    assert "at least 12 characters" in weak.output
    assert client.get("/console").status_code == 200  # nothing changed

    done = cli(app, "users", "reset-password", "bo@staff.example", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert done.exit_code == 0, done.output
    assert client.get("/console").status_code != 200
    assert sign_in(app.test_client(), "bo@staff.example").status_code != 303
    assert sign_in(app.test_client(), "bo@staff.example", NEW_PASSWORD).status_code == 303


def test_reset_password_asks_twice_at_the_prompt(app: Flask, runtime: Runtime) -> None:
    runtime.staff.create_user("bo@staff.example", "marketer", STAFF_PASSWORD)
    done = cli(app, "users", "reset-password", "bo@staff.example", stdin=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert done.exit_code == 0, done.output
    assert NEW_PASSWORD not in done.output
    assert sign_in(app.test_client(), "bo@staff.example", NEW_PASSWORD).status_code == 303


def test_an_unknown_account_is_exit_code_2(app: Flask) -> None:
    for args in (
        ["users", "disable", "nobody@staff.example"],
        ["users", "enable", "nobody@staff.example"],
        ["users", "reset-two-factor", "nobody@staff.example"],
        ["users", "enable", "not an address"],
    ):
        result = cli(app, *args)
        assert result.exit_code == 2, (args, result.output)
        assert "no account" in result.output
    reset = cli(app, "users", "reset-password", "nobody@staff.example", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert reset.exit_code == 2


# -- API keys -------------------------------------------------------------------------------------


def test_api_keys_list_shows_what_a_key_is_never_the_key(app: Flask, runtime: Runtime) -> None:
    key = runtime.staff.create_api_key("shop checkout", "marketer", ["redemptions"], team="ops")
    listed = cli(app, "api-keys", "list")
    assert listed.exit_code == 0, listed.output
    assert key.secret not in listed.output
    row = listed.output.splitlines()[1].split("\t")
    assert row[1:6] == ["shop checkout", "marketer", "redemptions", "ops", key.secret[:12] + "…"]
    assert row[7:] == ["never", "no"]


def test_a_revoked_key_stops_working_at_once(app: Flask, runtime: Runtime) -> None:
    key = runtime.staff.create_api_key("shop checkout", "marketer")
    assert runtime.staff.authenticate_key(key.secret) is not None
    key_id = runtime.staff.list_api_keys()[0].id

    revoked = cli(app, "api-keys", "revoke", str(key_id))
    assert revoked.exit_code == 0, revoked.output
    assert key.secret not in revoked.output
    assert runtime.staff.authenticate_key(key.secret) is None
    assert cli(app, "api-keys", "list").output.splitlines()[1].split("\t")[-1] != "no"
    assert "revoked already" in cli(app, "api-keys", "revoke", str(key_id)).output
    assert cli(app, "api-keys", "revoke", "999").exit_code == 2


# -- unknown messages -----------------------------------------------------------------------------


def unknown_emails(runtime: Runtime, transport: MemoryTransport, *friends: str) -> list[int]:
    """Emails whose provider call timed out: handed over, outcome unknown."""
    transport.fail_next(*[AmbiguousError("SendGrid did not answer in time")] * len(friends))
    receipt = runtime.forwarding.submit("spring", submission(*friends))
    runtime.delivery.deliver(receipt.message_ids)
    assert all(status(runtime, i) == MessageStatus.UNKNOWN for i in receipt.message_ids)
    return list(receipt.message_ids)


def status(runtime: Runtime, message_id: int) -> str:
    with runtime.db.reading() as session:
        return session.get(Message, message_id).status  # type: ignore[union-attr]


def never_handed_over(runtime: Runtime, message_id: int) -> None:
    with runtime.db.transaction() as session:
        session.execute(update(Message).where(Message.id == message_id).values(handed_at=None))


def history(runtime: Runtime) -> list[CampaignEvent]:
    with runtime.db.reading() as session:
        return list(session.scalars(select(CampaignEvent).where(CampaignEvent.action == "messages reconciled")))


def test_unknown_messages_are_listed_with_why_and_whether_handed_over_never_a_contact(  # type: ignore[no-untyped-def]
    app: Flask, runtime: Runtime, campaign, transport: MemoryTransport, clock: FixedClock
) -> None:
    assert cli(app, "messages", "unknown").output.strip() == "no unknown messages"
    first, second = unknown_emails(runtime, transport, "friend1@example.com", "friend2@example.com")
    never_handed_over(runtime, second)
    clock.advance(timedelta(hours=3, minutes=5))

    listed = cli(app, "messages", "unknown")
    assert listed.exit_code == 0, listed.output
    assert "friend1" not in listed.output and "example.com" not in listed.output
    rows = {int(line.split("\t")[0]): line.split("\t") for line in listed.output.splitlines()[1:]}
    assert set(rows) == {first, second}
    assert rows[first][1:4] == ["spring", "email", "3h 5m"]
    assert rows[first][4].startswith("yes, ")
    assert rows[second][4] == "no"
    assert "did not answer in time" in rows[first][5]


def test_requeue_sends_only_what_never_left_and_refuses_the_rest(  # type: ignore[no-untyped-def]
    app: Flask, runtime: Runtime, campaign, transport: MemoryTransport
) -> None:
    handed, never = unknown_emails(runtime, transport, "friend1@example.com", "friend2@example.com")
    never_handed_over(runtime, never)

    refused = cli(app, "messages", "requeue", str(handed), str(never))
    assert refused.exit_code == 1
    assert f"refused {handed}" in refused.output and "--force" in refused.output
    assert status(runtime, handed) == MessageStatus.UNKNOWN
    runtime.queue.drain()
    assert status(runtime, never) == MessageStatus.SENT
    assert [e.to for e in transport.emails] == ["friend2@example.com"]

    forced = cli(app, "messages", "requeue", str(handed), "--force", "--by", "ops@staff.example")
    assert forced.exit_code == 0, forced.output
    runtime.queue.drain()
    assert status(runtime, handed) == MessageStatus.SENT
    assert sorted(e.to for e in transport.emails) == ["friend1@example.com", "friend2@example.com"]
    events = history(runtime)
    assert [(e.actor, e.actor_kind) for e in events] == [("cli", "cli"), ("ops@staff.example", "cli")]
    assert "unknown" in str(events[1].changes) and "queued" in str(events[1].changes)
    assert "checking the provider's log" in events[1].reason


def test_requeue_never_handed_over_takes_exactly_those(  # type: ignore[no-untyped-def]
    app: Flask, runtime: Runtime, campaign, transport: MemoryTransport
) -> None:
    handed, never = unknown_emails(runtime, transport, "friend1@example.com", "friend2@example.com")
    never_handed_over(runtime, never)
    done = cli(app, "messages", "requeue", "--never-handed-over")
    assert done.exit_code == 0, done.output
    runtime.queue.drain()
    assert (status(runtime, handed), status(runtime, never)) == (MessageStatus.UNKNOWN, MessageStatus.SENT)
    assert cli(app, "messages", "requeue").exit_code == 2
    assert cli(app, "messages", "requeue", str(handed), "--never-handed-over").exit_code == 2


def test_mark_sent_records_the_reconciliation_and_never_sends_again(  # type: ignore[no-untyped-def]
    app: Flask, runtime: Runtime, campaign, transport: MemoryTransport
) -> None:
    (message_id,) = unknown_emails(runtime, transport, "friend1@example.com")
    done = cli(app, "messages", "mark-sent", str(message_id))
    assert done.exit_code == 0, done.output
    assert status(runtime, message_id) == MessageStatus.SENT
    runtime.delivery.sweep()
    runtime.queue.drain()
    assert transport.emails == []
    assert len(history(runtime)) == 1

    again = cli(app, "messages", "mark-sent", str(message_id))
    assert again.exit_code == 1 and "not unknown" in again.output
    assert cli(app, "messages", "requeue", str(message_id), "--force").exit_code == 1
    missing = cli(app, "messages", "mark-sent", str(message_id), "99999")
    assert missing.exit_code == 2 and "99999" in missing.output


# -- a simulated campaign ----------------------------------------------------------------------


def test_simulate_fills_a_campaign_through_the_real_services_and_sends_nothing(
    app: Flask, runtime: Runtime, transport: MemoryTransport
) -> None:
    with app.app_context():  # `flask` pushes it for a top-level command; the test runner does not
        done = cli(app, "simulate", "--campaign", "rehearsal", "--people", "60", "--k", "0.8", "--days", "3")
    assert done.exit_code == 0, done.output
    printed = re.search(r"rehearsal: (\d+) people, \d+ submissions, (\d+) forwards", done.output)
    assert printed is not None, done.output
    people, forwards = int(printed[1]), int(printed[2])
    with runtime.db.reading() as session:
        stored = session.scalar(select(func.count(Forward.id)).join(Campaign).where(Campaign.slug == "rehearsal"))
    assert 0 < people <= 60 and stored == forwards > 0
    runtime.queue.drain()
    assert transport.emails == [] and transport.sms == []


# The experiment runs in memory: one database is enough to show it writes nothing.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_simulate_with_variants_judges_an_experiment_in_memory_and_sizes_the_next(app: Flask, runtime: Runtime) -> None:
    with app.app_context():
        done = cli(
            app,
            *("simulate", "--variant", "a:share=0.5", "--variant", "b:share=0.3", "--chains", "2000"),
            *("--power-runs", "2", "--seed", "3"),
        )
    assert done.exit_code == 0, done.output
    for line in ("variant a: true share 0.50", "variant b: true share 0.30", "K (72 h window)", "cycle time (mean)"):
        assert line in done.output
    assert "Verdict on K: a wins" in done.output
    assert re.search(r"Thompson sampling\): a \d+\.\d%, b \d+\.\d%", done.output)
    assert re.search(
        r"To tell a 10% higher K than a's \(0\.900 → 0\.990\) in 80% of experiments, an experiment "
        r"needs about \d+ visitors per variant",
        done.output,
    ), done.output
    with runtime.db.reading() as session:
        assert session.scalar(select(func.count(Campaign.id))) == 0  # nothing written


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_simulate_with_too_few_chains_says_what_is_missing(app: Flask) -> None:
    with app.app_context():
        done = cli(
            app,
            "simulate",
            "--variant",
            "a:share=0.2",
            "--variant",
            "b:share=0.3",
            "--chains",
            "200",
            "--power-runs",
            "0",
        )
    assert done.exit_code == 0, done.output
    assert (
        "Verdict on K: not enough data yet: at least 300 mature chains per variant; needs mature chains: about"
        in done.output
    )
    assert "Power" not in done.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_simulate_refuses_variants_it_cannot_run_and_options_that_do_not_mix(app: Flask) -> None:
    for args, message in [
        (("--variant", "a:share=0.2"), "at least two --variant"),
        (("--variant", "a:share=0.2", "--variant", "b:speed=2"), "unknown setting 'speed=2'"),
        (("--variant", "a:share=0.2", "--variant", "b:share=0.3", "--k", "0.5"), "--k do not apply"),
        (("--people", "10", "--k", "0.5"), "Missing option '--campaign'"),
    ]:
        with app.app_context():
            refused = cli(app, "simulate", *args)
        assert refused.exit_code == 2 and message in refused.output, refused.output


# -- background processes ---------------------------------------------------------------------------


def test_without_redis_the_worker_and_the_scheduler_say_the_embedded_queue_needs_neither(app: Flask) -> None:
    for command in ("worker", "scheduler"):
        with app.app_context():  # as `flask` gives every command
            refused = cli(app, command)
        assert refused.exit_code == 2
        assert f"REDIS_URL is not set: the embedded queue runs inside the web process and needs no {command}" in (
            refused.output
        )
