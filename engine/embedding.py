"""The origins a campaign's form may be embedded on (a brand's own site), as the console
takes them and the browser enforces them (`frame-ancestors`, engine.web.security).

An origin is exactly what a browser sends in its Origin header and matches in
`frame-ancestors`: a scheme, a host and a port when it is not the scheme's default
(`https://shop.example`, `http://localhost:8080`). No path, no wildcard: a brand lists each
site it puts the button on, and a `*.example` would let any subdomain (a user's page on a
hosting service) frame the form. Plain http only for the machine's own names, where a brand
tries the button before it goes live.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# What a campaign may list: enough for a brand's shops in every country, not a directory.
MAX_EMBED_ORIGINS = 20
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
_HOST = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")
_ORIGIN = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>\[[0-9a-f:]+\]|[^/:?#@\s]+)(?::(?P<port>[0-9]{1,5}))?")
_DEFAULT_PORTS = {"https": 443, "http": 80}


class InvalidOrigin(ValueError):
    """Text that is not an origin a campaign may be embedded on; the message says why."""


def parse_origin(text: str) -> str:
    """The origin as a browser writes it (lower case, no default port), or InvalidOrigin."""
    typed = text.strip()
    shown = typed[:80]
    candidate = typed.lower()
    if candidate.count("/") == 3 and candidate.endswith("/"):  # `https://shop.example/`, as an address bar shows it
        candidate = candidate[:-1]
    match = _ORIGIN.fullmatch(candidate)
    if "*" in typed:
        raise InvalidOrigin(f"{shown!r}: no wildcards; list each site's origin (https://shop.example)")
    if match is None:
        raise InvalidOrigin(f"{shown!r} is not an origin: write the scheme and host only, as https://shop.example")
    scheme, host, port = match["scheme"], match["host"], match["port"]
    if scheme not in _DEFAULT_PORTS:
        raise InvalidOrigin(f"{shown!r}: an origin starts with https:// (or http:// for localhost)")
    if scheme == "http" and host not in LOCAL_HOSTS:
        raise InvalidOrigin(f"{shown!r}: use https:// (plain http only for localhost and 127.0.0.1)")
    if not host.startswith("[") and _HOST.fullmatch(host) is None:
        raise InvalidOrigin(f"{shown!r}: {host} is not a host name")
    if port is not None and not 0 < int(port) < 65536:
        raise InvalidOrigin(f"{shown!r}: the port must be between 1 and 65535")
    if port is None or int(port) == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{int(port)}"


def origins_problem(origins: Iterable[str]) -> str | None:
    """Why a list of embed origins cannot be saved, or None."""
    listed = list(origins)
    if len(listed) > MAX_EMBED_ORIGINS:
        return f"at most {MAX_EMBED_ORIGINS} origins"
    seen: set[str] = set()
    for text in listed:
        try:
            origin = parse_origin(text)
        except InvalidOrigin as error:
            return str(error)
        if origin in seen:
            return f"{origin!r} is listed twice"
        seen.add(origin)
    return None


def parsed_origins(origins: Iterable[str]) -> tuple[str, ...]:
    """The origins as stored and compared: each as a browser writes it (checked first)."""
    return tuple(parse_origin(text) for text in origins)
