"""A form sent twice (a double click, a reload that posts again) messages each friend once."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy.orm import Session

from engine.models import Campaign
from engine.services.forwarding import ForwardingService
from tests.e2e.live import LiveServer, Visitor
from tests.helpers import forward_form

FRIENDS = ("bob@example.com", "06 12345678")
EXPECTED_RECIPIENTS = ["+31612345678", "bob@example.com"]


def test_the_same_form_sent_twice_messages_each_friend_once(
    database_url: str, serve: Callable[..., LiveServer]
) -> None:
    server = serve(database_url)
    anna = Visitor(server)
    landing = anna.get("/c/demo")
    form = forward_form(landing.text, sender_name="Anna", friends=FRIENDS)

    responses = [anna.post_form(landing, form), anna.post_form(landing, form)]

    # Both clicks look fine to Anna; her friends hear from us once each.
    assert [r.status_code for r in responses] == [303, 303]
    server.runtime.queue.drain()
    assert recipients(server.outbox()) == EXPECTED_RECIPIENTS


def test_a_double_click_whose_requests_overlap_messages_each_friend_once(
    database_url: str,
    serve: Callable[..., LiveServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = serve(database_url)
    hold_after_the_check(monkeypatch)
    anna = Visitor(server)
    landing = anna.get("/c/demo")
    form = forward_form(landing.text, sender_name="Anna", friends=FRIENDS)
    tabs = [anna, anna.second_tab()]

    with ThreadPoolExecutor(max_workers=2) as pool:
        responses = list(pool.map(lambda tab: tab.post_form(landing, form), tabs))

    assert [r.status_code for r in responses] == [303, 303]
    server.runtime.queue.drain()
    assert recipients(server.outbox()) == EXPECTED_RECIPIENTS


def test_one_render_stamp_sent_twice_at_once_to_other_friends_sends_one_forward(
    database_url: str,
    serve: Callable[..., LiveServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A script replaying one stamp with other friends, both requests overlapping: the first has
    # spent the stamp and not yet committed, so the second finds no forward with it. It must
    # wait for the first, not take the stamp for one a failed sending left behind.
    server = serve(database_url)
    hold_before_writing(monkeypatch)
    anna = Visitor(server)
    landing = anna.get("/c/demo")
    forms = [
        forward_form(landing.text, sender_name="Anna", friends=["bob@example.com"]),
        forward_form(landing.text, sender_name="Anna", friends=["carol@example.com"]),
    ]
    tabs = [anna, anna.second_tab()]

    with ThreadPoolExecutor(max_workers=2) as pool:
        responses = list(pool.map(lambda tab, form: tab.post_form(landing, form), tabs, forms))

    assert [r.status_code for r in responses] == [303, 303]
    server.runtime.queue.drain()
    assert len(recipients(server.outbox())) == 1


def hold_before_writing(monkeypatch: pytest.MonkeyPatch, timeout: float = 3.0) -> None:
    """Each submission waits, after its caps and stamp are counted and before writing, until the
    other got there too (or `timeout`): the two overlap unless something serialises them."""
    both_counted = threading.Barrier(2)
    write = ForwardingService._write

    def wait_then_write(self: ForwardingService, *args: Any, **kwargs: Any) -> Any:
        with contextlib.suppress(threading.BrokenBarrierError):
            both_counted.wait(timeout=timeout)
        return write(self, *args, **kwargs)

    monkeypatch.setattr(ForwardingService, "_write", wait_then_write)


def hold_after_the_check(monkeypatch: pytest.MonkeyPatch, timeout: float = 3.0) -> None:
    """Make two submissions overlap for sure: each waits, after checking whom it already invited and
    before writing, until the other has checked too. Without anything serialising them, both see no
    earlier invitation and both write. Where something does (SQLite's write lock, PostgreSQL's lock
    per friend), the second cannot finish its check while the first waits: the first goes on after
    `timeout`, commits, and the second then sees its rows."""
    both_checked = threading.Barrier(2)
    check = ForwardingService._friends_on_record

    def check_then_wait(self: ForwardingService, session: Session, campaign: Campaign, *rest: Any) -> Any:
        invited = check(self, session, campaign, *rest)
        with contextlib.suppress(threading.BrokenBarrierError):
            both_checked.wait(timeout=timeout)
        return invited

    monkeypatch.setattr(ForwardingService, "_friends_on_record", check_then_wait)


def recipients(outbox: Sequence[dict[str, Any]]) -> list[str]:
    return sorted(m["to"] for m in outbox)
