"""A provider stub in a process of its own: `python -m bench.dispatch.stub [--plain] [--twilio]`.

The SendGrid stub by default, the Twilio stub (Messages API 2010-04-01) with `--twilio`.
Its CPU is then its own, not the workers'. It prints one JSON line on stdout (url, the
credentials, ca_bundle, pid), then takes commands on stdin, one a line, and answers
each with one JSON line:

    report   what was accepted since the last reset: requests, connections, and per
             recipient the address and our reference (SendGrid: the `fluister_message`
             custom arg; Twilio: the `m` of the status callback URL)
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
from urllib.parse import parse_qs, urlsplit

from tests.stubs.base import StubServer
from tests.stubs.sendgrid import SendGridStub
from tests.stubs.twilio import TwilioStub

REFERENCE_ARG = "fluister_message"  # as engine.transports.sendgrid writes it
CALLBACK_REFERENCE = "m"  # as engine.transports.twilio puts it in the status callback URL
PLACEHOLDER_MARK = "%%fl"  # the engine's batch placeholders start with this


class SilentTwilioStub(TwilioStub):
    """The Twilio stub without its status callbacks: they would go to the benchmark's public
    URL, which nobody serves, and they come after the send, which is what is measured."""

    def start(self, port: int = 0) -> None:
        StubServer.start(self, port)


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
    return _summary(stub, references, addresses, sizes, leftovers)


def text_report(stub: TwilioStub) -> dict[str, Any]:
    messages = stub.messages
    references = [callback_reference(m.status_callback) for m in messages]
    return _summary(
        stub,
        references,
        [m.to for m in messages],
        [len(m.request.body) for m in messages],
        sum(1 for m in messages if PLACEHOLDER_MARK in m.body or "{{" in m.body),
    )


def callback_reference(url: str | None) -> str:
    """Our reference, as the status callback URL carries it (empty when there is none)."""
    if not url:
        return ""
    return parse_qs(urlsplit(url).query).get(CALLBACK_REFERENCE, [""])[0]


def _summary(
    stub: StubServer, references: list[str], addresses: list[str], sizes: list[int], leftovers: int
) -> dict[str, Any]:
    duplicates = {ref: n for ref, n in Counter(references).items() if n > 1}
    return {
        "requests": len(sizes),
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
    texts = "--twilio" in sys.argv[1:]
    stub: SendGridStub | SilentTwilioStub = SilentTwilioStub(tls=tls) if texts else SendGridStub(tls=tls)
    stub.start()
    try:
        credentials = (
            {"account_sid": stub.account_sid, "auth_token": stub.auth_token}
            if isinstance(stub, TwilioStub)
            else {"api_key": stub.api_key}
        )
        print(
            json.dumps({"url": stub.url, **credentials, "ca_bundle": stub.ca_bundle, "pid": os.getpid()}),
            flush=True,
        )
        for line in sys.stdin:
            command = line.strip()
            if command == "report":
                answer: dict[str, Any] = text_report(stub) if isinstance(stub, TwilioStub) else report(stub)
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
