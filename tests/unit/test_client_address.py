"""The client's address behind trusted proxies, hop by hop (engine.web.clients.ClientAddress)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.web.clients import ClientAddress, plain_address

PROXIES = ("10.0.0.0/8", "fd00::/8", "unix")


def seen_by_app(hops: int, remote: str, forwarded_for: str = "", proto: str = "") -> tuple[str, str]:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        return []

    environ = {"REMOTE_ADDR": remote, "wsgi.url_scheme": "http"}
    if forwarded_for:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded_for
    if proto:
        environ["HTTP_X_FORWARDED_PROTO"] = proto
    ClientAddress(app, PROXIES, hops)(environ, None)
    return seen["REMOTE_ADDR"], seen["wsgi.url_scheme"]


@pytest.mark.parametrize(
    ("hops", "remote", "forwarded_for", "proto", "client"),
    [
        (1, "10.0.0.5", "198.51.100.7", "https", ("198.51.100.7", "https")),
        # A client's own X-Forwarded-For is to the left of what our proxy appended.
        (1, "10.0.0.5", "6.6.6.6, 198.51.100.7", "https", ("198.51.100.7", "https")),
        # Two proxies: the outer one's entry is a trusted proxy too, so one step further.
        (2, "10.0.0.5", "6.6.6.6, 198.51.100.7, 10.0.0.9", "https, http", ("198.51.100.7", "https")),
        # A request that bypassed the outer proxy: the first untrusted address is the client.
        (2, "10.0.0.5", "6.6.6.6, 198.51.100.7", "", ("198.51.100.7", "http")),
        # Not from a proxy at all: the headers are ignored.
        (1, "203.0.113.50", "198.51.100.7", "https", ("203.0.113.50", "http")),
        # Garbage in the header: the last address that could be trusted stands.
        (2, "10.0.0.5", "<script>, 10.0.0.9", "", ("10.0.0.9", "http")),
        (1, "fd00::1", "2001:db8::7", "https", ("2001:db8::7", "https")),
        (1, "::ffff:10.0.0.5", "::ffff:198.51.100.7", "", ("198.51.100.7", "http")),
        # A proxy on this machine over a unix socket: no address of its own.
        (1, "", "198.51.100.7", "https", ("198.51.100.7", "https")),
        # No proxies trusted: an IPv4-mapped address is still written as IPv4.
        (0, "::ffff:198.51.100.7", "6.6.6.6", "https", ("198.51.100.7", "http")),
    ],
)
def test_the_client_is_the_first_untrusted_address_within_the_hops(
    hops: int, remote: str, forwarded_for: str, proto: str, client: tuple[str, str]
) -> None:
    assert seen_by_app(hops, remote, forwarded_for, proto) == client


def test_plain_addresses() -> None:
    assert plain_address("::ffff:192.0.2.1") == "192.0.2.1"
    assert plain_address(" 2001:DB8::1 ") == "2001:db8::1"
    assert plain_address("unix:/tmp/socket") is None
