"""The console's Variants page: a campaign's A/B variants (engine.services.variants).

Marketers and admins list, add, edit and stop variants, and choose how a referred friend gets
one; each change is in the campaign's history. Weights are shown as each variant's share of new
visitors. Nothing here needs JavaScript.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from flask import Blueprint, Response, flash, get_flashed_messages, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse
from wtforms import BooleanField, IntegerField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired

from engine.models import Role
from engine.runtime import current_runtime
from engine.services.analytics.variants import variant_counts
from engine.services.experiments import ExperimentRefused, ExperimentVerdict, experiment_verdict, set_experiment
from engine.services.variants import (
    MAX_WEIGHT,
    Inheritance,
    Variant,
    VariantInput,
    VariantNotFound,
    VariantRefused,
    Wrapper,
    add_variant,
    edit_variant,
    set_inheritance,
    stop_variant,
    variant_settings,
)
from engine.services.wrappers import MAX_ANSWER, MAX_ANSWERS, MAX_EXPLANATION, MAX_QUESTION
from engine.verdict import Interval, Metric
from engine.web.console.auth import current_member, staff_actor, staff_required
from engine.web.errors import error_response, fresh_json

log = logging.getLogger(__name__)

bp = Blueprint("variants_console", __name__)

_DONE_CATEGORY = "variants-done"

WRAPPER_LABELS = {
    Wrapper.PLAIN: lazy_gettext("Plain"),
    Wrapper.STORY: lazy_gettext("Story"),
    Wrapper.VIDEO: lazy_gettext("Video"),
    Wrapper.QUIZ: lazy_gettext("Quiz"),
    Wrapper.CONTEST: lazy_gettext("Contest"),
    Wrapper.COUPON: lazy_gettext("Coupon"),
    Wrapper.SCRATCH: lazy_gettext("Scratch card"),
}
# The inputs of a quiz's answers (a quiz has 2 to 4: engine.services.wrappers).
QUIZ_ANSWER_INPUTS = tuple(f"quiz_answer_{position}" for position in range(1, MAX_ANSWERS + 1))
INHERITANCE_LABELS = {
    Inheritance.INHERIT: lazy_gettext("Inherit: a friend gets the variant of the person who sent it to them"),
    Inheritance.FRESH: lazy_gettext("Fresh: a friend gets a variant drawn for them"),
}

METRIC_LABELS = {
    Metric.K: lazy_gettext("K: new senders per sender (on mature senders)"),
    Metric.SHARE_RATE: lazy_gettext("Share rate: visitors who forward"),
    Metric.INVITES_PER_SENDER: lazy_gettext("Invites per sender"),
    Metric.CLICK_THROUGH: lazy_gettext("Click-through: invited friends who follow the link"),
    Metric.CONVERSION: lazy_gettext("Conversion: friends who follow the link and redeem"),
    Metric.CYCLE_TIME: lazy_gettext("Cycle time: from a friend's click to their own forward (shorter is better)"),
}

# The verdict table's columns, in the order a visitor goes through them (K, the headline, after).
_TABLE_METRICS = (
    Metric.SHARE_RATE,
    Metric.INVITES_PER_SENDER,
    Metric.CLICK_THROUGH,
    Metric.CONVERSION,
    Metric.K,
    Metric.CYCLE_TIME,
)


class VariantForm(FlaskForm):
    name = StringField(lazy_gettext("Name"), validators=[InputRequired(lazy_gettext("Give the variant a name."))])
    weight = IntegerField(
        lazy_gettext("Weight"),
        default=1,
        validators=[InputRequired(lazy_gettext("A weight is a whole number from 1 to %(max)s.", max=MAX_WEIGHT))],
    )
    wrapper = SelectField(
        lazy_gettext("Wrapper"),
        choices=[SelectChoice(w.value, label) for w, label in WRAPPER_LABELS.items()],
        default=Wrapper.PLAIN.value,
    )
    offer_title = StringField(lazy_gettext("Offer title (optional)"))
    offer_description = TextAreaField(lazy_gettext("Offer description (optional)"))
    share_text = TextAreaField(lazy_gettext("Share text (optional)"))
    gives_coupon = BooleanField(lazy_gettext("Friends of this variant get the campaign's coupon"), default=True)
    # The quiz a Quiz variant asks (left out for every other wrapper).
    quiz_question = StringField(lazy_gettext("Question"), render_kw={"maxlength": MAX_QUESTION})
    quiz_answer_1 = StringField(lazy_gettext("Answer %(num)s", num=1), render_kw={"maxlength": MAX_ANSWER})
    quiz_answer_2 = StringField(lazy_gettext("Answer %(num)s", num=2), render_kw={"maxlength": MAX_ANSWER})
    quiz_answer_3 = StringField(lazy_gettext("Answer %(num)s (optional)", num=3), render_kw={"maxlength": MAX_ANSWER})
    quiz_answer_4 = StringField(lazy_gettext("Answer %(num)s (optional)", num=4), render_kw={"maxlength": MAX_ANSWER})
    quiz_correct = SelectField(
        lazy_gettext("Right answer"),
        choices=[SelectChoice("", lazy_gettext("None: any answer is fine (an opinion question)"))]
        + [SelectChoice(str(n), lazy_gettext("Answer %(num)s", num=n)) for n in range(1, MAX_ANSWERS + 1)],
        default="",
    )
    quiz_explanation = TextAreaField(
        lazy_gettext("Explanation (optional)"), render_kw={"maxlength": MAX_EXPLANATION, "rows": 2}
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # Refusals of the answers as a whole, shown beside their group.
        self.quiz_answers_errors: list[str] = []

    def given(self) -> VariantInput:
        return VariantInput(
            name=self.name.data or "",
            weight=self.weight.data or 0,
            wrapper=self.wrapper.data or "",
            offer_title=self.offer_title.data or "",
            offer_description=self.offer_description.data or "",
            share_text=self.share_text.data or "",
            gives_coupon=bool(self.gives_coupon.data),
            quiz_question=self.quiz_question.data or "",
            quiz_answers=tuple(getattr(self, name).data or "" for name in QUIZ_ANSWER_INPUTS),
            quiz_correct=int(self.quiz_correct.data) if (self.quiz_correct.data or "").isdigit() else None,
            quiz_explanation=self.quiz_explanation.data or "",
        )

    def show_refusal(self, refused: VariantRefused) -> None:
        for name, messages in refused.errors.items():
            field = getattr(self, name, None)
            if name == "quiz_answers":
                self.quiz_answers_errors += messages
            elif field is not None:
                field.errors = list(field.errors) + messages


class InheritanceForm(FlaskForm):
    inheritance = RadioField(
        lazy_gettext("A friend who arrives through a link"),
        choices=[SelectChoice(mode.value, label) for mode, label in INHERITANCE_LABELS.items()],
        validators=[InputRequired(lazy_gettext("Choose how a referred friend gets a variant."))],
    )


class StopForm(FlaskForm):
    pass


class ExperimentForm(FlaskForm):
    metric = SelectField(
        lazy_gettext("Compare the variants on"),
        choices=[SelectChoice(m.value, label) for m, label in METRIC_LABELS.items()],
        default=Metric.K.value,
    )
    autopilot = BooleanField(lazy_gettext("Autopilot: shift new visitors towards the likely best variant, once a day"))


@bp.route("/console/campaigns/<slug>/variants", methods=["GET", "POST"])
@staff_required(Role.MARKETER)
def variants(slug: str) -> BaseResponse:
    """The list, and the form that adds a variant."""
    form = VariantForm()
    if not form.validate_on_submit():
        return _page(slug, form, status=422 if request.method == "POST" else 200)
    try:
        key = add_variant(current_runtime().db, slug, form.given(), staff_actor())
    except VariantRefused as refused:
        form.show_refusal(refused)
        return _page(slug, form, status=422)
    log.info("campaign %s: variant %s added by %s", slug, key, staff_actor().name)
    flash(_("Variant %(key)s added.", key=key), _DONE_CATEGORY)
    return redirect(url_for("variants_console.variants", slug=slug), code=303)


@bp.route("/console/campaigns/<slug>/variants/<key>", methods=["GET", "POST"])
@staff_required(Role.MARKETER)
def edit(slug: str, key: str) -> BaseResponse:
    runtime = current_runtime()
    settings = variant_settings(runtime.db, slug)
    row = settings.row(key)
    if row is None:
        return error_response(404, _("This campaign has no such variant."))
    form = VariantForm(obj=row.variant, **_quiz_fields(row.variant))
    if form.validate_on_submit():
        try:
            edit_variant(runtime.db, slug, key, form.given(), staff_actor())
        except VariantRefused as refused:
            form.show_refusal(refused)
        else:
            log.info("campaign %s: variant %s changed by %s", slug, key, staff_actor().name)
            flash(_("Variant %(key)s saved.", key=key), _DONE_CATEGORY)
            return redirect(url_for("variants_console.variants", slug=slug), code=303)
    status = 422 if request.method == "POST" else 200
    html = render_template("pages/console/variant.html", member=current_member(), campaign=settings, row=row, form=form)
    return Response(html, status=status)


@bp.post("/console/campaigns/<slug>/variants/<key>/stop")
@staff_required(Role.MARKETER)
def stop(slug: str, key: str) -> BaseResponse:
    if not StopForm().validate_on_submit():
        return _page(slug, VariantForm(formdata=None), status=422)
    try:
        stop_variant(current_runtime().db, slug, key, staff_actor())
    except VariantNotFound:
        return error_response(404, _("This campaign has no such variant."))
    except VariantRefused as refused:
        return _page(slug, VariantForm(formdata=None), refusals=refused.errors.get("stop", []), status=422)
    log.info("campaign %s: variant %s stopped by %s", slug, key, staff_actor().name)
    flash(_("Variant %(key)s stopped: it takes no new visitors.", key=key), _DONE_CATEGORY)
    return redirect(url_for("variants_console.variants", slug=slug), code=303)


@bp.post("/console/campaigns/<slug>/variants/inheritance")
@staff_required(Role.MARKETER)
def inheritance(slug: str) -> BaseResponse:
    form = InheritanceForm()
    if not form.validate_on_submit():
        return _page(slug, VariantForm(formdata=None), inheritance_form=form, status=422)
    set_inheritance(current_runtime().db, slug, form.inheritance.data or "", staff_actor())
    flash(_("How a referred friend gets a variant is saved."), _DONE_CATEGORY)
    return redirect(url_for("variants_console.variants", slug=slug), code=303)


@bp.post("/console/campaigns/<slug>/variants/experiment")
@staff_required(Role.MARKETER)
def experiment(slug: str) -> BaseResponse:
    form = ExperimentForm()
    if not form.validate_on_submit():
        return _page(slug, VariantForm(formdata=None), experiment_form=form, status=422)
    try:
        set_experiment(current_runtime().db, slug, form.metric.data or "", bool(form.autopilot.data), staff_actor())
    except ExperimentRefused as refused:
        form.metric.errors = list(form.metric.errors) + refused.errors.get("metric", [])
        return _page(slug, VariantForm(formdata=None), experiment_form=form, status=422)
    flash(_("The experiment's settings are saved."), _DONE_CATEGORY)
    return redirect(url_for("variants_console.variants", slug=slug) + "#experiment", code=303)


@bp.get("/api/v1/campaigns/<slug>/variants", endpoint="api_counts")
@staff_required(Role.MARKETER)
def api_counts(slug: str) -> BaseResponse:
    """Each variant's figures so far (docs/analytics.md: Variants), as JSON."""
    runtime = current_runtime()
    settings = variant_settings(runtime.db, slug)
    counts = variant_counts(runtime.db, settings.campaign_id, visits=runtime.variant_visits)
    found = experiment_verdict(
        runtime.db, slug, runtime.clock.now(), visits=runtime.variant_visits, cache=runtime.verdicts
    )
    return fresh_json(
        {
            "campaign": settings.slug,
            "inheritance": settings.inheritance,
            "variants": [asdict(c) for c in counts],
            "experiment": _experiment_json(found) if found is not None else None,
        }
    )


