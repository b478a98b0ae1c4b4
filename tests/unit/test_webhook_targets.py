"""Where a webhook may be sent (engine.outbound): in production only to https URLs of public
addresses, however an address is spelled; in development http and loopback too."""

from __future__ import annotations

import pytest

from engine.outbound import UnsafeUrl, check_address, parse_target, resolve

REFUSED_ANYWHERE = [
    "https://169.254.169.254/latest/meta-data",  # a cloud's metadata service (link-local)
    "https://[fe80::1]/",
    "https://224.0.0.1/",  # multicast
    "https://0.0.0.0/",
    "https://[::]/",
    "https://[::ffff:169.254.169.254]/",  # link-local behind an IPv4-mapped IPv6 address
    "https://2130706433/",  # 127.0.0.1 as one decimal number
    "https://0177.0.0.1/",  # octal
    "https://0x7f.0.0.1/",  # hexadecimal
    "https://127.1/",  # the short form
    "https://017700000001/",
    "https://hooks.example@127.0.0.1/",  # a user name to make a private address look like a name
    "https://user:pass@hooks.example/",
    "ftp://hooks.example/",
    "javascript:alert(1)",
    "https:///no-host",
    "https://hooks example/",
    "",
]
REFUSED_IN_PRODUCTION = [
    "http://hooks.example/",  # plain http
    "https://127.0.0.1/",
    "https://127.255.0.9:8443/",
    "https://10.1.2.3/",
    "https://172.16.0.1/",
    "https://192.168.1.1/",
    "https://[::1]/",
    "https://[::ffff:127.0.0.1]/",  # IPv4-mapped loopback
    "https://[::ffff:7f00:1]/",  # the same, in hex
    "https://[::ffff:10.0.0.1]/",
    "https://[fd00::1]/",  # unique local
    "https://[2002:7f00:1::]/",  # 6to4 around 127.0.0.1
    "https://[64:ff9b::a00:1]/",  # NAT64 around 10.0.0.1
    "https://localhost/",
    "https://api.localhost/",
    "https://100.64.0.1/",  # carrier-grade NAT: not public
    "https://192.0.2.1/",  # documentation range: reserved
    "https://240.0.0.1/",  # reserved
]


@pytest.mark.parametrize("url", REFUSED_ANYWHERE + REFUSED_IN_PRODUCTION)
def test_production_refuses(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        parse_target(url, allow_local=False)


@pytest.mark.parametrize("url", REFUSED_ANYWHERE)
def test_development_still_refuses(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        parse_target(url, allow_local=True)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/hook", "http://localhost:5001/", "http://[::1]:9000/", "https://10.0.0.5/in"]
)
def test_development_allows_a_local_receiver(url: str) -> None:
    assert parse_target(url, allow_local=True).port


def test_a_public_https_url_is_taken_apart() -> None:
    target = parse_target("https://Hooks.Example:8443/in/fluister?source=x#frag", allow_local=False)
    parts = (target.scheme, target.host, target.port, target.path)
    assert parts == ("https", "hooks.example", 8443, "/in/fluister?source=x")
    assert target.host_header == "hooks.example:8443"
    assert parse_target("https://8.8.8.8", allow_local=False).path == "/"
    assert parse_target("https://bücher.example/", allow_local=False).host == "xn--bcher-kva.example"


def test_every_address_a_name_resolves_to_is_checked() -> None:
    target = parse_target("https://hooks.example/", allow_local=False)
    assert resolve(target, lambda host, port: ["93.184.216.34"], allow_local=False) == "93.184.216.34"
    for addresses in (["127.0.0.1"], ["93.184.216.34", "10.0.0.1"], ["::ffff:127.0.0.1"], ["fe80::1%eth0"], []):
        with pytest.raises(UnsafeUrl):
            resolve(target, lambda host, port, found=addresses: found, allow_local=False)


def test_an_address_literal_is_not_resolved() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise AssertionError("an IP address needs no lookup")

    assert resolve(parse_target("https://8.8.4.4/", allow_local=False), resolver, allow_local=False) == "8.8.4.4"


def test_link_local_is_refused_even_in_development() -> None:
    with pytest.raises(UnsafeUrl):
        check_address("169.254.169.254", allow_local=True)
    check_address("127.0.0.1", allow_local=True)
