"""`POST /c/<slug>/play`: a landing page's video was started (engine.services.analytics.plays).

The page sends it with navigator.sendBeacon (or fetch) when the visitor presses play; the body
carries the view's signed play stamp. Anything but a fresh stamp of this campaign's page is a
4xx problem+json, and counts nothing. No CSRF token: the stamp is the proof, and spends itself.
"""

from __future__ import annotations

from flask import Response, request
from werkzeug.wrappers import Response as BaseResponse

from engine.runtime import current_runtime
from engine.services.analytics.plays import PlayRefusal, PlayRefused, PlaysUnavailable
from engine.web.api.problems import problem
from engine.web.outages import outage_log

# A public page's route: on the `public` blueprint (imported before it is registered).
from engine.web.public.pages import bp

# A stamp is a few hundred characters: a larger body is not a play.
MAX_PLAY_BODY = 2048

_REFUSALS: dict[PlayRefusal, tuple[int, str]] = {
    PlayRefusal.MISSING: (400, "The play carries no stamp."),
    PlayRefusal.INVALID: (400, "The play's stamp is not one this site signed."),
    PlayRefusal.EXPIRED: (410, "The play's stamp has expired: reload the page."),
    PlayRefusal.OTHER_CAMPAIGN: (400, "The play's stamp is of another campaign's page."),
    PlayRefusal.REPLAYED: (409, "This page view's play was counted already."),
    PlayRefusal.FLOOD: (429, "Too many plays from this connection; try again later."),
}


@bp.post("/c/<slug>/play")
def play(slug: str) -> BaseResponse:
    if (request.content_length or 0) > MAX_PLAY_BODY:
        return problem(413, "Payload Too Large", "A play is a stamp and nothing else.")
    runtime = current_runtime()
    stamp = request.form.get("stamp", "")
    try:
        runtime.plays.count(slug, stamp, request.remote_addr or "", runtime.clock.now().date())
    except PlayRefused as refused:
        status, detail = _REFUSALS[refused.refusal]
        return problem(status, "Play not counted", detail, reason=refused.refusal.value)
    except PlaysUnavailable as error:
        outage_log().failed("Redis", error)
        return problem(503, "Play not counted", "Plays cannot be counted right now.")
    response = Response(status=204)
    response.headers["Cache-Control"] = "no-store"
    return response
