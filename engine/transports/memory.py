"""An in-memory transport: the fake that unit tests and benchmarks send through.

It records what it was given and can be told to fail the next sends, so tests
can drive the delivery service through every outcome without a provider.
"""

from __future__ import annotations

import itertools
import threading

from engine.transports import OutgoingEmail, OutgoingEmailBatch, OutgoingSms, OutgoingWhatsApp, TransportError


class MemoryTransport:
    """Records what it is given. `send_email_batch` exists only on BatchingMemoryTransport, so
    that tests choose whether the delivery service may batch."""

    def __init__(self) -> None:
        self.emails: list[OutgoingEmail] = []
        self.batches: list[OutgoingEmailBatch] = []  # what reached send_email_batch
        self.sms: list[OutgoingSms] = []
        self.whatsapp: list[OutgoingWhatsApp] = []
        self._failures: list[TransportError] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def fail_next(self, *errors: TransportError) -> None:
        with self._lock:
            self._failures.extend(errors)

    def send_email(self, email: OutgoingEmail) -> str:
        with self._lock:
            self._raise_planned_failure()
            self.emails.append(email)
            return f"mem-{next(self._ids)}"

    def _send_batch(self, batch: OutgoingEmailBatch) -> str:
        """Like a provider: all recipients or none; each recorded as the email they would get."""
        with self._lock:
            self._raise_planned_failure()
            self.batches.append(batch)
            self.emails.extend(batch.email_for(r) for r in batch.recipients)
            return f"mem-{next(self._ids)}"

    def send_sms(self, sms: OutgoingSms) -> str:
        with self._lock:
            self._raise_planned_failure()
            self.sms.append(sms)
            return f"mem-{next(self._ids)}"

    def send_whatsapp(self, message: OutgoingWhatsApp) -> str:
        with self._lock:
            self._raise_planned_failure()
            self.whatsapp.append(message)
            return f"mem-{next(self._ids)}"

    def _raise_planned_failure(self) -> None:
        if self._failures:
            raise self._failures.pop(0)


class BatchingMemoryTransport(MemoryTransport):
    max_batch = 1000

    def send_email_batch(self, batch: OutgoingEmailBatch) -> str:
        return self._send_batch(batch)
