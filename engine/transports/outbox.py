"""The outbox transport: stores messages in the database for `/dev/outbox` instead of sending.

It behaves like a provider: its own transaction, its own id for each message.
"""

from __future__ import annotations

from engine.db import Database
from engine.models import OutboxMessage
from engine.transports import OutgoingEmail, OutgoingSms, OutgoingWhatsApp


class OutboxTransport:
    def __init__(self, db: Database) -> None:
        self._db = db

    def send_email(self, email: OutgoingEmail) -> str:
        headers = {"From": f"{email.from_name} <{email.from_email}>", **email.headers}
        return self._store(
            OutboxMessage(
                channel="email",
                to=email.to,
                subject=email.subject,
                text=email.text,
                html=email.html,
                headers=headers,
            )
        )

    def send_sms(self, sms: OutgoingSms) -> str:
        return self._store(OutboxMessage(channel="sms", to=sms.to, text=sms.text, headers={}))

    def send_whatsapp(self, message: OutgoingWhatsApp) -> str:
        # The template and its variables, as a provider would get them, beside the text they make.
        headers = {"ContentSid": message.content_sid, "ContentVariables": dict(message.variables)}
        return self._store(OutboxMessage(channel="whatsapp", to=message.to, text=message.text, headers=headers))

    def _store(self, row: OutboxMessage) -> str:
        with self._db.transaction() as session:
            session.add(row)
            session.flush()
            return f"outbox-{row.id}"
