"""The built-in wrappers of an A/B variant: steps the landing page shows before the offer.

A `quiz` variant asks one question before it shows the offer and the send-to-friend form; a
`scratch` variant hides them behind a card the visitor opens (pages/landing.html). Neither is a
gate: any answer, and the "Skip the question" link, show the same offer, and a form shown again
(after an error) is shown at once. The quiz is part of the variant (CampaignVariant.quiz), so the
landing page reads it from the campaign's snapshot; what the visitor answered travels in the
page's address (`?answer=`), never stored.

The landing templates, the built-in one and a campaign's own, print the step from `quiz`
(a QuizStep) and `wrapper` (the variant's wrapper): docs/experiments.md, Wrappers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from flask_babel import gettext as _

log = logging.getLogger(__name__)

MIN_ANSWERS = 2
MAX_ANSWERS = 4
MAX_QUESTION = 200
MAX_ANSWER = 100
MAX_EXPLANATION = 500

# The query parameters of the landing page's step: the visitor's answer (its position, from 0)
# and the "Skip the question" link.
ANSWER_PARAMETER = "answer"
SKIP_PARAMETER = "skip"
STEP_PARAMETERS = frozenset({ANSWER_PARAMETER, SKIP_PARAMETER})


class QuizRefused(ValueError):
    """The quiz breaks a rule; `errors` maps its fields (question, answers, correct,
    explanation) to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(m for messages in errors.values() for m in messages))
        self.errors = errors


@dataclass(frozen=True)
class Quiz:
    """A question with 2 to 4 answers, which of them is right (None: an opinion question, no
    answer is wrong), and what to say once answered. Valid once built: the constructor refuses
    what breaks a rule (QuizRefused), with every field's reasons at once."""

    question: str
    answers: tuple[str, ...]
    correct: int | None = None
    explanation: str = ""

    def __post_init__(self) -> None:
        errors: dict[str, list[str]] = {}
        if not self.question.strip():
            errors.setdefault("question", []).append(_("Ask a question."))
        elif len(self.question) > MAX_QUESTION:
            errors.setdefault("question", []).append(_("At most %(num)s characters.", num=MAX_QUESTION))
        if not MIN_ANSWERS <= len(self.answers) <= MAX_ANSWERS:
            errors.setdefault("answers", []).append(
                _("Give from %(min)s to %(max)s answers.", min=MIN_ANSWERS, max=MAX_ANSWERS)
            )
        for position, answer in enumerate(self.answers, start=1):
            if not answer.strip():
                errors.setdefault("answers", []).append(_("Answer %(num)s is empty.", num=position))
            elif len(answer) > MAX_ANSWER:
                errors.setdefault("answers", []).append(
                    _("Answer %(num)s: at most %(max)s characters.", num=position, max=MAX_ANSWER)
                )
        folded = [a.strip().casefold() for a in self.answers]
        if len(set(folded)) < len(folded):
            errors.setdefault("answers", []).append(_("Two answers are the same: give each answer once."))
        if self.correct is not None and not 0 <= self.correct < len(self.answers):
            errors.setdefault("correct", []).append(_("The right answer must be one of the answers given."))
        if len(self.explanation) > MAX_EXPLANATION:
            errors.setdefault("explanation", []).append(_("At most %(num)s characters.", num=MAX_EXPLANATION))
        if errors:
            raise QuizRefused(errors)

    @classmethod
    def typed(cls, question: str, answers: Sequence[str], correct: int | None, explanation: str) -> Quiz:
        """The quiz as a form gives it: an answer per input, blank inputs left out, and the
        right answer as the position of its input (from 1; None: no right answer). Raises
        QuizRefused (a right answer whose input is blank is refused, not moved)."""
        kept = [(position, answer.strip()) for position, answer in enumerate(answers, start=1) if answer.strip()]
        index: int | None = None
        if correct is not None:
            index = next((i for i, (position, _answer) in enumerate(kept) if position == correct), -1)
        return cls(question.strip(), tuple(a for _position, a in kept), index, explanation.strip())

    @classmethod
    def stored(cls, data: Mapping[str, Any] | None) -> Quiz | None:
        """The quiz a variant's row holds (its `quiz` column), or None. A stored quiz that no
        longer passes the rules is left out (logged): the page then shows the offer at once."""
        if not data:
            return None
        try:
            correct = data.get("correct")
            return cls(
                str(data["question"]),
                tuple(str(a) for a in data["answers"]),
                correct if isinstance(correct, int) else None,
                str(data.get("explanation") or ""),
            )
        except (KeyError, TypeError, QuizRefused) as error:
            log.warning("a stored quiz is left out: %s", error)
            return None

    def to_stored(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answers": list(self.answers),
            "correct": self.correct,
            "explanation": self.explanation,
        }

    def step(self, reply: StepReply) -> QuizStep:
        """What the landing page shows of this quiz to a visitor whose request says `reply`: the
        question, or (answered, skipped or past it) whether they were right and the offer. An
        answer that is no answer of this quiz (a forged address) asks the question again."""
        base = QuizStep(asked=True, question=self.question, answers=self.answers, explanation=self.explanation)
        answer = reply.answer
        if answer is not None and 0 <= answer < len(self.answers):
            right = None if self.correct is None else answer == self.correct
            right_answer = self.answers[self.correct] if self.correct is not None else ""
            return replace(base, answer=answer, revealed=True, right=right, right_answer=right_answer)
        if reply.revealed:
            return replace(base, revealed=True)
        return base


@dataclass(frozen=True)
class StepReply:
    """What a landing page request says of its step: the answer chosen (its position, from 0;
    None: none, or none that is a number), or `revealed`: the step is behind the visitor (they
    skipped it, or the page shows their form again)."""

    answer: int | None = None
    revealed: bool = False


PAST_THE_STEP = StepReply(revealed=True)


@dataclass(frozen=True)
class QuizStep:
    """The quiz as a landing template prints it (`quiz`). `asked`: the page has a quiz (a quiz
    variant); without one, `revealed` is true and the rest empty. `answer` is the position of the
    visitor's answer (from 0; None before answering, or when they skipped), `right` whether it is
    the right one (None: not answered, or no answer is right) and `right_answer` the right
    answer's words when the quiz has one and the visitor answered."""

    asked: bool = False
    question: str = ""
    answers: tuple[str, ...] = field(default=())
    explanation: str = ""
    answer: int | None = None
    revealed: bool = False
    right: bool | None = None
    right_answer: str = ""

    @property
    def answered(self) -> str:
        """The words of the visitor's answer ("" before answering)."""
        return self.answers[self.answer] if self.answer is not None else ""


# A page without a quiz: the offer is shown at once.
NO_QUIZ = QuizStep(revealed=True)


def quiz_step(quiz: Quiz | None, reply: StepReply) -> QuizStep:
    """The step a landing page shows: its variant's quiz (only a quiz variant has one), else
    NO_QUIZ."""
    return NO_QUIZ if quiz is None else quiz.step(reply)


def step_reply(arguments: Mapping[str, str]) -> StepReply:
    """The step's reply in a landing page's query (`?answer=1`, `?skip=1`). An answer that is
    not a whole number is no answer: the question is asked again."""
    raw = arguments.get(ANSWER_PARAMETER, "").strip()
    answer = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 3 else None
    return StepReply(answer=answer, revealed=SKIP_PARAMETER in arguments)
