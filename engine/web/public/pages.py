"""The public side: a campaign's landing page, the send-to-friend form, tracked links."""

from __future__ import annotations

import math
import secrets
from collections.abc import Hashable, Mapping
from typing import Any, assert_never
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale, gettext, lazy_gettext, ngettext

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse

from engine import metrics
from engine.caps import CapsUnavailable
from engine.challenge import CHALLENGE_REQUIRED, Verdict
from engine.channels import channel as channel_named
from engine.channels import contact_kinds
from engine.contacts import InvalidContact, parse_contact_in
from engine.i18n import catalog_locales, current_language
from engine.metrics import Refusal
from engine.qr import inline_svg
from engine.readiness import database_problems, redis_problems
from engine.runtime import current_runtime
from engine.services.analytics import visit_slice
from engine.services.campaigns import LandingPage, landing_page
from engine.services.coupons import code_for_visitor
from engine.services.forwarding import (
    CampaignChanged,
    ForwardCapped,
    ForwardPreview,
    ForwardRejected,
    Referrer,
    at_most_friends,
)
from engine.services.intake import (
    Accepted,
    AnsweredAsSent,
    ChallengeAsked,
    EditAsked,
    IntakeOutcome,
    PostedForward,
    PreviewShown,
    PreviewUnavailable,
    StampProblem,
    StampRefused,
)
from engine.services.lookups import CampaignLanguage, CampaignUnavailable, campaign_language
from engine.services.referrers import incentives_refusal_of, rewards_on_for
from engine.services.wrappers import PAST_THE_STEP, SKIP_PARAMETER, STEP_PARAMETERS, StepReply, step_reply
from engine.sharing import ShareButton, ShareMessage
from engine.tokens import ExpiredToken, InvalidToken, Purpose
from engine.video import (
    REVEAL_AFTER_STEP,
    REVEAL_AFTER_VIDEO,
    REVEAL_ALWAYS,
    STEP_DONE_ATTRIBUTE,
    VIDEO_PLACEHOLDER,
)
from engine.visitors import is_prefetch
from engine.web.console.analytics import count_landing_visit
from engine.web.errors import error_response
from engine.web.outages import outage_log, unavailable
from engine.web.public import framing
from engine.web.public.cards import QR_KINDS, campaign_card, landing_card
from engine.web.public.forms import ForwardForm, FriendWording
from engine.web.public.languages import LANG_PARAMETER, language_links, speak_campaign_language
from engine.web.public.variant_choice import (
    VARIANT_COOKIE,
    VariantChoice,
    carried_variant,
    count_variant_view,
    remember_variant,
)
from engine.web.security import allow_on_this_page

bp = Blueprint("public", __name__)

REF_COOKIE = "fluister_ref"
VISITOR_KEY = "visitor"
# What any form may carry, before the campaign's own (smaller) limit is known: enough to
# refuse a flood of entries without parsing it.
MAX_FRIENDS_PER_FORM = 50
# The name of the "add a friend" button, which posts the form to get one more input.
ADD_FRIEND = "add_friend"
REF_COOKIE_MAX_AGE = 30 * 24 * 3600

# Lazy: said in the language of the request that shows them.
CHALLENGE_WORDING = {
    CHALLENGE_REQUIRED: lazy_gettext(
        "We've had several forwards from your connection in the last hour. "
        "Please send the form again: your browser will first do a quick automatic check. Nothing was sent yet."
    ),
    Verdict.EXPIRED: lazy_gettext(
        "The automatic check expired. Please send the form again to run a new one. Nothing was sent yet."
    ),
    Verdict.REPLAYED: lazy_gettext(
        "That automatic check was already used. Please send the form again to run a new one. Nothing was sent yet."
    ),
    Verdict.INVALID: lazy_gettext(
        "The automatic check could not be confirmed. Please send the form again to run a new one. Nothing was sent yet."
    ),
}
STAMP_WORDING = {
    StampProblem.TOO_FAST: lazy_gettext("That was quick! Please check the form and send it again."),
    StampProblem.EXPIRED: lazy_gettext("This form has expired. Please check it and send it again."),
}


