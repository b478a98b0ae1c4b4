"""A reward's history: every step (earned, reviewed, held, sent, paid) with who or what took it
and when, written in the transaction of the step itself so that the two never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.models.rewards import RewardEvent

# The engine's own steps (the payout pass, the sender) are recorded as this actor.
SYSTEM_ACTOR = "system"


class Step(StrEnum):
    EARNED = "earned"
    APPROVED = "approved"
    REJECTED = "rejected"
    HOLD_OVER = "hold over"
    CODE_ASSIGNED = "code assigned"
    WAITING_CONTACT = "waiting for a contact"
    QUEUED = "notice queued"
    SENT = "notice sent"
    NOT_SENT = "notice not sent"
    SHOP_TOLD = "shop told"
    PAID = "paid"


def note(session: Session, reward_id: int, actor: str, step: Step, at: datetime, **detail: Any) -> None:
    session.add(RewardEvent(reward_id=reward_id, actor=actor[:254], action=step.value, at=at, detail=detail))


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    actor: str
    action: str
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "actor": self.actor, "action": self.action, "detail": self.detail}


def history(session: Session, reward_ids: list[int]) -> dict[int, list[HistoryEntry]]:
    """Each reward's steps, oldest first."""
    found: dict[int, list[HistoryEntry]] = {reward_id: [] for reward_id in reward_ids}
    if not reward_ids:
        return found
    rows = session.scalars(select(RewardEvent).where(RewardEvent.reward_id.in_(reward_ids)).order_by(RewardEvent.id))
    for event in rows:
        found[event.reward_id].append(HistoryEntry(event.at, event.actor, event.action, dict(event.detail)))
    return found
