"""An in-memory transport: the fake that unit tests and benchmarks send through.

It records what it was given and can be told to fail the next sends, so tests
can drive the delivery service through every outcome without a provider.
"""

from __future__ import annotations

import itertools
import threading

from engine.channels import OutgoingEmail, OutgoingSms, TransportError


class MemoryTransport:
    def __init__(self) -> None:
        self.emails: list[OutgoingEmail] = []
        self.sms: list[OutgoingSms] = []
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

    def send_sms(self, sms: OutgoingSms) -> str:
        with self._lock:
            self._raise_planned_failure()
            self.sms.append(sms)
            return f"mem-{next(self._ids)}"

    def _raise_planned_failure(self) -> None:
        if self._failures:
            raise self._failures.pop(0)
