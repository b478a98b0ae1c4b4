"""Moving a campaign through its states, and what a resumed campaign owes: what waited goes now."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.models import CampaignStatus
from engine.queue import QueueUnavailable
from engine.services.campaigns import change_status
from engine.services.history import Actor

if TYPE_CHECKING:
    from engine.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StatusSet:
    status: CampaignStatus
    # Resumed while Redis could not be reached: the messages that waited stay queued, and the
    # sweeper sends them once it is back.
    left_to_sweeper: bool = False


def set_status(runtime: Runtime, slug: str, wanted: CampaignStatus, actor: Actor, reason: str) -> StatusSet:
    """Raises what change_status raises (CampaignNotFound, ChangeRefused). Activation is checked
    at the app's clock. A dispatch that cannot be asked for does not undo the change, which is
    committed first."""
    change_status(runtime.db, slug, wanted, actor, reason, renderer=runtime.renderer, now=runtime.clock.now())
    if wanted is not CampaignStatus.ACTIVE:
        return StatusSet(wanted)
    try:
        runtime.queue.request_dispatch(extra=True)
    except QueueUnavailable as error:
        log.warning("campaign %s resumed but no dispatch could be asked for: %s", slug, error)
        return StatusSet(wanted, left_to_sweeper=True)
    return StatusSet(wanted)
