"""What the provider stubs share: a threaded HTTP/1.1 server on 127.0.0.1 (optionally
over TLS), failure switches that a test flips at runtime, a log of every exchange and
connection counting.

A stub subclasses `StubServer` and implements `handle` (the provider's API) and
`error_response` (the provider's error body for an injected failure status).

Failure switches apply to the next requests in arrival order, whatever their path:
- `fail_next(status, count)`: answer with the provider's error for that status
  (429, 500, 503...) without processing the request;
- `drop_next(count)`: close the connection after reading the request line and
  headers, before the body: nothing was processed;
- `drop_next(count, after_processing=True)`: process the request (a message is
  accepted and recorded) and then close the connection without answering: the
  client cannot know whether its request was received;
- `reset_next(count)`: reset (TCP RST) the next `count` new connections as soon as they
  are accepted, before a TLS handshake or a byte of the request is read: over TLS the
  client cannot have sent anything;
- `reset_next(count, after_processing=True)`: process the request, then reset the
  connection instead of answering;
- `refusing()`: while the block runs, the port refuses connections (nothing listens);
- `latency` (seconds): the request is processed, then the response waits this long,
  so a client that times out leaves an accepted message behind, as in real life;
- `holding()`: responses wait until the block ends, which lets a test line up
  concurrent requests without timing guesses.
"""

from __future__ import annotations

import contextlib
import email.message
import json
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

from tests.stubs.tls import local_ca

HOST = "127.0.0.1"
WAIT_TIMEOUT = 5.0  # default bound (seconds) for wait_for
HOLD_LIMIT = 60.0  # a forgotten holding() block cannot hang a handler longer than this
IDLE_TIMEOUT = 30.0  # an idle keep-alive connection is closed after this


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # as on the request line: path and query string
    headers: email.message.Message  # case-insensitive: headers["authorization"]
    body: bytes
    received_at: float  # time.time()

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """Form fields, first value of each (the shape RequestValidator takes)."""
        return {name: values[0] for name, values in self.form_lists().items()}

    def form_lists(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: object, headers: Mapping[str, str] | None = None) -> Response:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})


@dataclass(frozen=True)
class Exchange:
    """One request as the stub saw it. `response` is None when the connection was dropped."""

    request: Request
    response: Response | None
    processed: bool


@dataclass(frozen=True)
class _Fault:
    kind: Literal["status", "drop_before_body", "drop_after_processing", "reset_after_processing"]
    status: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)