def _experiment_json(found: ExperimentVerdict) -> dict[str, object]:
    verdict = found.verdict
    comparison = verdict.comparison

    def interval(value: Interval | None) -> dict[str, float] | None:
        return None if value is None else {"estimate": value.estimate, "low": value.low, "high": value.high}

    return {
        "metric": found.metric.value,
        "outcome": verdict.outcome.value,
        "winner": verdict.winner,
        "window_days": found.window_days,
        "credibility": verdict.rule.credibility,
        "min_mature_chains": verdict.rule.min_mature_chains,
        "threshold": comparison.threshold if comparison else None,
        "autopilot": found.autopilot,
        "variants": [
            {
                "key": summary.name,
                "chains": summary.chains,
                "mature_chains": summary.mature_chains,
                "visitors": summary.visitors,
                "more_mature_chains": verdict.more_mature_chains.get(summary.name, 0),
                **{metric.value: interval(summary.interval(metric)) for metric in Metric},
                "probability_best": comparison.probability_best.get(summary.name) if comparison else None,
                "expected_loss": comparison.expected_loss.get(summary.name) if comparison else None,
                "next_traffic_share": found.traffic.get(summary.name),
            }
            for summary in verdict.summaries
        ],
    }


def _quiz_fields(variant: Variant) -> dict[str, str]:
    """A variant's quiz as its form's inputs show it (empty without one)."""
    if variant.quiz is None:
        return {}
    quiz = variant.quiz
    answers = dict(zip(QUIZ_ANSWER_INPUTS, quiz.answers, strict=False))
    correct = str(quiz.correct + 1) if quiz.correct is not None else ""
    return {"quiz_question": quiz.question, **answers, "quiz_correct": correct, "quiz_explanation": quiz.explanation}


