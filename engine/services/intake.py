"""Taking in a posted forward form: the checks between the form and ForwardingService.submit.

A form that reads well may still be a bot's (the honeypot filled in, a render stamp too
young, forged or farmed by another session), may come from a client asked to solve a proof
of work first (engine.challenge), or may need its message shown to the sender before it goes
(a policy with preview_required, such as eu-strict). Each of these decides what the sender is
answered, so it is decided here, in one order, and the web handler only parses the form and
renders the outcome this module names.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from engine import metrics
from engine.caps import CapsUnavailable
from engine.challenge import CHALLENGE_REQUIRED, ProofOfWork, Verdict
from engine.contacts import Contact
from engine.metrics import Refusal
from engine.rendering import RenderError
from engine.services.forwarding import (
    FORM_SENT_TWICE,
    ForwardCapped,
    ForwardingService,
    ForwardPreview,
    ForwardReceipt,
    ForwardRejected,
    ForwardSubmission,
    PreviewRequired,
)
from engine.services.lookups import CampaignLanguage, CampaignUnavailable
from engine.tokens import PREVIEW_MAX_AGE_SECONDS, InvalidToken, Purpose, Tokens

log = logging.getLogger(__name__)

# What a preview token says about the proof of work its submission came with.
_SOLVED = "challenge"
_NOT_SOLVED = "-"


class StampProblem(StrEnum):
    """Why a form's render stamp is refused; the value is the reason kept in `rejections`."""

    TOO_FAST = "form sent too fast"  # quicker than a person fills a form in
    EXPIRED = "form expired"  # old, forged, or made for another session


@dataclass(frozen=True)
class PostedForward:
    """A forward form as posted, each field already read for its syntax (engine.web.public.forms)."""

    sender_name: str
    friends: Sequence[Contact]
    sender_contact: Contact | None
    note: str | None
    referrer_token: str | None
    client_ip: str | None
    # The signed render stamp the form carried, and the session it was posted in.
    stamp: str
    visitor: object
    # A proof-of-work solution, present only when the page showed the widget.
    challenge_solution: str | None
    # The signed digest of the submission the sender previewed (eu-strict), if any.
    preview_token: str | None
    # The sender asked to change the form (the preview's "Change" button).
    wants_to_edit: bool
    # The language the form was in (one of the campaign's; the service checks it again).
    locale: str | None = None
    # What signed the stamp: the landing page's form, or the embedded one (engine.services.embeds).
    stamp_purpose: Purpose = Purpose.FORM
    # The campaign's languages and phone regions the form was read with.
    read_with: CampaignLanguage | None = None
    # The signed A/B variant the form was shown in (engine.services.variants), if any.
    variant_token: str | None = None


@dataclass(frozen=True)
class Accepted:
    receipt: ForwardReceipt


@dataclass(frozen=True)
class AnsweredAsSent:
    """Nothing written, and the sender answered as if it had been: a form sent twice (a double
    click, or a replay) gets the answer its first sending got."""


@dataclass(frozen=True)
class StampRefused:
    problem: StampProblem


@dataclass(frozen=True)
class ChallengeAsked:
    """The form again with the proof-of-work widget: none was solved past the threshold
    (CHALLENGE_REQUIRED), or the one sent was not good (a Verdict)."""

    reason: str


@dataclass(frozen=True)
class EditAsked:
    """The form again, as typed, for the sender to change."""


@dataclass(frozen=True)
class PreviewShown:
    """The message as the friends will get it, and the token that lets exactly it be sent."""

    preview: ForwardPreview
    token: str


IntakeOutcome = Accepted | AnsweredAsSent | StampRefused | ChallengeAsked | EditAsked | PreviewShown


class PreviewUnavailable(Exception):
    """The campaign's message could not be rendered for the preview: nothing can be sent."""


