"""The built-in wrappers of a variant, end to end: the console's form takes a quiz (refused beside
its fields when broken, shown back, in the history), and the landing page asks it before the
offer (any answer, or the skip link, shows the same offer and form; a forged answer asks again;
a form shown again skips it); a scratch card hides the offer in a <details>; a plain variant's
page is as it was, and so is the embedded form."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine.models import Campaign, CampaignEvent, CampaignVariant, Forward
from engine.runtime import Runtime
from engine.services.history import CLI
from engine.services.variants import VariantInput, add_variant
from engine.tokens import Purpose
from tests.helpers import csrf_token, forward_form, hidden_field, make_campaign, staff_client, visible_text

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"}
QUIZ = {
    "quiz_question": "Which bean makes our espresso?",
    "quiz_answer_1": "Arabica",
    "quiz_answer_2": "Robusta",
    "quiz_answer_3": "",
    "quiz_answer_4": "Liberica",
    "quiz_correct": "1",
    "quiz_explanation": "All arabica, roasted in Utrecht.",
}
QUESTION = "Which bean makes our espresso?"
OFFER = "Send this offer to a friend"


def _only_variant(runtime: Runtime, wrapper: str, **quiz: Any) -> None:
    given = VariantInput(name=wrapper.title(), weight=1, wrapper=wrapper, offer_title="The variant's offer", **quiz)
    add_variant(runtime.db, "spring", given, CLI)


def _quiz_variant(runtime: Runtime, correct: int | None = 1) -> None:
    _only_variant(
        runtime,
        "quiz",
        quiz_question=QUESTION,
        quiz_answers=("Arabica", "Robusta", "", "Liberica"),
        quiz_correct=correct,
        quiz_explanation="All arabica, roasted in Utrecht.",
    )


def _get(client: FlaskClient, path: str = "/c/spring", **query: str) -> str:
    page = client.get(path, query_string=query, headers=BROWSER)
    assert page.status_code == 200, page.status_code
    return page.text


def _main(html: str) -> str:
    """What the page shows (its <title> left out)."""
    return visible_text(html[html.index("<main") :])


def _offer_part(html: str) -> str:
    """The offer and the form as the page shows them (what differs between pages aside)."""
    text = visible_text(html[html.index('<article class="card offer">') :])
    return re.sub(r"\s+", " ", text)


# -- the console -------------------------------------------------------------------------------


def test_a_quiz_variant_needs_its_quiz_and_each_problem_is_shown_beside_its_field(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    client = staff_client(app, "marketer")
    page = client.get("/console/campaigns/spring/variants").text
    base = {"csrf_token": csrf_token(page), "name": "Quiz", "weight": "1", "wrapper": "quiz"}
    refused = client.post("/console/campaigns/spring/variants", data=base)
    assert refused.status_code == 422
    assert re.search(r'id="quiz_question-error"><li>Ask a question\.</li>', refused.text)
    assert re.search(r'id="quiz_answers-error"><li>Give from 2 to 4 answers\.</li>', refused.text)
    assert '<input aria-describedby="quiz_answers-error" aria-invalid="true" autocomplete="off" id="quiz_answer_1"' in (
        refused.text
    )
    blank_right = client.post(
        "/console/campaigns/spring/variants", data={**base, **QUIZ, "quiz_correct": "3", "quiz_explanation": "x" * 501}
    )
    assert blank_right.status_code == 422
    assert re.search(
        r'id="quiz_correct-error"><li>The right answer must be one of the answers given\.', blank_right.text
    )
    assert re.search(r'id="quiz_explanation-error"><li>At most 500 characters\.', blank_right.text)
    assert 'value="Which bean makes our espresso?"' in blank_right.text  # what was typed stays
    with runtime.db.reading() as session:
        assert session.scalars(select(CampaignVariant)).all() == []
    # A plain variant needs no quiz, and keeps none typed by mistake.
    plain = client.post("/console/campaigns/spring/variants", data={**base, **QUIZ, "wrapper": "plain"})
    assert plain.status_code == 303
    with runtime.db.reading() as session:
        assert session.scalars(select(CampaignVariant.quiz)).one() is None


def test_a_quiz_is_stored_shown_back_and_its_changes_are_in_the_history_by_length(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    client = staff_client(app, "marketer")
    page = client.get("/console/campaigns/spring/variants").text
    base = {"csrf_token": csrf_token(page), "name": "Quiz", "weight": "1", "wrapper": "quiz"}
    assert client.post("/console/campaigns/spring/variants", data={**base, **QUIZ}).status_code == 303
    with runtime.db.reading() as session:
        stored = session.scalars(select(CampaignVariant.quiz)).one()
    assert stored == {
        "question": QUESTION,
        "answers": ["Arabica", "Robusta", "Liberica"],
        "correct": 0,
        "explanation": "All arabica, roasted in Utrecht.",
    }
    form = client.get("/console/campaigns/spring/variants/a").text
    assert 'value="Which bean makes our espresso?"' in form
    assert 'name="quiz_answer_3" type="text" value="Liberica"' in form  # blanks closed up
    assert re.search(r'<option selected value="1">Answer 1</option>', form)
    assert "All arabica, roasted in Utrecht.</textarea>" in form
    changed = {**base, **QUIZ, "quiz_answer_2": "Robusta beans", "quiz_correct": ""}
    assert client.post("/console/campaigns/spring/variants/a", data=changed).status_code == 303
    with runtime.db.reading() as session:
        entries = session.scalars(
            select(CampaignEvent.changes).where(CampaignEvent.action == "variants").order_by(CampaignEvent.id)
        ).all()
    assert entries[0]["variant a: quiz"] == [
        None,
        {"question": 30, "answers": [7, 7, 8], "right answer": 1, "explanation": 32},
    ]
    assert entries[1] == {
        "variant a: quiz": [
            {"question": 30, "answers": [7, 7, 8], "right answer": 1, "explanation": 32},
            {"question": 30, "answers": [7, 13, 8], "right answer": None, "explanation": 32},
        ]
    }
    assert QUESTION not in str(entries)  # lengths, not the brand's copy


# -- the landing page ------------------------------------------------------------------------------


def test_a_quiz_variant_asks_first_and_any_answer_shows_the_same_offer_and_form(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    _quiz_variant(runtime)
    client = app.test_client()
    first = _get(client, lang="en")
    assert "<fieldset" in first and f"<legend>{QUESTION}</legend>" in first
    assert len(re.findall(r'<input type="radio" name="answer"', first)) == 3
    assert re.search(r'<form method="get" action="/c/spring">\s*<input type="hidden" name="lang" value="en">', first)
    assert OFFER not in _main(first) and "The variant's offer" not in _main(first)
    right = _get(client, answer="0", lang="en")
    wrong = _get(client, answer="2", lang="en")
    assert "Right! You answered: Arabica." in visible_text(right)
    assert "Not quite. You answered: Liberica. The right answer is: Arabica." in visible_text(wrong)
    for shown in (right, wrong):
        assert "All arabica, roasted in Utrecht." in visible_text(shown)
        assert f"<legend>{QUESTION}</legend>" not in shown
    assert _offer_part(right) == _offer_part(wrong)
    assert "The variant's offer" in _offer_part(right) and OFFER in _offer_part(right)
    # The skip link keeps the page's query, and shows the same offer without a verdict.
    skip = re.search(r'<a href="([^"]+)">Skip the question</a>', first)
    assert skip is not None and skip.group(1) == "/c/spring?lang=en&amp;skip=1"
    skipped = _get(client, lang="en", skip="1")
    assert _offer_part(skipped) == _offer_part(right)
    assert "You answered" not in visible_text(skipped)


def test_an_opinion_question_thanks_without_a_verdict(app: Flask, runtime: Runtime, campaign: Campaign) -> None:
    _quiz_variant(runtime, correct=None)
    shown = visible_text(_get(app.test_client(), answer="1"))
    assert "Thanks for your answer. You answered: Robusta." in shown
    assert "Right!" not in shown and "Not quite" not in shown


def test_a_forged_answer_asks_the_question_again(app: Flask, runtime: Runtime, campaign: Campaign) -> None:
    _quiz_variant(runtime)
    client = app.test_client()
    for forged in ("3", "-1", "one", "99999999999999999999", ""):
        again = _get(client, answer=forged)
        assert f"<legend>{QUESTION}</legend>" in again, forged
        assert OFFER not in visible_text(again), forged


def test_a_form_shown_again_after_an_error_shows_the_offer_and_form_not_the_question(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    _quiz_variant(runtime)
    client = app.test_client()
    answered = _get(client, answer="1")
    form = forward_form(answered, friends=["not-an-address"], variant=hidden_field(answered, "variant"))
    again = client.post("/c/spring/forward", data=form, headers=BROWSER)
    assert again.status_code == 422
    assert OFFER in visible_text(again.text) and "Nothing was sent yet" in visible_text(again.text)
    assert f"<legend>{QUESTION}</legend>" not in again.text


def test_a_friend_through_a_tracked_link_answers_and_forwards_as_their_friend(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    _quiz_variant(runtime)
    sender = app.test_client()
    page = _get(sender, skip="1")
    form = forward_form(page, friends=["bob@example.com"], variant=hidden_field(page, "variant"))
    assert sender.post("/c/spring/forward", data=form, headers=BROWSER).status_code == 303
    with runtime.db.reading() as session:
        first = session.scalars(select(Forward)).one()
        token = runtime.tokens.sign(Purpose.FORWARD, first.public_id)
    friend = app.test_client()
    assert friend.get(f"/f/{token}", headers=BROWSER).status_code == 303
    answered = _get(friend, answer="0")
    assert "Anna sent you this offer." in visible_text(answered)
    form = forward_form(
        answered, sender_name="Bob", friends=["cleo@example.com"], variant=hidden_field(answered, "variant")
    )
    assert form["ref"]  # the tracked link's token, carried by its cookie through the answer
    assert friend.post("/c/spring/forward", data=form, headers=BROWSER).status_code == 303
    with runtime.db.reading() as session:
        second = session.scalars(select(Forward).order_by(Forward.id.desc())).first()
        assert second is not None and second.parent_id == first.id


def test_answering_is_not_another_view_of_the_page(app: Flask, runtime: Runtime, campaign: Campaign) -> None:
    from engine.services.analytics.variants import variant_counts

    _quiz_variant(runtime)
    client = app.test_client()
    _get(client)
    _get(client, answer="1")
    _get(client, skip="1")
    (counts,) = variant_counts(runtime.db, campaign.id, visits=runtime.variant_visits)
    assert (counts.visitors, counts.views) == (1, 1)


def test_a_scratch_card_hides_the_offer_in_a_details_and_a_form_shown_again_has_it_open(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    _only_variant(runtime, "scratch")
    client = app.test_client()
    page = _get(client)
    card = re.search(r'<details class="scratch-card">\s*<summary>(.*?)</summary>(.*)</details>', page, re.S)
    assert card is not None
    assert "Scratch here to reveal your offer" in visible_text(card.group(1))
    assert "The variant's offer" in visible_text(card.group(2)) and 'id="forward"' in card.group(2)
    form = forward_form(page, friends=["not-an-address"], variant=hidden_field(page, "variant"))
    again = client.post("/c/spring/forward", data=form, headers=BROWSER)
    assert again.status_code == 422
    assert '<details class="scratch-card" open>' in again.text


def test_a_plain_variant_and_a_campaign_without_variants_show_the_offer_at_once(
    app: Flask, runtime: Runtime, campaign: Campaign
) -> None:
    without = _get(app.test_client())
    _only_variant(runtime, "plain")
    plain = _get(app.test_client(), answer="1")
    for page in (without, plain):
        assert OFFER in visible_text(page)
        assert "<details" not in page and 'name="answer"' not in page and "Skip the question" not in page


def test_a_campaigns_own_landing_template_prints_the_quiz(app: Flask, runtime: Runtime, campaign: Campaign) -> None:
    from engine.services.templates import upload_templates

    landing = (
        "<h1>{{ offer_title }}</h1>"
        "{% if quiz.asked and quiz.revealed %}<p>{{ wrapper }}: {{ quiz.question }} "
        "{% if quiz.right %}You knew it: {{ quiz.answered }}{% else %}({{ quiz.answer }}){% endif %}</p>{% endif %}"
    )
    report = upload_templates(runtime.db, runtime.renderer, "spring", {"landing.html": landing.encode()})
    assert report.accepted, report
    _quiz_variant(runtime)
    client = app.test_client()
    assert f"quiz: {QUESTION} You knew it: Arabica" in visible_text(_get(client, answer="0"))
    assert f"quiz: {QUESTION} (None)" in visible_text(_get(client, skip="1"))


def test_the_embedded_form_of_a_quiz_variant_is_the_form_at_once(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "spring", embed_origins=["https://shop.example"])
    _quiz_variant(runtime)
    frame = app.test_client(use_cookies=False)
    page = frame.get("/c/spring/embed", query_string={"origin": "https://shop.example"}, headers=BROWSER)
    assert page.status_code == 200
    assert OFFER in visible_text(page.text) and 'name="answer"' not in page.text


def test_an_answered_quiz_stays_answered_in_the_other_language(app: Flask, runtime: Runtime) -> None:
    make_campaign(runtime.db, "spring", locales=["en", "nl"])
    _quiz_variant(runtime)
    client = app.test_client()
    answered = _get(client, answer="2", lang="en")
    (dutch,) = re.findall(r'href="(/c/spring\?[^"]*lang=nl[^"]*)"', answered)
    query = dict(parse_qsl(urlsplit(dutch.replace("&amp;", "&")).query))
    assert query == {"answer": "2", "lang": "nl"}
    in_dutch = _get(client, **query)
    assert f"<legend>{QUESTION}</legend>" not in in_dutch  # not asked again
    assert "Liberica" in visible_text(in_dutch)  # the answer given, in the other language's words