# The switch at the top of every page (empty but on a campaign's pages in several languages).
bp.add_app_template_global(language_links, "language_links")


@bp.get("/healthz")
def health() -> BaseResponse:
    return Response("ok\n", mimetype="text/plain")


@bp.get("/readyz")
def ready() -> BaseResponse:
    """200 when the database answers at this release's schema and Redis answers; else a 503
    naming each missing part (what a load balancer needs to keep this process out of rotation)."""
    runtime = current_runtime()
    problems = database_problems(runtime.db) + redis_problems(runtime.queue.connection, runtime.settings.redis_url)
    if not problems:
        return Response("ready\n", mimetype="text/plain")
    response = jsonify(
        {
            "type": "about:blank",
            "title": "Not ready",
            "status": 503,
            "detail": "; ".join(problem.detail for problem in problems),
            "missing": [{"part": problem.part, "detail": problem.detail} for problem in problems],
        }
    )
    response.status_code = 503
    response.mimetype = "application/problem+json"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/c/<slug>")
def landing(slug: str) -> BaseResponse:
    runtime = current_runtime()
    try:
        referrer = runtime.forwarding.referrer(slug, request.cookies.get(REF_COOKIE))
        # The switch (?lang=), else the language of the forward this visitor came through, else
        # the browser's, among the campaign's languages: chosen before its template renders.
        explicit = request.args.get(LANG_PARAMETER) or (referrer.locale if referrer else None)
        # The visitor's A/B variant (none without an experiment): the one they were shown
        # before, else the sender's or a draw, by the campaign's inheritance mode.
        variant = VariantChoice(request.cookies.get(VARIANT_COOKIE), referrer.variant_id if referrer else None)
        page = _landing_page(slug, explicit=explicit, choose_variant=variant, step=_landing_step())
    except CampaignUnavailable as error:
        return _unavailable_page(error)
    language = current_language()
    prefetch = is_prefetch(request.user_agent.string, request.method)
    if not prefetch and not _is_step_reply():
        count_landing_visit(page.campaign_id, referrer)
        count_variant_view(page.campaign_id, variant)
    form = _form(page)
    form.locale.data = language
    form.ref.data = request.cookies.get(REF_COOKIE) if referrer else ""
    form.variant.data = variant.token
    # The visitor is the friend the forward in their cookie went to: its code is theirs.
    coupon_code = code_for_visitor(runtime.db, referrer.public_id) if referrer and page.gives_codes else None
    response = _render_landing(
        page,
        form,
        referrer_name=referrer.sender_name if referrer else None,
        challenge=_challenge_required(page),
        coupon_code=coupon_code,
        play_stamp=_play_stamp(page, referrer),
        first_view=True,
    )
    # A machine fetching the page ahead of a person is shown a variant, but keeps none; nor does
    # a frame on another site (no cookie there: the form's field carries the variant).
    if prefetch or framing.current_embedding() is not None:
        return response
    return remember_variant(response, slug, variant)


def _landing_step() -> StepReply:
    """A quiz variant's answer or skip in this view's query (`?answer=`, `?skip`); the embedded
    form has no step."""
    return step_reply(request.args) if framing.current_embedding() is None else PAST_THE_STEP


def _is_step_reply() -> bool:
    """The view answers a quiz or skips it: the same visit's next page, not another view."""
    return bool(STEP_PARAMETERS & request.args.keys())


def _play_stamp(page: LandingPage, referrer: Referrer | None) -> str | None:
    """The signed stamp this view's video play is counted with, where the view counts."""
    if page.video is None:
        return None
    today = current_runtime().clock.now().date()
    where = visit_slice(referrer.generation, referrer.channel, today) if referrer else visit_slice(None, None, today)
    return current_runtime().plays.new_stamp(page.campaign_id, page.slug, where)


