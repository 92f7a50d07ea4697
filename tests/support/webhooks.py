"""A real webhook receiver on loopback, for the webhook tests.

``Receiver`` is an HTTP server (``http.server``, one thread per request) that verifies every
request as a product's backend would, with ``standardwebhooks.Webhook(secret).verify``, records
it, and answers according to its ``mode``: ``up`` (204), ``fail`` (500), ``gone`` (410) or
``slow`` (204 after ``slow_seconds``). ``stop()`` closes the socket (connections are refused)
and ``start()`` opens it again on the same port.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from sqlalchemy import select
from standardwebhooks import Webhook, WebhookVerificationError

from authgate.models import WebhookOutbox
from authgate.runtime import Runtime
from authgate.webhooks import WebhookEvent, user_data

Mode = Literal["up", "fail", "gone", "slow"]


def new_secret(size: int = 32) -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(size)).decode()


@dataclass(frozen=True)
class Received:
    webhook_id: str
    timestamp: str
    signature: str
    body: bytes
    #: Whether ``Webhook(secret).verify`` accepted the request.
    valid: bool
    #: The status the receiver answered.
    status: int
    received_at: float

    @property
    def payload(self) -> dict[str, Any]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value

    @property
    def type(self) -> str:
        return str(self.payload["type"])

    @property
    def data(self) -> dict[str, Any]:
        data = self.payload["data"]
        assert isinstance(data, dict)
        return data

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


class Receiver:
    def __init__(self, *, secret: str | None = None, path: str = "/hooks") -> None:
        self.secret = secret or new_secret()
        self.path = path
        self.mode: Mode = "up"
        self.slow_seconds = 3.0
        self._verifier = Webhook(self.secret)
        self._lock = threading.Lock()
        self._requests: list[Received] = []
        self._active = 0
        #: The most requests this receiver was handling at once.
        self.max_active = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- the server ----------------------------------------------------------------------

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver._handle(self, body, headers)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the socket: connections are refused until ``start()``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _handle(
        self, handler: BaseHTTPRequestHandler, body: bytes, headers: dict[str, str]
    ) -> None:
        with self._lock:
            self._active += 1
            self.max_active = max(self.max_active, self._active)
        try:
            self._verifier.verify(body, headers)
            valid = True
        except WebhookVerificationError:
            valid = False
        mode = self.mode
        if mode == "slow":
            time.sleep(self.slow_seconds)
        status = {"up": 204, "slow": 204, "fail": 500, "gone": 410}[mode]
        if not valid:
            status = 400
        record = Received(
            webhook_id=headers.get("webhook-id", ""),
            timestamp=headers.get("webhook-timestamp", ""),
            signature=headers.get("webhook-signature", ""),
            body=body,
            valid=valid,
            status=status,
            received_at=time.monotonic(),
        )
        with self._lock:
            self._requests.append(record)
            self._active -= 1
        try:
            handler.send_response(status)
            handler.send_header("content-length", "0")
            handler.end_headers()
        except OSError:  # the client gave up (a timed-out attempt)
            pass

    # -- what arrived --------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def config(self, events: list[str] | None = None) -> dict[str, Any]:
        """This receiver as an ``AUTHGATE_WEBHOOKS`` entry."""
        entry: dict[str, Any] = {"url": self.url, "secret": self.secret}
        if events is not None:
            entry["events"] = events
        return entry

    @property
    def requests(self) -> list[Received]:
        """Every request, in arrival order (failed attempts included)."""
        with self._lock:
            return list(self._requests)

    def accepted(self) -> list[Received]:
        """Requests answered 2xx, deduplicated by ``webhook-id`` as a receiver must (first kept)."""
        seen: set[str] = set()
        out: list[Received] = []
        for request in self.requests:
            if request.accepted and request.webhook_id not in seen:
                seen.add(request.webhook_id)
                out.append(request)
        return out

    def types(self) -> list[str]:
        return [request.type for request in self.accepted()]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    async def wait_until(
        self, condition: Callable[[Receiver], bool], timeout: float = 15.0
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self):
            if time.monotonic() > deadline:
                got = [(r.type, r.status) for r in self.requests]
                raise AssertionError(f"webhook receiver timed out; got {got}")
            await asyncio.sleep(0.02)

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        """At least ``count`` distinct events accepted; returns them in arrival order."""
        await self.wait_until(lambda r: len(r.accepted()) >= count, timeout)
        return self.accepted()


def webhook_overrides(*receivers: Receiver, **extra: Any) -> dict[str, Any]:
    """Settings that send every event to ``receivers``, with the short timeout and back-off
    the tests use."""
    return {
        "webhooks": [receiver.config() for receiver in receivers],
        "webhook_timeout": 1.0,
        "webhook_retry_base_seconds": 0.05,
        **extra,
    }


async def emit_numbered(runtime: Runtime, count: int, *, start: int = 0) -> list[str]:
    """``count`` ``user.updated`` events in one committed transaction, ``data.n`` numbering
    them; returns their user ids."""
    ids = [uuid.uuid4() for _ in range(count)]
    async with runtime.sessionmaker() as db, db.begin():
        for n, user_id in enumerate(ids, start=start):
            await runtime.webhooks.emit(db, WebhookEvent.user_updated, user_data(user_id, n=n))
    if runtime.webhook_dispatcher is not None:
        runtime.webhook_dispatcher.notify()
    return [str(i) for i in ids]


async def outbox_rows(runtime: Runtime) -> list[WebhookOutbox]:
    """Every webhook outbox row, in ``seq`` order."""
    async with runtime.sessionmaker() as db:
        return list((await db.scalars(select(WebhookOutbox).order_by(WebhookOutbox.seq))).all())


async def wait_for_rows(
    runtime: Runtime, condition: Callable[[list[WebhookOutbox]], bool], timeout: float = 15.0
) -> list[WebhookOutbox]:
    deadline = time.monotonic() + timeout
    while True:
        rows = await outbox_rows(runtime)
        if condition(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(
                f"outbox timed out: {[(r.event_type, r.status, r.attempts) for r in rows]}"
            )
        await asyncio.sleep(0.05)
