"""The opt-out log: append-only in the database, and `flask audit verify` finds any tampering.

Tampering needs the trigger out of the way first (as an owner of the database could do): on
PostgreSQL the test disables it for the statement, on SQLite (a fresh file per test) it drops it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from engine import create_app
from engine.models import OptOutEntry, OptOutLogHead, SuppressionScope, SuppressionSource
from engine.runtime import Runtime
from engine.services import opt_out_log
from engine.services.opt_out_log import entry_digest
from engine.services.suppression import suppress_contact
from engine.transports import Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import runtime_of


@pytest.fixture
def app(database_url: str, settings_for) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    transport = MemoryTransport()
    application = create_app(settings_for(database_url), transports=Transports(email=transport, sms=transport))
    yield application
    runtime_of(application).db.dispose()


@pytest.fixture
def runtime(app: Flask) -> Runtime:
    return runtime_of(app)


def opt_out(runtime: Runtime, n: int) -> None:
    with runtime.db.transaction() as session:
        suppress_contact(
            session,
            f"{n:064x}",
            "email",
            SuppressionScope.GLOBAL,
            SuppressionSource.MANUAL,
            detail={"note": f"request {n} by phone"},
            now=runtime.clock.now(),
        )


def three_entries(runtime: Runtime) -> None:
    for n in (1, 2, 3):
        opt_out(runtime, n)


def audit_verify(app: Flask):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=["audit", "verify"])


def tamper(runtime: Runtime, statement: str, **params: object) -> None:
    """Run an UPDATE or DELETE on the log past its append-only trigger."""
    with runtime.db.transaction() as session:
        if runtime.db.is_sqlite:
            session.execute(text("DROP TRIGGER IF EXISTS opt_out_log_no_update"))
            session.execute(text("DROP TRIGGER IF EXISTS opt_out_log_no_delete"))
            session.execute(text(statement), params)
            return
        session.execute(text("ALTER TABLE opt_out_log DISABLE TRIGGER opt_out_log_append_only"))
        session.execute(text(statement), params)
        # Back on before the commit: the test database is shared by the tests that follow.
        session.execute(text("ALTER TABLE opt_out_log ENABLE TRIGGER opt_out_log_append_only"))


def test_an_untouched_log_is_intact(app: Flask, runtime: Runtime) -> None:
    empty = audit_verify(app)
    assert (empty.exit_code, empty.output.split(",")[0]) == (0, "opt-out log intact: 0 entries")
    three_entries(runtime)
    result = audit_verify(app)
    assert result.exit_code == 0
    assert result.output.startswith("opt-out log intact: 3 entries, head 3 ")


def test_an_edited_entry_is_named(app: Flask, runtime: Runtime) -> None:
    three_entries(runtime)
    tamper(runtime, "UPDATE opt_out_log SET scope = 'campaign' WHERE seq = 2")
    result = audit_verify(app)
    assert result.exit_code == 1
    assert "BROKEN at entry 2: entry 2 was changed after it was written" in result.output


def test_an_edit_with_its_hash_recomputed_breaks_the_next_link(app: Flask, runtime: Runtime) -> None:
    three_entries(runtime)
    with runtime.db.reading() as session:
        entry = session.scalars(select(OptOutEntry).where(OptOutEntry.seq == 2)).one()
    entry.source = "link"
    forged = entry_digest(entry)
    tamper(runtime, "UPDATE opt_out_log SET source = 'link', entry_hash = :forged WHERE seq = 2", forged=forged)
    result = audit_verify(app)
    assert result.exit_code == 1
    assert "BROKEN at entry 3: entry 3 does not follow from entry 2" in result.output


def test_the_last_entry_rewritten_with_its_hash_recomputed_is_named(app: Flask, runtime: Runtime) -> None:
    three_entries(runtime)
    with runtime.db.reading() as session:
        entry = session.scalars(select(OptOutEntry).where(OptOutEntry.seq == 3)).one()
    entry.scope = "campaign"
    forged = entry_digest(entry)
    tamper(runtime, "UPDATE opt_out_log SET scope = 'campaign', entry_hash = :forged WHERE seq = 3", forged=forged)
    result = audit_verify(app)
    assert result.exit_code == 1
    assert "BROKEN at entry 3: entry 3 is not the one the head recorded" in result.output


def test_a_deleted_entry_in_the_middle_is_named(app: Flask, runtime: Runtime) -> None:
    three_entries(runtime)
    tamper(runtime, "DELETE FROM opt_out_log WHERE seq = 2")
    result = audit_verify(app)
    assert result.exit_code == 1
    assert "BROKEN at entry 2: entry 2 is missing (the next one is 3)" in result.output


def test_a_deleted_last_entry_is_named(app: Flask, runtime: Runtime) -> None:
    three_entries(runtime)
    tamper(runtime, "DELETE FROM opt_out_log WHERE seq = 3")
    result = audit_verify(app)
    assert result.exit_code == 1
    assert "BROKEN at entry 3" in result.output
    assert "the log ends at entry 2 but its head says 3" in result.output


@pytest.mark.parametrize(
    "statement",
    ["UPDATE opt_out_log SET source = 'link' WHERE seq = 1", "DELETE FROM opt_out_log WHERE seq = 1"],
    ids=["update", "delete"],
)
def test_the_database_refuses_to_change_or_delete_entries(runtime: Runtime, statement: str) -> None:
    three_entries(runtime)
    with pytest.raises(DBAPIError, match="append-only"), runtime.db.transaction() as session:
        session.execute(text(statement))
    with runtime.db.reading() as session:
        assert [e.source for e in session.scalars(select(OptOutEntry).order_by(OptOutEntry.seq))] == ["manual"] * 3


# PostgreSQL only: SQLite runs one writer at a time, so nothing could interleave there.
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_opt_outs_arriving_at_once_are_chained_one_after_the_other(app: Flask, runtime: Runtime) -> None:
    threads_count, each = 8, 10
    start = threading.Barrier(threads_count)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            start.wait()  # all at once, the very first append (which creates the head) included
            for n in range(each):
                opt_out(runtime, worker * 1000 + n)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []

    total = threads_count * each
    with runtime.db.reading() as session:
        seqs = list(session.scalars(select(OptOutEntry.seq).order_by(OptOutEntry.seq)))
        head = session.get(OptOutLogHead, 1)
    assert seqs == list(range(1, total + 1))
    assert head is not None and head.seq == total
    result = audit_verify(app)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"opt-out log intact: {total} entries, head {total} ")


def test_opt_outs_arriving_while_it_verifies_are_not_taken_for_tampering(
    app: Flask, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    three_entries(runtime)
    walk = opt_out_log._in_order

    def walk_while_an_opt_out_arrives(session, batch):  # type: ignore[no-untyped-def]
        opt_out(runtime, 99)  # committed between the head's read and the walk
        yield from walk(session, batch)

    monkeypatch.setattr(opt_out_log, "_in_order", walk_while_an_opt_out_arrives)
    with runtime.db.reading() as session:
        report = opt_out_log.verify(session)
    assert report.intact, report.problem
    assert report.checked == report.head_seq == 3
    monkeypatch.undo()
    assert audit_verify(app).exit_code == 0  # and the next run sees all four