def _video_parts(page: LandingPage, play_stamp: str | None) -> tuple[str, str]:
    """The video's player, above the offer (`lead`), or where the campaign's own landing
    template put `{{ video }}`; and the offer's HTML. The page's CSP allows what the video
    loads, on this response only."""
    content = page.content_html
    if page.video is None:
        return "", content.replace(VIDEO_PLACEHOLDER, "")
    for directive, sources in page.video.csp_sources().items():
        allow_on_this_page(directive, sources)
    player = render_template("pages/_video.html", video=page.video, slug=page.slug, play_stamp=play_stamp)
    if VIDEO_PLACEHOLDER in content:
        return "", content.replace(VIDEO_PLACEHOLDER, player, 1).replace(VIDEO_PLACEHOLDER, "")
    return player, content


def _form_reveal(page: LandingPage, offer_html: str) -> str:
    """What the form waits for on a first view (a form shown again, with its errors, is shown at
    once): the video, or a step of the landing template; nothing when the page lacks it."""
    if page.reveal_form == REVEAL_AFTER_VIDEO and page.video is not None:
        return REVEAL_AFTER_VIDEO
    # Checked at activation and upload; a page without the step (a template that fell back to
    # the default) shows its form rather than wait for nothing.
    if page.reveal_form == REVEAL_AFTER_STEP and STEP_DONE_ATTRIBUTE in offer_html:
        return REVEAL_AFTER_STEP
    return REVEAL_ALWAYS


@bp.get("/c/<slug>/challenge")
def challenge(slug: str) -> BaseResponse:
    """A fresh proof-of-work challenge for the widget. Cheap on purpose, and open to anyone: it
    reads and writes nothing (one PBKDF2 of a few hundred rounds, and an HMAC), and a challenge
    is worth nothing until solved, then once."""
    response = jsonify(current_runtime().challenge.proof_of_work.new_challenge())
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/c/<slug>/forward")
def forward(slug: str) -> BaseResponse:
    runtime = current_runtime()
    # The form is checked before the campaign itself is read (only its languages and phone
    # regions are, from this process's copy): the hot path is one transaction, and the landing
    # page is rendered only to show the form again.
    read_with = runtime.forwarding.campaign_language(slug)
    form, chosen = _read_form(read_with)
    if ADD_FRIEND in request.form:
        return _with_one_more_friend(slug, form)
    if runtime.intake.caught_by_honeypot(slug, form.website.data, request.remote_addr):
        return _answered_as_sent(slug)  # a bot gets the answer a person gets
    if not form.validate_on_submit():
        if runtime.forwarding.language_changed(slug, read_with):
            return forward(slug)  # read again with the campaign's regions and languages as they are now
        metrics.forward_refused(Refusal.FORM_INVALID)
        return _show_form_again(slug, form)
    try:
        outcome = runtime.intake.take(slug, _posted(form, chosen, read_with))
    except CampaignChanged:
        return forward(slug)  # read again with the campaign as it is now (this process has it)
    except ForwardRejected as rejection:
        _show_errors(form, rejection)
        return _show_form_again(slug, form)
    except CampaignUnavailable as error:
        return _unavailable_page(error)
    except PreviewUnavailable:
        return error_response(
            503, gettext("The preview of this offer can't be shown right now, so nothing can be sent.")
        )
    except ForwardCapped as capped:
        return _capped_again(slug, form, capped)
    except CapsUnavailable as error:
        # Caps that cannot be checked are not skipped: refused, and the outage logged once.
        outage_log().failed("Redis", error)
        return unavailable(gettext("We can't take forwards right now. Nothing was sent; please try again in a minute."))
    return _answer(slug, form, outcome)


def _read_form(read_with: CampaignLanguage | None) -> tuple[ForwardForm, str]:
    """The posted form, read with the campaign's phone regions and languages, and the language
    the page was in (a value the campaign does not offer is a form error). No campaign: the
    intake says so, in the browser's language."""
    language = read_with or CampaignLanguage(
        catalog_locales(), "informal", (current_runtime().settings.default_phone_region,)
    )
    chosen = speak_campaign_language(language.locales, language.address_form, request.form.get("locale"))
    offered = read_with.locales if read_with else None
    return ForwardForm(max_friends=MAX_FRIENDS_PER_FORM, regions=language.phone_regions, locales=offered), chosen


