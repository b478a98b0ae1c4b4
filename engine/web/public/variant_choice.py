"""The visitor's A/B variant on the public pages: chosen while the landing page renders, kept in
a signed cookie per campaign (path-scoped to its pages) and in the forward form's field.

engine.services.variants decides; this module reads and writes what the browser carries.
"""

from __future__ import annotations

import logging

from flask import request, url_for

# Views return flask's Response or redirect()'s werkzeug Response: typed as their common base.
from werkzeug.wrappers import Response as BaseResponse

from engine.runtime import current_runtime
from engine.services.variants import Assignment, CampaignVariants, Variant
from engine.tokens import VARIANT_MAX_AGE_SECONDS

log = logging.getLogger(__name__)

VARIANT_COOKIE = "fluister_variant"


class VariantChoice:
    """Chooses the visitor's variant when the landing page asks (engine.services.campaigns.
    landing_page), and remembers what it chose. `draw=False`: only the variant the visitor
    carries (a form shown again, the thanks page), never a new one."""

    def __init__(self, carried: str | None, inherited_id: int | None = None, *, draw: bool = True) -> None:
        self.carried = carried or None
        self.inherited_id = inherited_id
        self.draw = draw
        self.assignment: Assignment | None = None

    def __call__(self, campaign_id: int, variants: CampaignVariants) -> Variant | None:
        assigner = current_runtime().variants
        if self.draw:
            self.assignment = assigner.assign(campaign_id, variants, kept=self.carried, inherited_id=self.inherited_id)
        else:
            shown = assigner.attributed(campaign_id, variants, self.carried)
            self.assignment = Assignment(shown, False, self.carried) if shown and self.carried else None
        return self.assignment.variant if self.assignment is not None else None

    @property
    def token(self) -> str:
        return self.assignment.token if self.assignment is not None else ""


def carried_variant() -> str | None:
    """The signed variant a POST carries: the form's field, else the visitor's cookie."""
    return request.form.get("variant") or request.cookies.get(VARIANT_COOKIE) or None


def count_variant_view(campaign_id: int, choice: VariantChoice) -> None:
    """Count the view (and, for a first one, the visitor) of its variant. Never in the way."""
    if choice.assignment is None:
        return
    try:
        current_runtime().variant_visits.count(campaign_id, choice.assignment.variant.key, choice.assignment.new)
    except Exception:
        log.exception("variant view of campaign %d not counted", campaign_id)


def remember_variant(response: BaseResponse, slug: str, choice: VariantChoice) -> BaseResponse:
    """The cookie that keeps the visitor on their variant, set when it was chosen on this visit."""
    if choice.assignment is not None and choice.assignment.new:
        response.set_cookie(
            VARIANT_COOKIE,
            choice.assignment.token,
            max_age=VARIANT_MAX_AGE_SECONDS,
            path=url_for("public.landing", slug=slug),
            httponly=True,
            samesite="Lax",
            secure=request.is_secure,
        )
    return response
