"""X-Forwarded-For from trusted proxies: hops with ports are parsed; junk never shares a bucket."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from authgate.config import Settings
from authgate.core.http import ClientResolver, unparsable_key

PROXY = "10.0.0.5"


def _request(peer: str, *forwarded: str, user_agent: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", value.encode("latin-1")) for value in forwarded]
    if user_agent is not None:
        headers.append((b"user-agent", user_agent.encode("latin-1")))
    scope = {"type": "http", "headers": headers, "client": (peer, 4321), "path": "/"}
    return Request(scope)


def _resolver(*proxies: str) -> ClientResolver:
    return ClientResolver(Settings(_env_file=None, trusted_proxies=list(proxies)))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("198.51.100.9", "198.51.100.9"),
        ("198.51.100.9:5678", "198.51.100.9"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("203.0.113.1, 198.51.100.9:5678", "198.51.100.9"),
        # the right-most untrusted hop wins, through trusted hops with ports
        ("198.51.100.9:1, 10.0.0.7:80", "198.51.100.9"),
        ("[2001:db8::2]:1, [fd00::1]:2", "2001:db8::2"),
    ],
)
def test_hops_with_ports_are_parsed(header: str, expected: str) -> None:
    resolver = _resolver("10.0.0.0/8", "fd00::/8")
    assert resolver.client_ip(_request(PROXY, header)) == expected


@pytest.mark.parametrize(
    "hop",
    [
        "garbage",
        "unknown",
        "1.2.3.4:notaport",
        "1.2.3.4:123456",
        "[1.2.3.4]:80",
        "[2001:db8::1",
        "[2001:db8::1]x",
        "2001:db8::1:99999999",
        "_hidden",
    ],
)
def test_unparsable_hop_is_a_bucket_of_its_own(hop: str) -> None:
    resolver = _resolver("10.0.0.0/8")
    got = resolver.client_ip(_request(PROXY, f"198.51.100.9, {hop}"))
    assert got == unparsable_key(hop)
    assert got != PROXY and got != "198.51.100.9"
    assert len(got) <= 64 and hop not in got
    other = resolver.client_ip(_request(PROXY, f"198.51.100.9, {hop}x"))
    assert other != got  # two junk spellings are two buckets, not one shared one


def test_untrusted_peer_is_never_believed() -> None:
    resolver = _resolver("10.0.0.0/8")
    assert resolver.client_ip(_request("198.51.100.1", "1.1.1.1:80")) == "198.51.100.1"
    assert _resolver().client_ip(_request(PROXY, "1.1.1.1")) == PROXY


def test_user_agent_is_scrubbed() -> None:
    info = _resolver().info(_request(PROXY, user_agent="a\x00b\r\nc\x7fd\xe9"))
    assert info.user_agent == "a\ufffdb\ufffd\ufffdc\ufffdd\xe9"