def _posted(form: ForwardForm, language: str, read_with: CampaignLanguage | None) -> PostedForward:
    return PostedForward(
        read_with=read_with,
        # The page's language, which the form checked is one of the campaign's.
        locale=form.locale.data or language,
        sender_name=form.sender_name.data,
        sender_contact=form.sender,
        friends=form.friend_contacts,
        note=form.note.data or None,
        referrer_token=form.ref.data or None,
        client_ip=request.remote_addr,
        stamp=form.rendered.data or "",
        stamp_purpose=framing.stamp_purpose(),
        visitor=framing.embedded_visitor() or session.get(VISITOR_KEY),
        challenge_solution=form.altcha.data or None,
        preview_token=request.form.get("preview_token"),
        wants_to_edit=bool(request.form.get("edit")),
        variant_token=form.variant.data or request.cookies.get(VARIANT_COOKIE) or None,
    )


def _answer(slug: str, form: ForwardForm, outcome: IntakeOutcome) -> BaseResponse:
    """The page for what became of the form."""
    match outcome:
        case Accepted(receipt) if framing.current_embedding() is not None:
            # No session in a frame on another site: the thanks page is told what was sent.
            kinds = contact_kinds(contact.channel for contact in form.friend_contacts)
            return redirect(framing.thanks_url(slug, receipt.friend_count, tuple(kinds)), code=303)
        case Accepted(receipt):
            # Post/redirect/get: reloading the confirmation must not send the form again.
            # The thanks page speaks the language the form was in.
            session["forwarded"] = {"slug": slug, "friends": receipt.friend_count, "locale": current_language()}
            # Whose page the thanks page offers: one of the forwards just written (all are the sender's).
            if receipt.forward_ids:
                session["referrer_forward"] = {"slug": slug, "forward": receipt.forward_ids[0]}
            return _answered_as_sent(slug)
        case AnsweredAsSent():
            return _answered_as_sent(slug)
        case StampRefused(problem):
            form.form_errors.append(str(STAMP_WORDING[problem]))
            return _show_form_again(slug, form)
        case ChallengeAsked(reason):
            return _challenge_again(slug, form, str(CHALLENGE_WORDING[reason]))
        case EditAsked():
            return _show_form_again(slug, form, status=200)
        case PreviewShown(preview, token):
            return _show_preview(slug, form, preview, token)
        case _:
            assert_never(outcome)


def _answered_as_sent(slug: str) -> BaseResponse:
    if framing.current_embedding() is not None:
        return redirect(framing.thanks_url(slug), code=303)
    return redirect(url_for("public.thanks", slug=slug), code=303)


def _show_preview(slug: str, form: ForwardForm, preview: ForwardPreview, token: str) -> BaseResponse:
    """The whole message, as the friends will get it, with Send and Change buttons carrying
    the form as typed; what Send posts is accepted only if it is what was shown."""
    form.preview_token.data = token
    html = render_template("pages/preview.html", slug=slug, form=form, preview=preview, friends=form.friend.data)
    return Response(html, status=200)


def _show_errors(form: ForwardForm, rejection: ForwardRejected) -> None:
    """The service's refusals beside the fields they are about (the rest above the form)."""
    for name, messages in rejection.errors.items():
        field = getattr(form, name, None)
        if field is None or name == "ref":
            form.form_errors.extend(messages)
        else:
            field.errors = list(field.errors) + messages
    # A refusal of one friend goes beside the input that friend was typed (or pasted) in.
    origins = form.friend.origins
    for position, messages in rejection.friends.items():
        if 0 < position <= len(origins):
            form.friend.entry_errors.setdefault(origins[position - 1], []).extend(messages)


def _show_form_again(slug: str, form: ForwardForm, status: int = 422) -> BaseResponse:
    try:
        page = _landing_page(slug, choose=False, choose_variant=_shown_variant(form))
    except CampaignUnavailable as error:
        return _unavailable_page(error)
    if len(form.friend.data or []) > page.max_friends and not form.friend.errors:
        form.friend.errors = [at_most_friends(page.max_friends)]
    return _render_landing(page, form, status=status, challenge=_challenge_required(page))


