"""The console's preview: a campaign's email, text and landing page as they will be sent, and test sends.

Marketers (and admins) see the email in sandboxed frames at desktop and mobile widths, its text
part and headers, the SMS with its encoding, segments and estimated cost, and the landing page,
all rendered with sample data they may edit (a GET form, so a preview can be linked to). A test
send goes through the real transports, only to the person's own address or a listed test number
(engine.services.previews).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from flask import Blueprint, Response, flash, get_flashed_messages, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf import FlaskForm

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse
from wtforms import HiddenField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from engine.channels import channel as channel_named
from engine.channels import recognising, registered
from engine.contacts import Contact
from engine.models import Role
from engine.runtime import current_runtime
from engine.services.previews import (
    TEST_SENDS_PER_HOUR,
    InvalidSample,
    SampleData,
    TestSendFailed,
    TestSendRefused,
    preview_campaign,
    send_test,
)
from engine.web.console.auth import current_member, staff_required

bp = Blueprint("preview_console", __name__, url_prefix="/console/campaigns")

SAMPLE_FIELDS = tuple(f.name for f in fields(SampleData))
_SENT_CATEGORY = "test-sent"
DESKTOP_WIDTH = 600
MOBILE_WIDTH = 375


class TestSendForm(FlaskForm):
    __test__ = False  # not a pytest test class, whatever its name

    # Its choices are the registered channels (_test_send_form).
    channel = SelectField(lazy_gettext("Channel"))
    recipient = StringField(
        lazy_gettext("Send to"),
        validators=[DataRequired(lazy_gettext("Enter where the test should go.")), Length(max=254)],
    )
    # The sample data the page was showing: the test is what the marketer saw.
    sender_name = HiddenField()
    note = HiddenField()
    coupon_code = HiddenField()
    locale = HiddenField()


@bp.get("/<slug>/preview")
@staff_required(Role.MARKETER)
def preview(slug: str) -> BaseResponse:
    typed = _typed_sample(request.args)
    sample, problems = _sample_from(typed)
    return _page(slug, sample, typed, problems, status=422 if problems else 200)


@bp.post("/<slug>/preview/test-send")
@staff_required(Role.MARKETER)
def test_send(slug: str) -> BaseResponse:
    form = TestSendForm()
    form.channel.choices = [SelectChoice(channel.name, channel.label) for channel in registered()]
    typed = _typed_sample(request.form)
    sample, problems = _sample_from(typed)
    if problems:
        return _page(slug, sample, typed, problems, test_error=_("The sample data is not valid: nothing was sent."))
    if not form.validate_on_submit():
        reasons = [e for errors in form.errors.values() for e in errors]
        return _page(slug, sample, typed, {}, test_error=" ".join(map(str, reasons)) or _("Check the test-send form."))
    member = current_member()
    assert member is not None  # staff_required let the request through
    try:
        receipt = send_test(
            current_runtime(), slug, member, form.recipient.data or "", sample, channel=form.channel.data
        )
    except TestSendRefused as refused:
        return _page(slug, sample, typed, {}, test_error=str(refused))
    except TestSendFailed as failed:
        problem = _("The provider did not take the test: %(error)s", error=str(failed))
        return _page(slug, sample, typed, {}, test_error=problem, status=502)
    sent = channel_named(receipt.channel)
    what = sent.message_noun or sent.label
    flash(_("Test %(what)s sent to %(to)s.", what=what, to=receipt.shown_recipient), _SENT_CATEGORY)
    return redirect(url_for("preview_console.preview", slug=slug, **_sample_args(sample)), code=303)


def _typed_sample(values: Mapping[str, str]) -> dict[str, str] | None:
    """The sample fields as typed (trimmed), or None when the request carries none of them."""
    if not any(name in values for name in SAMPLE_FIELDS):
        return None
    return {name: values.get(name, "").strip() for name in SAMPLE_FIELDS}


def _sample_from(typed: dict[str, str] | None) -> tuple[SampleData, dict[str, str]]:
    """The sample to render with, and what is wrong with what was typed (then the defaults render)."""
    if typed is None:
        return SampleData(), {}
    try:
        return SampleData(**typed), {}
    except InvalidSample as invalid:
        return SampleData(), invalid.problems


def _sample_args(sample: SampleData) -> dict[str, Any]:
    # Any: url_for takes the query's values as **Any (a str-typed dict could clash with _external).
    return {name: getattr(sample, name) for name in SAMPLE_FIELDS}


def _page(
    slug: str,
    sample: SampleData,
    typed: dict[str, str] | None,
    problems: dict[str, str],
    *,
    test_error: str | None = None,
    status: int | None = None,
) -> BaseResponse:
    runtime = current_runtime()
    settings = runtime.settings
    result = preview_campaign(
        runtime.db,
        runtime.renderer,
        slug,
        sample,
        settings=settings,
        unsubscribe_mailto=settings.unsubscribe_mailto,
    )
    if result.locale_problem:
        # A language the campaign does not speak: said beside the field; the default is shown.
        problems, status = {**problems, "locale": result.locale_problem}, 422
    member = current_member()
    html = render_template(
        "pages/console/preview.html",
        member=member,
        preview=result,
        typed=typed or _sample_args(sample),
        problems=problems,
        test_error=test_error,
        sent=get_flashed_messages(category_filter=[_SENT_CATEGORY]),
        own_address=member.name if member and member.kind == "user" else "",
        test_numbers=[_masked_number(number) for number in settings.test_sms_numbers],
        first_test_number=settings.test_sms_numbers[0] if settings.test_sms_numbers else "",
        sends_per_hour=TEST_SENDS_PER_HOUR,
        desktop_width=DESKTOP_WIDTH,
        mobile_width=MOBILE_WIDTH,
    )
    if status is None:
        status = 422 if test_error or problems else 200
    return Response(html, status=status)


def _masked_number(number: str) -> str:
    # As the channel a number belongs to masks it (a number is masked alike on every channel).
    owner = recognising(number)
    return Contact(owner.name, number).masked() if owner else number
