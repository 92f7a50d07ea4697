"""Who is calling: the client IP (X-Forwarded-For only from trusted proxies) and User-Agent."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from functools import cached_property

from starlette.requests import Request

from authgate.config import Settings
from authgate.core.text import scrub_header

MAX_USER_AGENT = 512


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip_address: str | None
    user_agent: str | None


class ClientResolver:
    def __init__(self, settings: Settings) -> None:
        self._networks = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]

    @cached_property
    def trusts_anyone(self) -> bool:
        return bool(self._networks)

    def _trusted(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(ip in net for net in self._networks)

    def client_ip(self, request: Request) -> str | None:
        """The right-most address in X-Forwarded-For that is not a trusted proxy.

        The header is believed only when the direct peer is a trusted proxy. Hops may carry a
        port (``1.2.3.4:5678``, ``[2001:db8::1]:443``) as some proxies write them. A hop that is
        not an address at all stops the walk and yields ``unparsable-<digest of the hop>``: never
        the proxy's own address (one bucket for every client behind it) and never the raw text.
        """
        peer = request.client.host if request.client else None
        peer_ip = _parse(peer)
        if peer_ip is None or not self.trusts_anyone or not self._trusted(peer_ip):
            return str(peer_ip) if peer_ip is not None else peer
        header = ",".join(request.headers.getlist("x-forwarded-for"))
        current = peer_ip
        for hop in reversed([h.strip() for h in header.split(",") if h.strip()]):
            hop_ip = _parse_hop(hop)
            if hop_ip is None:
                return unparsable_key(hop)
            current = hop_ip
            if not self._trusted(hop_ip):
                break
        return str(current)

    def info(self, request: Request) -> ClientInfo:
        ua = request.headers.get("user-agent")
        # Stored in sessions and shown in emails: no NUL (PostgreSQL refuses it), no CR/LF.
        return ClientInfo(
            self.client_ip(request), scrub_header(ua[:MAX_USER_AGENT]) if ua else None
        )


def unparsable_key(hop: str) -> str:
    """A stable client key for a hop that is not an address (fits the 64-character column)."""
    return "unparsable-" + hashlib.sha256(hop.encode("utf-8", "replace")).hexdigest()[:24]


def _parse_hop(hop: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An X-Forwarded-For hop: an address, ``v4:port`` or ``[v6]`` / ``[v6]:port``."""
    if hop.startswith("["):
        inside, bracket, rest = hop[1:].partition("]")
        if not bracket or (rest and not _is_port(rest)):
            return None
        parsed = _parse(inside)
        return parsed if isinstance(parsed, ipaddress.IPv6Address) else None
    if hop.count(":") == 1:
        host, _, port = hop.partition(":")
        parsed = _parse(host)
        ok = isinstance(parsed, ipaddress.IPv4Address) and _is_port(":" + port)
        return parsed if ok else None
    return _parse(hop)


def _is_port(text: str) -> bool:
    digits = text[1:]
    return text.startswith(":") and digits.isascii() and digits.isdigit() and len(digits) <= 5


def _parse(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not value or len(value) > 64:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None