def _with_one_more_friend(slug: str, form: ForwardForm) -> BaseResponse:
    """The form again as typed, with one more empty friend input (up to the campaign's maximum):
    the "add a friend" button without JavaScript. Not a submission: nothing is checked (no
    errors for a form half filled in) and nothing is written."""
    try:
        page = _landing_page(slug, choose=False, choose_variant=_shown_variant(form))
    except CampaignUnavailable as error:
        return _unavailable_page(error)
    rows = min(len(form.friend.entries) + 1, page.max_friends)
    return _render_landing(page, form, challenge=_challenge_required(page), friend_rows=rows)


def _challenge_again(slug: str, form: ForwardForm, message: str) -> BaseResponse:
    """The form again, as the sender filled it in, with the proof-of-work widget. A 429, not a
    422: nothing the sender typed is wrong; they are asked for this because of how much has
    come from their connection, and may send again at once."""
    try:
        page = _landing_page(slug, choose=False, choose_variant=_shown_variant(form))
    except CampaignUnavailable as error:
        return _unavailable_page(error)
    form.form_errors.append(message)
    return _render_landing(page, form, status=429, challenge=True)


@bp.post("/c/<slug>/share")
def share(slug: str) -> BaseResponse:
    """A tracked link for the consumer to share themselves, then on to their app (or to a page
    with the link to copy). A POST, not a link: link checkers and prefetchers follow links, and
    each share writes a forward."""
    runtime = current_runtime()
    with runtime.db.reading() as db_session:
        language = campaign_language(db_session, slug, runtime.settings.default_phone_region)
    locale = None
    if language is not None:
        locale = speak_campaign_language(language.locales, language.address_form, request.form.get("locale"))
    try:
        channel = ShareButton(request.form.get("channel", ""))
    except ValueError:
        return error_response(400, gettext("Choose one of the ways to share."))
    referrer = request.form.get("ref") or request.cookies.get(REF_COOKIE) or None
    try:
        shared = runtime.forwarding.share(
            slug, channel, referrer, request.remote_addr, locale=locale, variant_token=carried_variant()
        )
    except CampaignUnavailable as error:
        return _unavailable_page(error)
    except ForwardRejected as rejection:
        return error_response(400, " ".join(m for messages in rejection.errors.values() for m in messages))
    except ForwardCapped as capped:
        return _with_retry_after(error_response(429, _cap_wording(capped), gettext("Slow down")), capped)
    except CapsUnavailable as error:
        outage_log().failed("Redis", error)
        return unavailable(gettext("Sharing is not possible right now. Please try again in a minute."))
    token = runtime.tokens.sign(Purpose.FORWARD, shared.public_id)
    link = f"{runtime.settings.public_base_url}/f/{token}"
    message = ShareMessage(shared.offer_title, shared.brand_name, link, shared.share_text)
    target = message.target(channel)
    if target is None:
        return _share_link_page(slug, link, token, message)
    return redirect(target, code=303)


def _share_link_page(slug: str, link: str, token: str, message: ShareMessage) -> BaseResponse:
    """The link to copy, as a QR code too (inline, and files to download for print)."""
    html = render_template(
        "pages/share_link.html",
        link=link,
        message=message,
        slug=slug,
        qr=inline_svg(link, gettext("QR code of your link")),
        qr_files={kind: url_for("cards.link_qr", token=token, kind=kind) for kind in QR_KINDS},
        social=campaign_card(slug),
    )
    return Response(html)


@bp.get("/c/<slug>/thanks")
def thanks(slug: str) -> BaseResponse:
    runtime = current_runtime()
    done = session.pop("forwarded", None)
    ours = isinstance(done, dict) and done.get("slug") == slug
    # The switch, else the language the form was sent in, else the browser's.
    explicit = request.args.get(LANG_PARAMETER) or (str(done.get("locale") or "") if ours else None)
    variant = VariantChoice(request.cookies.get(VARIANT_COOKIE), draw=False)
    try:
        page = _landing_page(slug, explicit=explicit or None, choose_variant=variant)
    except CampaignUnavailable as error:
        return _unavailable_page(error)
    friends = done["friends"] if ours else None
    html = render_template(
        "pages/thanks.html",
        page=page,
        friends=friends,
        share_channels=list(ShareButton),
        share_ref=request.cookies.get(REF_COOKIE),
        share_variant=variant.token,
        referrer_page=_referrer_page(slug),
        rewards_refusal=incentives_refusal_of(runtime.db, slug),
        rewards_on=rewards_on_for(runtime.db, slug),
    )
    return make_response(html)


