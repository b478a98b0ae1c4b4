"""The SendGrid stub in a process of its own: `python -m bench.dispatch.stub [--plain]`.

Its CPU is then its own, not the workers'. It prints one JSON line on stdout (url,
api_key, ca_bundle, pid), then takes commands on stdin, one a line, and answers
each with one JSON line:

    report   what was accepted since the last reset: requests, connections, and per
             recipient the address and the `fluister_message` custom arg
    reset    forget everything accepted
    quit     stop serving and exit (so does the end of stdin)

Run from the repository root: it imports the stubs from tests/.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from typing import Any

from tests.stubs.sendgrid import SendGridStub

REFERENCE_ARG = "fluister_message"  # as engine.transports.sendgrid writes it
PLACEHOLDER_MARK = "%%fl"  # the engine's batch placeholders start with this


def report(stub: SendGridStub) -> dict[str, Any]:
    accepted = stub.accepted
    references: list[str] = []
    addresses: list[str] = []
    sizes: list[int] = []
    leftovers = 0
    for mail in accepted:
        payload = mail.payload
        sizes.append(len(mail.request.body))
        for personalization in payload["personalizations"]:
            args = {**payload.get("custom_args", {}), **personalization.get("custom_args", {})}
            references.append(args.get(REFERENCE_ARG, ""))
            addresses.extend(to["email"] for to in personalization.get("to", []))
    # Every placeholder must be substituted for every recipient: check what they would receive.
    for mail in accepted:
        for delivery in mail.deliveries():
            if PLACEHOLDER_MARK in (delivery.subject or "") or any(
                PLACEHOLDER_MARK in value for value in delivery.content.values()
            ):
                leftovers += 1
    duplicates = {ref: n for ref, n in Counter(references).items() if n > 1}
    return {
        "requests": len(accepted),
        "exchanges": len(stub.exchanges),
        "connections_accepted": stub.connections_accepted,
        "max_concurrent_connections": stub.max_concurrent_connections,
        "recipients": len(references),
        "distinct_references": len(set(references)),
        "duplicate_references": dict(list(duplicates.items())[:20]),
        "duplicate_count": sum(n - 1 for n in duplicates.values()),
        "distinct_addresses": len(set(addresses)),
        "unsubstituted_recipients": leftovers,
        "request_bytes_total": sum(sizes),
        "request_bytes_max": max(sizes, default=0),
        "references": references,
    }


def main() -> None:
    tls = "--plain" not in sys.argv[1:]
    stub = SendGridStub(tls=tls)
    stub.start()
    try:
        print(
            json.dumps({"url": stub.url, "api_key": stub.api_key, "ca_bundle": stub.ca_bundle, "pid": os.getpid()}),
            flush=True,
        )
        for line in sys.stdin:
            command = line.strip()
            if command == "report":
                answer: dict[str, Any] = report(stub)
            elif command == "reset":
                stub.reset()
                answer = {"ok": True}
            elif command == "quit":
                break
            else:
                answer = {"error": f"unknown command {command!r}"}
            print(json.dumps(answer), flush=True)
    finally:
        stub.stop()


if __name__ == "__main__":
    main()