class ForwardIntake:
    def __init__(
        self,
        forwarding: ForwardingService,
        tokens: Tokens,
        proof_of_work: ProofOfWork,
        *,
        min_form_seconds: float,
    ) -> None:
        self._forwarding = forwarding
        self._tokens = tokens
        self._proof_of_work = proof_of_work
        self._min_form_seconds = min_form_seconds

    def caught_by_honeypot(self, slug: str, honeypot: str | None, client_ip: str | None) -> bool:
        """True when the field people never see was filled in: a bot, which is answered as a
        person is while nothing is sent. Asked before the form is read, which costs more."""
        if not honeypot:
            return False
        self._forwarding.record_rejection(slug, "honeypot", client_ip)
        metrics.forward_refused(Refusal.HONEYPOT)
        return True

    def new_stamp(self, visitor: str, purpose: Purpose = Purpose.FORM) -> str:
        """A render stamp for a form shown now to this session (or, embedded, this campaign):
        the time to fill it in starts."""
        return self._tokens.sign(purpose, f"{visitor}:{secrets.token_urlsafe(12)}")

    def take(self, slug: str, posted: PostedForward) -> IntakeOutcome:
        """What becomes of a posted form. Raises what ForwardingService.submit and preview raise
        (CampaignUnavailable, ForwardRejected, ForwardCapped for the caps a sender cannot lift
        by solving a challenge, CapsUnavailable), and PreviewUnavailable."""
        try:
            outcome = self._take(slug, posted)
        except Exception as error:
            if (reason := _refusal_for_error(error)) is not None:
                metrics.forward_refused(reason)
            raise
        _count(outcome)
        return outcome

    def _take(self, slug: str, posted: PostedForward) -> IntakeOutcome:
        problem, form_stamp = self._read_stamp(posted.stamp, posted.visitor, posted.stamp_purpose)
        if problem is not None:
            self._forwarding.record_rejection(slug, problem.value, posted.client_ip)
            return StampRefused(problem)
        # Only a client that was shown the widget sends a solution; the common case costs nothing.
        verdict = self._proof_of_work.redeem(posted.challenge_solution) if posted.challenge_solution else None
        if verdict is not None and verdict is not Verdict.SOLVED:
            self._forwarding.record_rejection(slug, f"challenge {verdict}", posted.client_ip)
            return ChallengeAsked(verdict)
        if posted.wants_to_edit:
            return EditAsked()
        submission = _submission(posted, challenge_solved=verdict is Verdict.SOLVED, form_stamp=form_stamp)
        previewed, solved_before = self._previewed(slug, posted.preview_token, submission)
        submission = replace(
            submission, previewed=previewed, challenge_solved=submission.challenge_solved or solved_before
        )
        return self._submit(slug, submission)

    def _submit(self, slug: str, submission: ForwardSubmission) -> IntakeOutcome:
        try:
            return Accepted(self._forwarding.submit(slug, submission))
        except PreviewRequired:
            return self._preview(slug, submission)
        except ForwardCapped as capped:
            if capped.cap == CHALLENGE_REQUIRED:
                return ChallengeAsked(CHALLENGE_REQUIRED)
            if capped.cap == FORM_SENT_TWICE:
                # The first sending did what there was to do, if there was one.
                return AnsweredAsSent()
            raise

    def _preview(self, slug: str, submission: ForwardSubmission) -> PreviewShown:
        try:
            preview = self._forwarding.preview(slug, submission)
        except RenderError as error:
            log.exception("preview of %s failed", slug)
            raise PreviewUnavailable(slug) from error
        return PreviewShown(preview, self._preview_token(slug, submission))

    def _read_stamp(
        self, stamp: str, visitor: object, purpose: Purpose = Purpose.FORM
    ) -> tuple[StampProblem | None, str | None]:
        """The form's render stamp: TOO_FAST for a form sent quicker than a person could,
        EXPIRED for an old or forged stamp or one made for another session (a stamp farmed by
        one client is no use to another); else no problem, and the stamp's random part."""
        try:
            payload, age = self._tokens.verify_with_age(purpose, stamp)
        except InvalidToken:
            return StampProblem.EXPIRED, None
        stamped_visitor, _, nonce = payload.partition(":")
        if not nonce or stamped_visitor != visitor:
            return StampProblem.EXPIRED, None
        if age.total_seconds() < self._min_form_seconds:
            return StampProblem.TOO_FAST, nonce
        return None, nonce

    def _preview_token(self, slug: str, submission: ForwardSubmission) -> str:
        # A challenge solved for the first post is spent; the token says so for the second.
        solved = _SOLVED if submission.challenge_solved else _NOT_SOLVED
        return self._tokens.sign(Purpose.PREVIEW, f"{submission.digest(slug)}:{solved}")

    def _previewed(self, slug: str, token: str | None, submission: ForwardSubmission) -> tuple[bool, bool]:
        """Whether the sender saw the preview of exactly this submission to this campaign (a
        signed digest of it), and whether they had solved a proof-of-work challenge to get
        there: that counts once, like the solution itself, however often the token is posted."""
        if not token:
            return False, False
        try:
            digest, _, solved = self._tokens.verify(Purpose.PREVIEW, token).partition(":")
        except InvalidToken:
            return False, False
        if digest != submission.digest(slug):
            return False, False
        if solved != _SOLVED:
            return True, False
        spent_key = "preview:" + hashlib.sha256(token.encode()).hexdigest()
        return True, self._proof_of_work.spend_once(spent_key, PREVIEW_MAX_AGE_SECONDS)


def _count(outcome: IntakeOutcome) -> None:
    """The outcome in the metrics: accepted, or refused and why (a preview shown, or the form
    given back to change, is neither yet)."""
    match outcome:
        case Accepted():
            metrics.forward_accepted()
        case AnsweredAsSent():
            metrics.forward_refused(Refusal.SENT_TWICE)
        case StampRefused(problem):
            metrics.forward_refused(Refusal.TOO_FAST if problem is StampProblem.TOO_FAST else Refusal.EXPIRED)
        case ChallengeAsked():
            metrics.forward_refused(Refusal.CHALLENGE)


_REFUSALS_BY_ERROR: tuple[tuple[type[Exception], Refusal], ...] = (
    (ForwardRejected, Refusal.REJECTED),
    (ForwardCapped, Refusal.CAPPED),
    (CampaignUnavailable, Refusal.CAMPAIGN_UNAVAILABLE),
    (PreviewUnavailable, Refusal.PREVIEW_UNAVAILABLE),
    (CapsUnavailable, Refusal.CAPS_UNAVAILABLE),
)


def _refusal_for_error(error: Exception) -> Refusal | None:
    return next((reason for kind, reason in _REFUSALS_BY_ERROR if isinstance(error, kind)), None)


def _submission(posted: PostedForward, *, challenge_solved: bool, form_stamp: str | None) -> ForwardSubmission:
    return ForwardSubmission(
        sender_name=posted.sender_name,
        sender_contact=posted.sender_contact,
        friends=posted.friends,
        note=posted.note,
        referrer_token=posted.referrer_token,
        client_ip=posted.client_ip,
        challenge_solved=challenge_solved,
        form_stamp=form_stamp,
        locale=posted.locale,
        read_with=posted.read_with,
        variant_token=posted.variant_token,
    )