def _referrer_page(slug: str) -> str | None:
    """The link to the sender's own page, when this browser just forwarded this campaign."""
    sent = session.get("referrer_forward")
    if not isinstance(sent, dict) or sent.get("slug") != slug or not isinstance(sent.get("forward"), int):
        return None
    token = current_runtime().referrers.page_token_for_forward(sent["forward"])
    return url_for("referrers.page", token=token) if token else None


@bp.get("/f/<token>")
def follow(token: str) -> BaseResponse:
    runtime = current_runtime()
    # A link preview or a mail scanner gets the page, as a person does, but is no click.
    prefetch = is_prefetch(request.user_agent.string, request.method)
    try:
        followed = runtime.forwarding.follow_link(
            token, request.remote_addr, request.user_agent.string, prefetch=prefetch
        )
    except ExpiredToken:
        return error_response(410, gettext("This invitation link has expired."), gettext("Link expired"))
    except InvalidToken:
        return error_response(
            404, gettext("This link is not valid. Check that you copied all of it."), gettext("Link not valid")
        )
    except CampaignUnavailable as error:
        return _unavailable_page(error)
    # The landing page reads the forward behind this cookie, and speaks the sender's language.
    response = redirect(url_for("public.landing", slug=followed.campaign_slug), code=303)
    if prefetch:
        return response  # no referral set on a person's behalf: the friend's own click sets it
    response.set_cookie(
        REF_COOKIE,
        token,
        max_age=REF_COOKIE_MAX_AGE,
        path=url_for("public.landing", slug=followed.campaign_slug),
        httponly=True,
        samesite="Lax",
        secure=request.is_secure,
    )
    return response


# The caps that count shares as well as forms (ForwardingService.share).
ADDRESS_CAPS = frozenset({"submissions per IP per hour", "submissions per network per hour"})

# Whole sentences per cap (a limit's name dropped into a sentence reads wrong in Dutch and French).
CAP_REACHED = {
    "submissions per IP per hour": lazy_gettext(
        "You have reached the number of forwards from your connection in an hour. Nothing was sent."
    ),
    "submissions per network per hour": lazy_gettext(
        "You have reached the number of forwards from your network in an hour. Nothing was sent."
    ),
    "friends per sender per day": lazy_gettext(
        "You have reached the number of friends you can send this offer to in a day. Nothing was sent."
    ),
    "campaign messages per day": lazy_gettext(
        "This offer has reached the number of messages it sends in a day. Nothing was sent."
    ),
    "campaign messages in total": lazy_gettext(
        "This offer has reached the number of messages it sends. Nothing was sent."
    ),
}


def _challenge_required(page: LandingPage) -> bool:
    try:
        return current_runtime().challenge.required(page.caps, request.remote_addr)
    except CapsUnavailable as error:
        # The form is shown without the widget; sending it is refused with a 503 all the same.
        outage_log().failed("Redis", error)
        return False


def _as_typed_here(value: str, page: LandingPage) -> str:
    """A friend's contact shown back as people of the campaign's region write it: a number it
    read in national format (`06 12345678`), others as typed."""
    try:
        contact = parse_contact_in(value, page.language.phone_regions)
    except InvalidContact:
        return value
    shown = channel_named(contact.channel).shown(contact.value, page.language.phone_regions[0])
    return value if shown == contact.value else shown  # an address stays as it was typed


