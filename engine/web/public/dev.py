"""The development outbox: every message the outbox transport 'sent', newest first."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template, request
from sqlalchemy import select

from engine.models import OutboxMessage
from engine.runtime import current_runtime

bp = Blueprint("dev", __name__, url_prefix="/dev")

PAGE_SIZE = 100


def _newest(limit: int) -> list[OutboxMessage]:
    with current_runtime().db.reading() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)))


def _limit() -> int:
    try:
        return max(1, min(int(request.args.get("limit", PAGE_SIZE)), 1000))
    except ValueError:
        return PAGE_SIZE


@bp.get("/outbox")
def outbox() -> str:
    return render_template("pages/outbox.html", messages=_newest(_limit()))


@bp.get("/outbox.json")
def outbox_json() -> Response:
    return jsonify([m.as_json() for m in _newest(_limit())])
