"""Requests to addresses people type in (webhook endpoints): where they may go, and going there.

A URL someone registers could point the server at itself or its network (server-side request
forgery): the database, Redis, a cloud's metadata service. So in production a target must be
https, and every address its host resolves to must be a public one. The check is made when
the URL is registered and again at every request, after DNS resolution, and the request then
goes to the address that was checked (pinned: the host name is still what TLS verifies and
what `Host` says), so that a name which resolves elsewhere a second time (DNS rebinding) gets
nowhere. Redirects are not followed, and only the start of an answer is read.

`allow_local` (development and tests: `WEBHOOKS_ALLOW_LOCAL`) also lets http and the loopback
and private ranges through, so that a receiver on the developer's machine can be tried.
Link-local addresses (where clouds answer with credentials) are refused even then.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import HTTPError

# (host, port) -> the addresses it resolves to, as text. Tests give their own.
Resolver = Callable[[str, int], list[str]]

MAX_URL_LENGTH = 2000
# What is kept of an answer's body: enough to show the start of an error page in the log.
MAX_BODY_BYTES = 4096

# Everything an IPv4 address may be written as besides the dotted quad (2130706433, 0x7f.1,
# 0177.0.0.1, 127.1): C's inet_aton reads all of them, so some resolvers and libraries do too.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]*))*\.?$", re.IGNORECASE)
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def N_(template: str) -> str:
    """Marks a message for the catalogs (`make messages`) without translating it here: the
    console translates a Reason where it shows it; the API answers in English."""
    return template


@dataclass(frozen=True)
class Reason:
    """Why something was refused: a message template with named values, English when printed."""

    template: str
    values: Mapping[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.template % self.values if self.values else self.template


class UnsafeUrl(ValueError):
    """A URL a request may not go to; `reason` says why, for the person who typed it."""

    def __init__(self, template: str, **values: object) -> None:
        self.reason = Reason(template, values)
        super().__init__(str(self.reason))


class OutboundError(RuntimeError):
    """The request did not get an answer: refused, reset, timed out, a bad certificate."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lowercased; an IP address without brackets
    port: int
    path: str  # the path and query sent

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class Answer:
    status: int
    elapsed_ms: int
    body: bytes  # at most MAX_BODY_BYTES of it


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise UnsafeUrl(N_("%(host)s does not resolve (%(error)s)"), host=host, error=str(error)) from None
    return [str(info[4][0]) for info in infos]


def parse_target(url: str, *, allow_local: bool) -> Target:
    """The URL's parts, if a request may go there as far as can be told without DNS.
    Raises UnsafeUrl."""
    if not isinstance(url, str) or not url:
        raise UnsafeUrl(N_("a URL is required"))
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(N_("the URL is longer than %(limit)d characters"), limit=MAX_URL_LENGTH)
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise UnsafeUrl(N_("the URL contains spaces or control characters"))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeUrl(N_("not a URL (%(error)s)"), error=str(error)) from None
    schemes = ("https", "http") if allow_local else ("https",)
    if parts.scheme.lower() not in schemes:
        raise UnsafeUrl(
            N_("the URL must start with https:// or http://") if allow_local else N_("the URL must start with https://")
        )
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl(N_("the URL may not carry a user name or password"))
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeUrl(N_("the URL has no host"))
    scheme = parts.scheme.lower()
    target = Target(
        scheme=scheme,
        host=_checked_host(host, allow_local),
        port=port or (443 if scheme == "https" else 80),
        path=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
    )
    return target


def _checked_host(host: str, allow_local: bool) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        check_address(str(address), allow_local=allow_local)
        return str(address)
    if _NUMERIC_HOST.fullmatch(host):
        # Not a dotted quad, yet numbers: an address in disguise. Refused whatever it decodes to.
        raise UnsafeUrl(N_("%(host)s is an address written in an unusual form; write the host name"), host=host)
    if host == "localhost" or host.endswith(".localhost"):
        if not allow_local:
            raise UnsafeUrl(N_("%(host)s is this machine"), host=host)
        return host
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise UnsafeUrl(N_("%(host)s is not a valid host name"), host=host) from None
    labels = ascii_host.split(".")
    if not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise UnsafeUrl(N_("%(host)s is not a valid host name"), host=host)
    return ascii_host


def check_address(text: str, *, allow_local: bool) -> None:
    """Raise UnsafeUrl unless a request may go to this IP address."""
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        raise UnsafeUrl(N_("%(address)s is not an IP address"), address=text) from None
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address inside an IPv6 one reaches that IPv4 address: judge that one.
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and address in ipaddress.IPv6Network("64:ff9b::/96"):  # NAT64
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            check_address(str(embedded), allow_local=allow_local)
            return
    if address.is_link_local or address.is_multicast or address.is_unspecified:
        raise UnsafeUrl(N_("%(address)s is a link-local, multicast or unspecified address"), address=str(address))
    if address.is_loopback or address.is_private:
        if allow_local:
            return
        raise UnsafeUrl(N_("%(address)s is a loopback or private address"), address=str(address))
    if address.is_reserved or not address.is_global:
        raise UnsafeUrl(N_("%(address)s is a reserved address"), address=str(address))


def resolve(target: Target, resolver: Resolver, *, allow_local: bool) -> str:
    """The address to connect to: the host's, after every address it resolves to passed the
    check (one bad one among good ones is refused too: the next lookup might pick it)."""
    try:
        ipaddress.ip_address(target.host)
    except ValueError:
        pass
    else:
        return target.host
    addresses = resolver(target.host, target.port)
    if not addresses:
        raise UnsafeUrl(N_("%(host)s does not resolve"), host=target.host)
    for address in addresses:
        check_address(address, allow_local=allow_local)
    return addresses[0].split("%", 1)[0]


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    allow_local: bool,
    resolver: Resolver = system_resolver,
    ca_certs: str | None = None,
) -> Answer:
    """POST `body` to `url`, on the checked address. Raises UnsafeUrl or OutboundError."""
    target = parse_target(url, allow_local=allow_local)
    address = resolve(target, resolver, allow_local=allow_local)
    pool: urllib3.HTTPConnectionPool
    budget = urllib3.Timeout(total=timeout)
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address,
            target.port,
            timeout=budget,
            retries=False,
            maxsize=1,
            # TLS is about the name, not the address we pinned: SNI and the certificate check use it.
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, timeout=budget, retries=False, maxsize=1)
    started = time.monotonic()
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Host": target.host_header},
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            excerpt = _read_start(response, started + timeout)
        finally:
            response.close()
    except HTTPError as error:
        raise OutboundError(_reason(error)) from None
    except OSError as error:
        raise OutboundError(str(error) or type(error).__name__) from None
    finally:
        pool.close()
    return Answer(response.status, int((time.monotonic() - started) * 1000), excerpt)


def _read_start(response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
    """The first MAX_BODY_BYTES of the answer, by the deadline: a server that drips its answer a
    byte at a time would otherwise hold the worker for a socket timeout per byte."""
    body = b""
    while len(body) < MAX_BODY_BYTES:
        if time.monotonic() > deadline:
            raise OutboundError("timed out reading the answer")
        chunk = response.read1(min(1024, MAX_BODY_BYTES - len(body)))
        if not chunk:
            break
        body += chunk
    return body


def _reason(error: HTTPError) -> str:
    reason = getattr(error, "reason", None) or error
    text = str(reason)
    # urllib3 names the pool (our pinned address) first; what happened is the end of the line.
    return text.rsplit(": ", 1)[-1] if "timed out" not in text else "timed out"
