"""Who changed a campaign, and the history row each change writes (`campaign_events`).

Staff, operators and the engine itself change campaigns: settings, status, templates, coupon
mode, reconciled messages. Each use case that does records one row, in its own transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from engine.models import DEFAULT_TEAM, CampaignEvent, Role


class ActorKind(StrEnum):
    USER = "user"  # a person signed in to the console
    API_KEY = "api-key"
    CLI = "cli"  # an operator's command
    SYSTEM = "system"  # the engine itself (the send loop pausing a failing campaign)


@dataclass(frozen=True)
class Actor:
    """Who makes a change, as the history names them. `role` limits what a staff member may
    change; the CLI and the system are not limited (whoever runs commands runs the server)."""

    name: str
    kind: ActorKind
    role: Role | None = None
    team: str = DEFAULT_TEAM  # a campaign a staff member creates is their team's

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("an actor has a name")
        if (self.role is None) != (self.kind in (ActorKind.CLI, ActorKind.SYSTEM)):
            raise ValueError("staff act with a role; the CLI and the system without one")

    @property
    def may_set_custom_policy(self) -> bool:
        """A custom policy sets each consent rule by hand: compliance's call, which only an
        admin (who holds compliance's powers) makes in the console (docs/policies.md: `custom`)."""
        return self.role is None or self.role is Role.ADMIN

    @property
    def may_remove_caps(self) -> bool:
        """A cap set to null is no cap at all: the form could send without limit. Only an admin
        decides that (with a reason); the CLI and the system are not limited."""
        return self.role is None or self.role is Role.ADMIN


SYSTEM = Actor("system", ActorKind.SYSTEM)
CLI = Actor("cli", ActorKind.CLI)


class EventAction(StrEnum):
    CREATED = "created"
    EDITED = "edited"
    STATUS_CHANGED = "status changed"
    TEMPLATES_UPLOADED = "templates uploaded"
    TEMPLATE_ROLLED_BACK = "template rolled back"
    COUPON_MODE = "coupons mode"
    MESSAGES_RECONCILED = "messages reconciled"  # an operator settled `unknown` messages
    CARD_IMAGE = "card image"  # the picture link previews show, uploaded or removed
    CONTEST = "contest"  # set up, changed, cancelled or made final (engine.services.contests)
    LOGO = "logo"  # the brand's logo at the top of the built-in e-mail, uploaded or removed
    VARIANTS = "variants"  # an A/B variant added, changed or stopped, or the inheritance mode
    DUPLICATED = "duplicated"  # made as a copy of another campaign (its slug in `changes`)
    ARCHIVED = "archived"  # put out of the console's list
    UNARCHIVED = "unarchived"


def record_event(
    session: Session,
    campaign_id: int,
    actor: Actor,
    action: EventAction,
    changes: Mapping[str, list[Any]] | None = None,
    reason: str = "",
    *,
    at: datetime | None = None,
) -> None:
    """One history row, in the caller's transaction: it is written with the change or not at all.
    `at`: the app clock's time, where what was recorded is read back by time (default: now)."""
    session.add(
        CampaignEvent(
            **({"at": at} if at is not None else {}),
            campaign_id=campaign_id,
            actor=actor.name[:254],
            actor_kind=actor.kind.value,
            action=action.value,
            changes=dict(changes or {}),
            reason=reason[:2000],
        )
    )
