"""The dashboard's projection as one sentence that makes sense in every state: no forwards yet,
no K or cycle time yet, a campaign that has ended, less than a cycle left, nothing sent in the
last cycle, a wave that brings (next to) nothing, and the ordinary case, one cycle or more.
(The arithmetic is engine.services.analytics.formulas; docs/analytics.md, *Projected reach*.)"""

from __future__ import annotations

from enum import Enum

from flask_babel import gettext as _
from flask_babel import ngettext

from engine.services.analytics import Projection
from engine.web.console.formats import number


class ProjectionState(Enum):
    NO_FORWARDS = "no forwards"
    NO_CYCLE = "no K or cycle time"
    ENDED = "ended"
    LESS_THAN_A_CYCLE = "less than a cycle left"
    QUIET = "nothing sent in the last cycle"
    FLAT = "the wave brings no more"
    GROWING = "projected"


def projection_state(projection: Projection | None, forwards: int) -> ProjectionState:
    """Which sentence a projection calls for: the states are tried in this order."""
    if projection is None:
        return ProjectionState.NO_FORWARDS if forwards == 0 else ProjectionState.NO_CYCLE
    if projection.horizon_days <= 0:
        return ProjectionState.ENDED
    if projection.cycles == 0:
        return ProjectionState.LESS_THAN_A_CYCLE
    if projection.wave == 0:
        return ProjectionState.QUIET
    if projection.additional == 0:
        return ProjectionState.FLAT
    return ProjectionState.GROWING


def duration_text(seconds: float) -> str:
    """A span as a person says it: minutes under an hour, hours under two days, else days."""
    if seconds < 3600:
        return _("%(minutes)s min", minutes=number(max(1, round(seconds / 60))))
    if seconds < 172800:
        return _("%(hours)s h", hours=number(seconds / 3600, 1))
    return _("%(days)s days", days=number(seconds / 86400, 1))


def projection_sentence(projection: Projection | None, forwards: int) -> str:
    """The projection in words, in the reader's language."""
    state = projection_state(projection, forwards)
    if state is ProjectionState.NO_FORWARDS:
        return _("No projection yet: nobody has forwarded the offer.")
    if state is ProjectionState.NO_CYCLE:
        return _("No projection yet: it needs a K and a cycle time (a click on a forward followed by a forward on).")
    assert projection is not None
    total = number(projection.total)
    cycle = duration_text(projection.cycle_days * 86400)
    if state is ProjectionState.ENDED:
        return _("The campaign has ended: its reach stays at %(total)s forwards.", total=total)
    if state is ProjectionState.LESS_THAN_A_CYCLE:
        return _(
            "Less than one cycle (%(cycle)s) is left: reach should stay at about %(total)s forwards.",
            cycle=cycle,
            total=total,
        )
    if state is ProjectionState.QUIET:
        return _(
            "Nobody forwarded in the last cycle (%(cycle)s): reach should stay at about %(total)s forwards.",
            cycle=cycle,
            total=total,
        )
    if state is ProjectionState.FLAT:
        return _(
            "With K at %(k)s, the %(wave)s forwards of the last cycle (%(cycle)s) should bring hardly any more: "
            "reach should stay at about %(total)s forwards.",
            k=number(projection.k, 2),
            wave=number(projection.wave),
            cycle=cycle,
            total=total,
        )
    sentence = ngettext(
        "Projected reach: about %(total)s forwards within %(horizon)s, %(additional)s more than now: the "
        "%(wave)s forwards of the last cycle (%(cycle)s), forwarded on with K at %(k)s for %(num)d more cycle.",
        "Projected reach: about %(total)s forwards within %(horizon)s, %(additional)s more than now: the "
        "%(wave)s forwards of the last cycle (%(cycle)s), forwarded on with K at %(k)s for %(num)d more cycles.",
        projection.cycles,
        total=total,
        horizon=duration_text(projection.horizon_days * 86400),
        additional=number(projection.additional),
        wave=number(projection.wave),
        cycle=cycle,
        k=number(projection.k, 2),
    )
    if projection.capped:
        sentence += " " + _("Capped by the campaign's message caps.")
    return sentence
