"""How long a forged webhook body holds a worker: `python -m bench.hooks [--megabytes 9]`.

Starts the app under gunicorn (one sync worker, SQLite, the outbox for email, a Twilio auth
token) on a free loopback port, then posts a forged body of the given size to each provider
webhook, with a Content-Length and chunked, over a raw socket, and measures the time from the
first byte sent to the status line received, and how much of the body had been sent by then.
A body over the hook's limit should be refused in milliseconds, whatever its size; it
prints the median of `--runs` tries per case. Nothing is asserted: see bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO_ROOT, flask_command

CASES = [
    ("/hooks/twilio/status", "application/x-www-form-urlencoded", {"X-Twilio-Signature": "Zm9yZ2Vk"}),
    ("/hooks/twilio/inbound", "application/x-www-form-urlencoded", {"X-Twilio-Signature": "Zm9yZ2Vk"}),
    (
        "/hooks/sendgrid/events",
        "application/json",
        {"X-Twilio-Email-Event-Webhook-Signature": "Zm9yZ2Vk", "X-Twilio-Email-Event-Webhook-Timestamp": "0"},
    ),
]
CHUNK = 64 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=9.0, help="size of the forged body (default 9)")
    parser.add_argument("--runs", type=int, default=5, help="tries per case (default 5)")
    args = parser.parse_args()
    size = int(args.megabytes * 1000 * 1000)
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "FLUISTER_ENV": "development",
            "INSTANCE_PATH": folder,
            "DATABASE_URL": f"sqlite:///{Path(folder) / 'bench.db'}",
            "TWILIO_AUTH_TOKEN": "bench-twilio-token",
            "SENDGRID_WEBHOOK_PUBLIC_KEY": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE" + "A" * 88,
            "REDIS_URL": "",
        }
        flask_command(env, "db", "upgrade")
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers=1", f"--bind=127.0.0.1:{port}", "--timeout=120", "wsgi:app"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for(port)
            print(f"forged body of {size:,} bytes, median of {args.runs} tries, 1 gunicorn sync worker")
            print(f"{'hook':28} {'framing':15} {'status':>6} {'refused after':>14} {'body sent':>12}")
            for path, content_type, headers in CASES:
                for chunked in (False, True):
                    results = [_post(port, path, content_type, headers, size, chunked) for _ in range(args.runs)]
                    status = results[0][0]
                    seconds = statistics.median(r[1] for r in results)
                    sent = statistics.median(r[2] for r in results)
                    framing = "chunked" if chunked else "Content-Length"
                    print(f"{path:28} {framing:15} {status:>6} {seconds * 1000:>11.1f} ms {sent:>12,}")
        finally:
            server.terminate()
            server.wait(timeout=30)


def _post(
    port: int, path: str, content_type: str, headers: dict[str, str], size: int, chunked: bool
) -> tuple[int, float, int]:
    """(status, seconds until the status line, body bytes sent by then)."""
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {content_type}", "Connection: close"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head += ["Transfer-Encoding: chunked"] if chunked else [f"Content-Length: {size}"]
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.setblocking(False)
        started = time.perf_counter()
        pending = ("\r\n".join(head) + "\r\n\r\n").encode()
        sent = 0
        answer = b""
        while b"\r\n" not in answer:
            try:
                answer += connection.recv(4096)
                if not answer:
                    break
                continue
            except BlockingIOError:
                pass
            if not pending and sent < size:
                n = min(CHUNK, size - sent)
                pending = (f"{n:x}\r\n".encode() + b"a" * n + b"\r\n") if chunked else b"a" * n
                sent += n
            if pending:
                try:
                    pending = pending[connection.send(pending) :]
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    time.sleep(0.0005)
            else:
                time.sleep(0.0005)
        elapsed = time.perf_counter() - started
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, elapsed, sent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


if __name__ == "__main__":
    main()
