"""Whether an HTTP request left us: the line between "try again" and "may have gone".

A connection refused, a TLS handshake reset, a connection reset while the request was still
being written: the provider cannot have acted on a request it never got whole, so it is safe
to send again later. Once the last byte is written, a broken connection or a missing answer
may hide an accepted message, which must never be sent twice.

urllib3 (under the SendGrid transport, and under requests for Twilio's SDK) raises the same
errors for both cases; its connection classes here note, per thread, when a request was
written in full, and `leaving()` turns a failure before that into `RequestNotSent`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_written = threading.local()


class RequestNotSent(Exception):
    """The request failed before it was written in full: nothing reached the provider."""


class _NotesWrites:
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)  # type: ignore[misc]
        # Headers and body are in the socket's hands: from here the provider may act on it.
        _written.done = True


class _HTTPConnection(_NotesWrites, HTTPConnection):
    pass


class _HTTPSConnection(_NotesWrites, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def note_writes(pool_manager: urllib3.PoolManager) -> None:
    """Let this pool manager's connections say when a request has been written."""
    pool_manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


@contextmanager
def leaving() -> Iterator[None]:
    """Around one request (on a pool set up with `note_writes`): a connection failure before
    the request was written in full comes out as RequestNotSent, its cause attached."""
    _written.done = False
    try:
        yield
    except (urllib3.exceptions.HTTPError, OSError) as error:  # requests' errors are OSErrors
        if not _written.done:
            raise RequestNotSent(str(error)) from error
        raise