def _landing_page(
    slug: str,
    *,
    explicit: str | None = None,
    choose: bool = True,
    choose_variant: VariantChoice | None = None,
    step: StepReply = PAST_THE_STEP,
) -> LandingPage:
    """The campaign's page, in the language chosen for this visitor (`explicit` first), or in
    the one this request already speaks (`choose=False`: a form posted in it, shown again). A
    quiz variant's question is asked as `step` says (a form shown again: past it)."""
    runtime = current_runtime()

    def speak(language: CampaignLanguage) -> str:
        return speak_campaign_language(language.locales, language.address_form, explicit)

    return landing_page(
        runtime.db,
        runtime.renderer,
        slug,
        runtime.clock.now(),
        phone_region=runtime.settings.default_phone_region,
        choose_locale=speak if choose else None,
        snapshots=runtime.snapshots,
        public_base_url=runtime.settings.public_base_url,
        choose_variant=choose_variant,
        step=step,
    )


def _step_arguments() -> list[tuple[str, str]]:
    """The query of this landing view but the step's own parameters: what the quiz's form and
    its skip link keep (the language chosen, a campaign's tracking parameters). The tracked
    link's token is not among them: the referral cookie, path-scoped to the page, carries it."""
    return [(name, value) for name, value in request.args.items(multi=True) if name not in STEP_PARAMETERS]


def _shown_variant(form: ForwardForm) -> VariantChoice:
    """The variant a form shown again keeps: the one it was sent from (its field, else the
    visitor's cookie), never a new draw."""
    return VariantChoice(form.variant.data or request.cookies.get(VARIANT_COOKIE), draw=False)


def _form(page: LandingPage) -> ForwardForm:
    return ForwardForm(max_friends=page.max_friends, regions=page.language.phone_regions, locales=page.language.locales)


def _unavailable_page(error: CampaignUnavailable) -> BaseResponse:
    """A campaign that cannot be shown, said in its language when there is one to speak."""
    if error.language is not None:
        speak_campaign_language(error.language.locales, error.language.address_form)
    return error_response(error.status, str(error))


def _visitor() -> str:
    """A random id for this browser's session (the signed session cookie the CSRF token already
    lives in), which render stamps are bound to."""
    visitor = session.get(VISITOR_KEY)
    if not isinstance(visitor, str):
        visitor = session[VISITOR_KEY] = secrets.token_urlsafe(12)
    return visitor


def _capped_again(slug: str, form: ForwardForm, capped: ForwardCapped) -> BaseResponse:
    """The form again as typed, with the cap and when it frees up above it: not a dead end that
    loses the friends typed in. The share buttons stay on the page (a share sends nothing from
    here), unless the cap is the address's, which counts shares too."""
    try:
        page = _landing_page(slug, choose=False, choose_variant=_shown_variant(form))
    except CampaignUnavailable as error:
        return _unavailable_page(error)
    form.form_errors.append(_cap_wording(capped))
    shares = capped.cap not in ADDRESS_CAPS
    html = _render_landing(page, form, status=429, challenge=_challenge_required(page), share=shares)
    return _with_retry_after(html, capped)


def _with_retry_after(response: BaseResponse, capped: ForwardCapped) -> BaseResponse:
    if capped.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(capped.retry_after.total_seconds())))
    return response


def _cap_wording(capped: ForwardCapped) -> str:
    reached = CAP_REACHED.get(capped.cap)
    detail = str(reached) if reached is not None else gettext("This offer has reached a limit. Nothing was sent.")
    if capped.retry_after is not None:
        minutes = max(1, math.ceil(capped.retry_after.total_seconds() / 60))
        if minutes < 120:
            wait = ngettext(
                "You can forward again in about %(num)d minute.",
                "You can forward again in about %(num)d minutes.",
                minutes,
            )
        else:
            wait = ngettext(
                "You can forward again in about %(num)d hour.",
                "You can forward again in about %(num)d hours.",
                math.ceil(minutes / 60),
            )
        detail = f"{detail} {wait}"
    return detail


def _skip_url(slug: str) -> str:
    """The quiz's "Skip the question" link: the same page, past the question."""
    return f"{url_for('public.landing', slug=slug)}?{urlencode([*_step_arguments(), (SKIP_PARAMETER, '1')])}"


