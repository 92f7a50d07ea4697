"""Who is calling: the client IP (X-Forwarded-For only from trusted proxies) and User-Agent."""

from __future__ import annotations

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

        The header is believed only when the direct peer is a trusted proxy; a garbage hop stops
        the walk and the last good address (or the peer) is used, so junk never opens a new bucket.
        """
        peer = request.client.host if request.client else None
        peer_ip = _parse(peer)
        if peer_ip is None or not self.trusts_anyone or not self._trusted(peer_ip):
            return str(peer_ip) if peer_ip is not None else peer
        header = ",".join(request.headers.getlist("x-forwarded-for"))
        current = peer_ip
        for hop in reversed([h.strip() for h in header.split(",") if h.strip()]):
            hop_ip = _parse(hop)
            if hop_ip is None:
                break
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


def _parse(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not value or len(value) > 64:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None
