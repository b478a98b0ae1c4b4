"""The built-in wrappers' rules: a quiz is valid once built (2 to 4 answers, a right answer among
them or none, words within their limits), and what a visitor's answer shows."""

from __future__ import annotations

import pytest

from engine.services.wrappers import (
    NO_QUIZ,
    PAST_THE_STEP,
    Quiz,
    QuizRefused,
    StepReply,
    quiz_step,
    step_reply,
)

BEANS = Quiz("Which bean makes our espresso?", ("Arabica", "Robusta", "Liberica"), 0, "All arabica, roasted here.")
OPINION = Quiz("Which do you like best?", ("Mornings", "Evenings"))


def _refusal(**given: object) -> dict[str, list[str]]:
    fields: dict[str, object] = {"question": "Which?", "answers": ("Yes", "No"), "correct": None, "explanation": ""}
    fields.update(given)
    with pytest.raises(QuizRefused) as refused:
        Quiz(**fields)  # type: ignore[arg-type]
    return refused.value.errors


def test_a_quiz_with_a_question_and_two_to_four_answers_is_valid() -> None:
    assert Quiz("Which?", ("Yes", "No")).correct is None
    assert Quiz("Which?", ("a", "b", "c", "d"), 3).answers[3] == "d"


@pytest.mark.parametrize("answers", [(), ("Only one",), ("a", "b", "c", "d", "e")])
def test_fewer_than_two_or_more_than_four_answers_are_refused(answers: tuple[str, ...]) -> None:
    assert _refusal(answers=answers) == {"answers": ["Give from 2 to 4 answers."]}


def test_each_field_says_what_is_wrong_with_it_at_once() -> None:
    errors = _refusal(question="  ", answers=("Yes", "yes ", "x" * 101), correct=3, explanation="e" * 501)
    assert errors == {
        "question": ["Ask a question."],
        "answers": ["Answer 3: at most 100 characters.", "Two answers are the same: give each answer once."],
        "correct": ["The right answer must be one of the answers given."],
        "explanation": ["At most 500 characters."],
    }
    assert _refusal(question="q" * 201) == {"question": ["At most 200 characters."]}
    assert _refusal(answers=("Yes", " ")) == {"answers": ["Answer 2 is empty."]}
    assert _refusal(correct=-1) == {"correct": ["The right answer must be one of the answers given."]}


def test_a_quiz_as_typed_leaves_blank_inputs_out_and_keeps_the_right_answer_on_its_words() -> None:
    quiz = Quiz.typed(" Which? ", ["Yes", "", " Maybe ", "No"], 3, "  ")
    assert quiz == Quiz("Which?", ("Yes", "Maybe", "No"), 1, "")
    with pytest.raises(QuizRefused) as refused:
        Quiz.typed("Which?", ["Yes", "", "No", ""], 2, "")  # the right answer's input is blank
    assert refused.value.errors == {"correct": ["The right answer must be one of the answers given."]}


def test_a_stored_quiz_reads_back_and_a_broken_one_is_left_out() -> None:
    assert Quiz.stored(BEANS.to_stored()) == BEANS
    assert Quiz.stored(None) is None
    assert Quiz.stored({"question": "Which?", "answers": ["only one"], "correct": None}) is None
    assert Quiz.stored({"answers": ["a", "b"]}) is None


def test_any_answer_reveals_the_offer_and_says_whether_it_was_right() -> None:
    right = BEANS.step(StepReply(answer=0))
    wrong = BEANS.step(StepReply(answer=2))
    assert (right.revealed, right.right, right.answered) == (True, True, "Arabica")
    assert (wrong.revealed, wrong.right, wrong.answered, wrong.right_answer) == (True, False, "Liberica", "Arabica")
    opinion = OPINION.step(StepReply(answer=1))
    assert (opinion.revealed, opinion.right, opinion.right_answer) == (True, None, "")


def test_the_question_is_asked_first_and_again_for_an_answer_that_is_none_of_its_own() -> None:
    for reply in (StepReply(), StepReply(answer=3), step_reply({"answer": "-1"}), step_reply({"answer": "one"})):
        step = BEANS.step(reply)
        assert step.asked and not step.revealed and step.answer is None, reply


def test_skipping_or_a_form_shown_again_reveals_the_offer_without_an_answer() -> None:
    for reply in (step_reply({"skip": "1"}), PAST_THE_STEP):
        step = BEANS.step(reply)
        assert (step.revealed, step.answer, step.right) == (True, None, None)


def test_a_page_without_a_quiz_shows_the_offer_at_once() -> None:
    assert quiz_step(None, StepReply()) is NO_QUIZ
    assert NO_QUIZ.revealed and not NO_QUIZ.asked
    assert step_reply({"answer": " 2 "}) == StepReply(answer=2)
    assert step_reply({"answer": "²"}) == StepReply()  # a digit to str.isdigit, not a number