def _page(
    slug: str,
    form: VariantForm,
    *,
    inheritance_form: InheritanceForm | None = None,
    experiment_form: ExperimentForm | None = None,
    refusals: list[str] | None = None,
    status: int = 200,
) -> BaseResponse:
    runtime = current_runtime()
    settings = variant_settings(runtime.db, slug)
    counts = {c.key: c for c in variant_counts(runtime.db, settings.campaign_id, visits=runtime.variant_visits)}
    if inheritance_form is None:
        inheritance_form = InheritanceForm(formdata=None, inheritance=settings.inheritance)
    found = experiment_verdict(
        runtime.db, slug, runtime.clock.now(), visits=runtime.variant_visits, cache=runtime.verdicts
    )
    if experiment_form is None:
        experiment_form = ExperimentForm(
            formdata=None,
            metric=found.metric.value if found else settings.metric,
            autopilot=found.autopilot if found else settings.autopilot,
        )
    html = render_template(
        "pages/console/variants.html",
        member=current_member(),
        campaign=settings,
        counts=counts,
        form=form,
        inheritance_form=inheritance_form,
        experiment=found,
        experiment_form=experiment_form,
        metric_labels=METRIC_LABELS,
        verdict_metrics=_TABLE_METRICS,
        stop_form=StopForm(formdata=None),
        wrapper_labels=WRAPPER_LABELS,
        refusals=refusals or [],
        done=get_flashed_messages(category_filter=[_DONE_CATEGORY]),
    )
    return Response(html, status=status)
