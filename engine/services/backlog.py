"""The delivery backlog, for the metrics scrape: what waits to be sent, and for how long.

Read when Prometheus asks (engine.metrics.BacklogCollector), so the figures are the same
whichever process answers: one aggregate query (the messages' status index narrows it to the
waiting ones) and the length of the RQ queue.
"""

from __future__ import annotations

from sqlalchemy import func

from engine.clock import Clock
from engine.db import Database
from engine.metrics import Backlog
from engine.models import Message
from engine.queue import RQJobQueue
from engine.services.delivery import due_messages


def read_backlog(db: Database, queue: RQJobQueue, clock: Clock) -> Backlog:
    now = clock.now()
    # Due as the send loop claims them: waiting, of an active campaign, their time come. A
    # message is due from its retry or quiet-hours time, or else from when it was queued.
    due_since = func.coalesce(Message.not_before, Message.created_at)
    with db.reading() as session:
        count, oldest = session.execute(due_messages(func.count(), func.min(due_since), now=now)).one()
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return Backlog(due_messages=int(count), oldest_due_seconds=age, queued_jobs=queue.queue.count)