def _form_shape(page: LandingPage, form: ForwardForm, context: Mapping[str, Any], kinds: object) -> Hashable | None:
    """What a first view's form looks like but for the visitor's tokens (engine.web.public.
    form_html); None where it is rendered every time: a form with an error or a typed value,
    the embedded form, and templates read afresh from disk (`make run` while editing them)."""
    if (
        framing.current_embedding() is not None
        or current_app.jinja_env.auto_reload
        or form.errors
        or any(context["friend_inputs"])
        or form.sender_name.data
        or form.note.data
        or form.sender_contact.data
    ):
        return None
    return (
        page.slug,
        page.channels,
        page.contact_choices,
        page.max_friends,
        page.language.address_form,
        str(get_locale()),
        form.locale.data,
        form.by.data,
        context["reveal"],
        bool(context["challenge"]),
        len(context["friend_inputs"]),
        context["add_friend"],
        kinds,
    )


def _render_landing(
    page: LandingPage,
    form: ForwardForm,
    *,
    referrer_name: str | None = None,
    status: int = 200,
    challenge: bool = False,
    coupon_code: str | None = None,
    friend_rows: int = 0,
    share: bool = True,
    play_stamp: str | None = None,
    first_view: bool = False,
) -> BaseResponse:
    # Re-render what the sender typed, where they typed it (an error is shown beside its input),
    # with at least a few rows to fill in, and a fresh render stamp: the time to correct the
    # form starts now. Blank rows past the campaign's maximum are not echoed back.
    visitor = framing.embedded_visitor() or _visitor()
    form.rendered.data = current_runtime().intake.new_stamp(visitor, framing.stamp_purpose())
    form.website.data = ""
    friend_inputs = [_as_typed_here(v, page) if v.strip() else "" for v in form.friend.entries][:MAX_FRIENDS_PER_FORM]
    while len(friend_inputs) > page.max_friends and not friend_inputs[-1]:
        friend_inputs.pop()
    friend_inputs += [""] * (max(min(page.max_friends, 3), friend_rows) - len(friend_inputs))
    kinds = contact_kinds(page.channels + tuple(name for name, _ in page.contact_choices))
    lead_video, offer_html = _video_parts(page, play_stamp)
    context = dict(
        page=page,
        lead_video=lead_video,
        offer_html=offer_html,
        reveal=_form_reveal(page, offer_html) if first_view else REVEAL_ALWAYS,
        form=form,
        friend_inputs=friend_inputs,
        friend_wording=FriendWording(kinds, page.max_friends),
        add_friend=ADD_FRIEND if len(friend_inputs) < page.max_friends else None,
        referrer_name=referrer_name,
        challenge=challenge,
        coupon_code=coupon_code,
        share_channels=list(ShareButton) if share else [],
        share_ref=form.ref.data,
        share_variant=form.variant.data,
        social=landing_card(page),
        # The variant's wrapper and its quiz: the values a campaign's landing template prints
        # them by, which the built-in page shows its steps by too.
        wrapper=page.wrapper,
        quiz=page.quiz,
        # A scratch card is closed on a first view, and open on a form shown again.
        scratched=not first_view,
        step_arguments=_step_arguments() if first_view else [],
        skip_url=_skip_url(page.slug) if first_view else "",
    )
    shape = _form_shape(page, form, context, kinds) if first_view else None
    if shape is not None:
        context["form_html"] = current_runtime().landing_forms.form(
            shape,
            {
                "csrf": form.csrf_token.current_token or "",
                "stamp": form.rendered.data or "",
                "ref": form.ref.data or "",
                "variant": form.variant.data or "",
            },
            lambda: render_template("pages/_forward_form.html", **context),
        )
    html = render_template(
        "pages/embed.html" if framing.current_embedding() is not None else "pages/landing.html", **context
    )
    response = Response(html, status=status)
    # The page carries this visitor's CSRF token and render stamp: no shared cache may keep it
    # for the next visitor (there is no ETag to give either; no two visitors get the same page).
    response.headers["Cache-Control"] = "private, no-store"
    return response