class StubServer:
    def __init__(self, *, tls: bool = False) -> None:
        self.tls = tls
        self.latency = 0.0
        # One re-entrant condition guards all mutable state, so that wait_for predicates
        # may read the public properties while holding it.
        self._state = threading.Condition(threading.RLock())
        self._faults: deque[_Fault] = deque()
        self._resets_on_connect = 0
        self._exchanges: list[Exchange] = []
        self._open_sockets: set[socket.socket] = set()
        self._connections_accepted = 0
        self._max_concurrent = 0
        self._released = threading.Event()
        self._released.set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- provider hooks ---------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def error_response(self, status: int) -> Response:
        return Response.json(status, {"error": HTTPStatus(status).phrase})

    # -- lifecycle ----------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def running(cls, **options: Any) -> Iterator[Self]:
        """Start a stub (keyword options as for the constructor) and stop it afterwards."""
        stub = cls(**options)
        stub.start()
        try:
            yield stub
        finally:
            stub.stop()

    def start(self, port: int = 0) -> None:
        self._stopping.clear()
        context = local_ca().server_context() if self.tls else None
        self._server = _Server((HOST, port), self, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._stopping.set()
        self._released.set()
        self._server.shutdown()
        # Idle keep-alive connections would otherwise keep their threads blocked in a read.
        # socket.socket.shutdown, not SSLSocket.shutdown, which would unhook the TLS
        # object under the feet of the thread still reading from it.
        with self._state:
            sockets = list(self._open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        with self._state:
            self._state.wait_for(lambda: not self._open_sockets, timeout=WAIT_TIMEOUT)
        self._server.server_close()
        self._thread.join(timeout=WAIT_TIMEOUT)
        self._server = None
        self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash: what replaces https://api.<provider>.com."""
        return f"{'https' if self.tls else 'http'}://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url

    @property
    def ca_bundle(self) -> str | None:
        """PEM file of the CA that signed this stub's certificate (None without TLS)."""
        return str(local_ca().bundle_path) if self.tls else None

    # -- switches -------------------------------------------------------------------------

    def fail_next(self, status: int, count: int = 1, headers: Mapping[str, str] | None = None) -> None:
        """Answer the next `count` requests with the provider's error for `status` (extra headers optional)."""
        with self._state:
            self._faults.extend(_Fault("status", status, dict(headers or {})) for _ in range(count))

    def drop_next(self, count: int = 1, *, after_processing: bool = False) -> None:
        """Close the next `count` connections without an answer (see the module docstring)."""
        kind: Literal["drop_before_body", "drop_after_processing"] = (
            "drop_after_processing" if after_processing else "drop_before_body"
        )
        with self._state:
            self._faults.extend(_Fault(kind) for _ in range(count))

    def reset_next(self, count: int = 1, *, after_processing: bool = False) -> None:
        """Reset the next `count` new connections on accept, or (after_processing) the next
        `count` requests once processed (see the module docstring)."""
        with self._state:
            if after_processing:
                self._faults.extend(_Fault("reset_after_processing") for _ in range(count))
            else:
                self._resets_on_connect += count

    @contextlib.contextmanager
    def refusing(self) -> Iterator[None]:
        """Stop listening (connections are refused) until the block ends, on the same port."""
        port = self.port
        self.stop()
        try:
            yield
        finally:
            self.start(port)

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Process requests as they come but hold every response until the block ends."""
        self._released.clear()
        try:
            yield
        finally:
            self._released.set()

    def reset(self) -> None:
        """Back to a fresh start: no log, pending failures, latency or counts (connections still
        open stay open), and no provider records or marks (accepted messages, opt-outs...)."""
        with self._state:
            self._faults.clear()
            self._resets_on_connect = 0
            self._exchanges.clear()
            self._connections_accepted = 0
            self._max_concurrent = len(self._open_sockets)
            self.latency = 0.0
            self._reset_provider_state()

    def _reset_provider_state(self) -> None:
        """Subclasses clear their own records here (called with the state lock held)."""

    # -- observations -------------------------------------------------------------------

    @property
    def exchanges(self) -> list[Exchange]:
        with self._state:
            return list(self._exchanges)

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted since start (or reset): one per connection, however many requests."""
        with self._state:
            return self._connections_accepted

    @property
    def connections_open(self) -> int:
        with self._state:
            return len(self._open_sockets)

    @property
    def max_concurrent_connections(self) -> int:
        with self._state:
            return self._max_concurrent

    def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT_TIMEOUT, what: str = "condition") -> None:
        """Block until `predicate()` holds (re-checked on every change of state), or raise TimeoutError."""
        with self._state:
            if not self._state.wait_for(predicate, timeout):
                raise TimeoutError(f"{type(self).__name__}: {what} not reached within {timeout}s")

    # -- used by the server and subclasses ----------------------------------------------

    def _take_fault(self) -> _Fault | None:
        with self._state:
            return self._faults.popleft() if self._faults else None

    def _take_reset_on_connect(self) -> bool:
        with self._state:
            if self._resets_on_connect <= 0:
                return False
            self._resets_on_connect -= 1
            return True

    def _record(self, exchange: Exchange) -> None:
        with self._state:
            self._exchanges.append(exchange)
            self._state.notify_all()

    def _connection_opened(self, sock: socket.socket) -> None:
        with self._state:
            self._open_sockets.add(sock)
            self._connections_accepted += 1
            self._max_concurrent = max(self._max_concurrent, len(self._open_sockets))
            self._state.notify_all()

    def _connection_closed(self, sock: socket.socket) -> None:
        with self._state:
            self._open_sockets.discard(sock)
            self._state.notify_all()

    def _delay(self) -> None:
        if self.latency > 0:
            self._stopping.wait(self.latency)
        self._released.wait(HOLD_LIMIT)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], stub: StubServer, ssl_context: ssl.SSLContext | None) -> None:
        self.stub = stub
        self.ssl_context = ssl_context
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # The handler writes headers and body separately; without this, Nagle's algorithm
        # and the client's delayed ACK add ~40 ms to every response on a kept-alive connection.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            # The handshake happens in the connection's own thread (see _Handler.setup), so a
            # client that never completes it cannot stall the accept loop.
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # One thread per accepted connection, for all the requests it carries (keep-alive).
        self.stub._connection_opened(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.stub._connection_closed(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients going away, failed TLS handshakes and our own drops are expected here.
        if isinstance(sys.exc_info()[1], OSError | ValueError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1: connections stay open unless the client sends "Connection: close",
    # which is what lets a test see whether an SDK reuses its connections.
    protocol_version = "HTTP/1.1"
    server_version = "stub"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.was_reset = self.server.stub._take_reset_on_connect()
        if self.was_reset:
            _abort(self.request)
            return
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()

    def handle(self) -> None:
        if not self.was_reset:
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the exchange log replaces the access log

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _serve(self) -> None:
        stub = self.server.stub
        fault = stub._take_fault()
        request = Request(self.command, self.path, self.headers, b"", time.time())
        if fault is not None and fault.kind == "drop_before_body":
            stub._record(Exchange(request, None, processed=False))
            self.close_connection = True
            return
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            # Neither SDK streams its body; refusing keeps the stub small.
            self.close_connection = True
            self._write(Response.json(411, {"error": "Content-Length required"}))
            return
        request = replace(request, body=self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        if fault is not None and fault.kind == "status":
            base = stub.error_response(fault.status)
            response = replace(base, headers={**base.headers, **fault.headers})
        else:
            response = self._handle(request)
        dropped = fault is not None and fault.kind in ("drop_after_processing", "reset_after_processing")
        stub._record(Exchange(request, None if dropped else response, processed=True))
        stub._delay()
        if dropped:
            self.close_connection = True
            if fault is not None and fault.kind == "reset_after_processing":
                _abort(self.request)
            return
        self._write(response)

    def _handle(self, request: Request) -> Response:
        try:
            return self.server.stub.handle(request)
        except Exception:
            # A bug in the stub: answer 500 with the traceback rather than hang the client.
            text = traceback.format_exc()
            sys.stderr.write(text)
            return Response(500, text.encode(), {"Content-Type": "text/plain"})

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        # Always a Content-Length, so that the connection can carry the next request.
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(response.body)


def _abort(sock: socket.socket) -> None:
    """Close with a TCP reset (RST) rather than an orderly FIN: what a crashed peer or a load
    balancer giving up looks like."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
