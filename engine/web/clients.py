"""Who the client is: the address caps, hashes and logs count a request by.

`ClientAddress` wraps the WSGI app. It writes an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
what a dual-stack listener reports for an IPv4 client) as the IPv4 address it is, and believes
`X-Forwarded-For` and `X-Forwarded-Proto` only from a request that comes from one of the
trusted proxies (`TRUSTED_PROXIES`), walking back at most `TRUSTED_PROXY_COUNT` hops: the
first address that is not itself a trusted proxy is the client. Anyone else's headers are
ignored, so that a client that reaches the app directly cannot choose its own address.

`loggable_ip` is how an address appears in a log line: never raw, only the first characters
of the keyed hash that forwards, clicks and refusals store, so a line can be matched with
those rows but not with a person.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from flask import request

from engine.runtime import current_runtime

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOGGED_HASH_CHARACTERS = 12


def plain_address(text: str) -> str | None:
    """The address as caps and hashes count it (an IPv4-mapped one as IPv4); None for no address."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


class ClientAddress:
    """WSGI middleware: REMOTE_ADDR becomes the client's address, as described above."""

    def __init__(self, app: Any, proxies: Iterable[str], hops: int) -> None:
        self.app = app
        proxies = tuple(proxies)
        # `unix`: a proxy on this machine that connects over a unix socket (no address at all).
        self.unix_socket = "unix" in proxies
        self.proxies: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(p, strict=False) for p in proxies if p != "unix"
        )
        self.hops = hops if proxies else 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        remote = plain_address(environ.get("REMOTE_ADDR") or "")
        if remote is not None:
            environ["REMOTE_ADDR"] = remote
        from_proxy = (
            self._trusted(remote) if remote is not None else self.unix_socket and not environ.get("REMOTE_ADDR")
        )
        if self.hops and from_proxy:
            client = self._client(environ, remote)
            if client is not None:
                environ["REMOTE_ADDR"] = client
            scheme = self._forwarded_scheme(environ)
            if scheme:
                environ["wsgi.url_scheme"] = scheme
        return self.app(environ, start_response)

    def _trusted(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in network for network in self.proxies)

    def _client(self, environ: dict[str, Any], remote: str | None) -> str | None:
        forwarded = [a for a in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        client = remote
        for _ in range(self.hops):
            if not forwarded:
                break
            hop = plain_address(forwarded.pop())
            if hop is None:  # garbage a client put there: the last address we could trust stands
                break
            client = hop
            if not self._trusted(hop):
                break
        return client

    def _forwarded_scheme(self, environ: dict[str, Any]) -> str | None:
        # As werkzeug's ProxyFix reads it: the value the outermost of our proxies set.
        values = [v.strip().lower() for v in environ.get("HTTP_X_FORWARDED_PROTO", "").split(",") if v.strip()]
        if len(values) < self.hops:
            return None
        scheme = values[-self.hops]
        return scheme if scheme in ("http", "https") else None


def loggable_ip(address: str | None = None) -> str:
    """An address as a log line may show it: `ip:` and the start of its keyed hash."""
    address = address if address is not None else request.remote_addr
    if not address:
        return "ip:-"
    return "ip:" + current_runtime().hasher.hash_text(f"ip:{address}")[:LOGGED_HASH_CHARACTERS]
