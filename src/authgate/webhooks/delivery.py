"""One signed POST of an event to an endpoint: what the dispatcher and ``authgate webhooks test``
send.

An attempt succeeds on a 2xx answer and fails on anything else: another status (3xx included:
redirects are not followed; 410 too), a connection or TLS error, or no complete answer within
``AUTHGATE_WEBHOOK_TIMEOUT`` seconds (a wall-clock bound on the whole attempt, connecting
included, so a slow endpoint costs one failed attempt and never a stuck worker). The answer's
body is read, up to ``DRAIN_BYTES``, and dropped: only a response read to its end leaves its
connection to the client's pool, and a new connection for every attempt costs more CPU than
the rest of the attempt. Once the status has arrived, nothing that happens while reading the
body (an error, the timeout) changes the attempt's outcome. ``error`` is a short code for
``last_error`` and the logs (``http 500``, ``timeout``, ``ConnectError``): never the URL, a
header or the body.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from authgate import __version__
from authgate.config import Settings
from authgate.core.time import utc_now
from authgate.webhooks.endpoints import Endpoint

#: Connections a dispatcher keeps per process (one event in flight per endpoint).
MAX_CONNECTIONS = 32
#: An answer's body is read up to this many bytes (and dropped) so its connection is kept
#: alive; past it the connection is closed instead.
DRAIN_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    #: The answer's status, None when there was no answer.
    status: int | None = None
    #: Why it failed (a short code), None on success.
    error: str | None = None


def make_webhook_http_client(settings: Settings) -> httpx.AsyncClient:
    """The shared client of webhook deliveries (its owner closes it)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.webhook_timeout),
        follow_redirects=False,
        headers={"User-Agent": f"authgate-webhooks/{__version__}"},
        limits=httpx.Limits(
            max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
        ),
    )


class WebhookSender:
    def __init__(self, http: httpx.AsyncClient, timeout: float) -> None:
        self._http = http
        self._timeout = timeout

    async def send(self, endpoint: Endpoint, message_id: str, body: bytes) -> Attempt:
        """POST ``body`` signed for ``endpoint`` now (a fresh ``webhook-timestamp`` per attempt,
        the same ``webhook-id`` on every one)."""
        headers = {
            "content-type": "application/json",
            **endpoint.headers(message_id, utc_now(), body),
        }
        status: int | None = None
        try:
            async with asyncio.timeout(self._timeout):
                async with self._http.stream(
                    "POST", endpoint.url, content=body, headers=headers
                ) as response:
                    status = response.status_code
                    await _drain(response)
        except TimeoutError:
            if status is None:
                return Attempt(ok=False, error="timeout")
        except httpx.HTTPError as exc:
            if status is None:
                return Attempt(ok=False, error=type(exc).__name__)
        except Exception as exc:  # noqa: BLE001
            # The network boundary: whatever the client raised costs one attempt, never the
            # worker. Only the type: a message could quote the URL.
            if status is None:
                return Attempt(ok=False, error=f"unexpected {type(exc).__name__}")
        if status is None:  # pragma: no cover (the stream either answers or raises)
            return Attempt(ok=False, error="no answer")
        if 200 <= status < 300:
            return Attempt(ok=True, status=status)
        return Attempt(ok=False, status=status, error=f"http {status}")


async def _drain(response: httpx.Response) -> None:
    """Read the body to its end (so the connection is reused), or stop past ``DRAIN_BYTES``."""
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read > DRAIN_BYTES:
            return
