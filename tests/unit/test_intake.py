"""What becomes of a posted forward form before the forwarding service takes it
(engine.services.intake): the honeypot, the render stamp, the Change button, a form sent twice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import pytest

from engine.challenge import ProofOfWork
from engine.contacts import parse_contact
from engine.services.forwarding import FORM_SENT_TWICE, ForwardCapped, ForwardingService, ForwardReceipt
from engine.services.intake import (
    Accepted,
    AnsweredAsSent,
    EditAsked,
    ForwardIntake,
    PostedForward,
    StampProblem,
    StampRefused,
)
from engine.tokens import tokens_for

TOKENS = tokens_for(["a-secret-key-for-the-intake-tests"], 180, 400)


class Forwarding:
    """The forwarding service as the intake sees it: what was refused, and what was submitted."""

    def __init__(self, refuse_with: Exception | None = None) -> None:
        self.rejections: list[str] = []
        self.submitted: list[Any] = []
        self._refuse_with = refuse_with

    def record_rejection(self, slug: str, reason: str, client_ip: str | None) -> None:
        self.rejections.append(reason)

    def submit(self, slug: str, submission: Any) -> ForwardReceipt:
        if self._refuse_with is not None:
            raise self._refuse_with
        self.submitted.append(submission)
        return ForwardReceipt(len(submission.friends), (1,), (1,), enqueued=True)


def intake(forwarding: Forwarding, *, min_form_seconds: float = 0) -> ForwardIntake:
    # No test here sends a proof-of-work solution, so none is ever redeemed.
    unused = cast(ProofOfWork, None)
    return ForwardIntake(cast(ForwardingService, forwarding), TOKENS, unused, min_form_seconds=min_form_seconds)


def posted(stamp: str, *, visitor: str = "visitor-one", wants_to_edit: bool = False) -> PostedForward:
    return PostedForward(
        sender_name="Anna",
        friends=[parse_contact("bob@example.com", "NL")],
        sender_contact=None,
        note=None,
        referrer_token=None,
        client_ip="192.0.2.1",
        stamp=stamp,
        visitor=visitor,
        challenge_solution=None,
        preview_token=None,
        wants_to_edit=wants_to_edit,
    )


def test_a_filled_in_honeypot_is_a_bot_kept_on_record() -> None:
    forwarding = Forwarding()
    assert intake(forwarding).caught_by_honeypot("spring", "http://spam.example", "192.0.2.1")
    assert not intake(forwarding).caught_by_honeypot("spring", "", "192.0.2.1")
    assert forwarding.rejections == ["honeypot"]


def test_a_form_with_its_own_stamp_is_submitted_and_each_form_has_its_own_stamp() -> None:
    forwarding = Forwarding()
    for _ in range(2):
        outcome = intake(forwarding).take("spring", posted(intake(forwarding).new_stamp("visitor-one")))
        assert isinstance(outcome, Accepted) and outcome.receipt.friend_count == 1
    first, second = forwarding.submitted
    # The stamp's random part goes with the forward: a stamp sends one forward (FORM_SENT_TWICE).
    assert first.form_stamp and second.form_stamp and first.form_stamp != second.form_stamp
    assert forwarding.rejections == []


def test_a_stamp_farmed_in_another_session_or_forged_is_refused_as_expired() -> None:
    forwarding = Forwarding()
    theirs = intake(forwarding).new_stamp("visitor-two")
    assert intake(forwarding).take("spring", posted(theirs)) == StampRefused(StampProblem.EXPIRED)
    assert intake(forwarding).take("spring", posted("not-a-stamp")) == StampRefused(StampProblem.EXPIRED)
    assert forwarding.rejections == ["form expired", "form expired"]
    assert forwarding.submitted == []


def test_a_form_sent_quicker_than_a_person_fills_it_in_is_refused() -> None:
    forwarding = Forwarding()
    stamp = intake(forwarding).new_stamp("visitor-one")
    outcome = intake(forwarding, min_form_seconds=timedelta(minutes=1).total_seconds()).take("spring", posted(stamp))
    assert outcome == StampRefused(StampProblem.TOO_FAST)
    assert forwarding.rejections == ["form sent too fast"] and forwarding.submitted == []


def test_the_change_button_sends_nothing() -> None:
    forwarding = Forwarding()
    stamp = intake(forwarding).new_stamp("visitor-one")
    assert intake(forwarding).take("spring", posted(stamp, wants_to_edit=True)) == EditAsked()
    assert forwarding.submitted == []


def test_a_form_sent_twice_is_answered_as_sent_and_other_caps_are_left_to_the_caller() -> None:
    stamp = intake(Forwarding()).new_stamp("visitor-one")
    twice = Forwarding(refuse_with=ForwardCapped(FORM_SENT_TWICE, None))
    assert intake(twice).take("spring", posted(stamp)) == AnsweredAsSent()
    capped = Forwarding(refuse_with=ForwardCapped("campaign messages per day", timedelta(hours=3)))
    with pytest.raises(ForwardCapped):
        intake(capped).take("spring", posted(stamp))
