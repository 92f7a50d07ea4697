"""WebhookDispatcher: deliver the webhook outbox, at least once, in order per endpoint.

It runs where mail is delivered — inside ``serve`` next to the email dispatcher
(``AUTHGATE_EMAIL_DISPATCHER_ENABLED``) or in ``authgate worker`` — and only when endpoints are
configured. A loop claims, in a short transaction, the first due event of each endpoint that has
nothing in flight (``WebhookRepository.claim``: one event in flight per endpoint, in order of
creation, safe with several processes), starts one delivery task per claimed event and goes
back to claiming; so a slow endpoint (up to ``AUTHGATE_WEBHOOK_TIMEOUT`` per attempt) holds up
only its own events. When a delivery ends, the loop wakes and claims the endpoint's next event.

Each attempt is recorded by a conditional UPDATE that applies only while this worker holds the
claim: a 2xx marks the event ``delivered`` (its body wiped); anything else schedules a retry
after ``base · 2^(attempts-1)`` seconds capped at 5 minutes, with jitter (between half and all of
it), until the event's 24 hours are over, when it is ``dead`` (``authgate webhooks dead``). A 410
is logged (``webhook.gone``) and retried like any failure: the operator removes the endpoint.

At least once: a worker that dies after the endpoint answered but before recording it sends the
event again when its lease runs out, with the same ``webhook-id``; receivers dedupe on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authgate.config import Settings
from authgate.core.metrics import (
    WEBHOOK_DEAD,
    WEBHOOK_DELIVERED,
    WEBHOOK_FAILED,
    WEBHOOK_OLDEST_AGE,
)
from authgate.core.security.crypto import DecryptionError
from authgate.core.tasks import finish
from authgate.core.time import utc_now
from authgate.models.webhook_outbox import WebhookOutbox
from authgate.webhooks.delivery import Attempt, WebhookSender, make_webhook_http_client
from authgate.webhooks.repository import WebhookRepository
from authgate.webhooks.service import WebhookService

logger = logging.getLogger("authgate.webhooks")

#: How long a claim is held: well past the longest attempt (``webhook_timeout`` ≤ 30 s).
CLAIM_LEASE = timedelta(seconds=60)
#: Longest pause between two attempts.
RETRY_CAP_SECONDS = 300.0
#: Endpoints delivered to at once by one dispatcher.
IN_FLIGHT = 16
#: How often the age-of-the-oldest-event gauge is refreshed.
GAUGE_INTERVAL = timedelta(seconds=5)
#: How often delivered events past their retention are deleted.
PRUNE_INTERVAL = timedelta(hours=1)
#: Waited for in-flight attempts on stop, beyond the attempt timeout.
STOP_GRACE = 5.0

_random = random.SystemRandom()


def retry_delay(attempts: int, base: float, cap: float = RETRY_CAP_SECONDS) -> float:
    """After ``attempts`` failed attempts: between half and all of ``min(cap, base·2^(n-1))``."""
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    return _random.uniform(ceiling / 2, ceiling)


def _default_worker_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class WebhookDispatcher:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        service: WebhookService,
        *,
        http: httpx.AsyncClient | None = None,
        worker_id: str | None = None,
        repository: WebhookRepository | None = None,
    ) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        self._service = service
        self._repo = repository or WebhookRepository()
        self._http = http
        self._owns_http = http is None
        self._sender: WebhookSender | None = None
        self.worker_id = (worker_id or _default_worker_id())[:64]
        self._keys = [endpoint.key for endpoint in service.endpoints]
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._last_gauge: datetime | None = None
        self._last_prune: datetime | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def _ensure_sender(self) -> WebhookSender:
        if self._sender is None:
            if self._http is None:
                self._http = make_webhook_http_client(self._settings)
            self._sender = WebhookSender(self._http, self._settings.webhook_timeout)
        return self._sender

    async def start(self) -> None:
        """Run the delivery loop as a background task (idempotent; nothing without endpoints)."""
        if not self._service.enabled or (self._task is not None and not self._task.done()):
            return
        self._ensure_sender()
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name=f"webhook-dispatcher:{self.worker_id}")
        self._task.add_done_callback(self._on_done)
        logger.info(
            "webhook.dispatcher.started",
            extra={"worker_id": self.worker_id, "endpoints": len(self._keys)},
        )

    async def stop(self) -> None:
        """Stop claiming, let in-flight attempts finish (up to the attempt timeout and a few
        seconds), cancel the rest and hand their events back; close the client it made."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            # The loop ends by itself after its current claim; cancelled if that takes longer
            # (or when the caller gives up waiting).
            await finish(task, grace=STOP_GRACE)
        await self._drain()
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None
            self._sender = None
        if task is not None:
            logger.info("webhook.dispatcher.stopped", extra={"worker_id": self.worker_id})

    async def _drain(self) -> None:
        """Wait for in-flight attempts (one attempt's timeout and a grace), then cancel them."""
        tasks = dict(self._in_flight)
        if not tasks:
            return
        grace = self._settings.webhook_timeout + STOP_GRACE
        _done, pending = await asyncio.wait(tasks.values(), timeout=grace)
        for pending_task in pending:
            pending_task.cancel()
        for pending_task in pending:
            await finish(pending_task)
        unfinished = {seq for seq, t in tasks.items() if t in pending}
        if unfinished:
            with contextlib.suppress(SQLAlchemyError, OSError):
                await self._release(unfinished)

    @property
    def stop_timeout(self) -> float:
        """How long ``stop()`` waits at most, besides releasing events: the loop's grace, then
        in-flight attempts for one attempt's timeout and a grace."""
        return STOP_GRACE + self._settings.webhook_timeout + STOP_GRACE

    def _on_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # Loud: events would otherwise pile up silently.
            logger.error(
                "webhook.dispatcher.crashed",
                extra={"worker_id": self.worker_id, "error": type(task.exception()).__name__},
            )

    def notify(self) -> None:
        """Wake the loop now (after a commit that wrote events). Safe to call any time."""
        self._wake.set()

    async def _loop(self) -> None:
        interval = self._settings.email_poll_interval
        while not self._stopping:
            self._wake.clear()
            try:
                free = IN_FLIGHT - len(self._in_flight)
                if free > 0:
                    rows = await self._claim(free)
                    if self._stopping and rows:
                        # stop() came during the claim: hand the events back, start nothing.
                        await self._release({row.seq for row in rows})
                        break
                    for row in rows:
                        self._spawn(row)
                await self._maybe_refresh_gauge()
                await self._maybe_prune()
            except (SQLAlchemyError, OSError) as exc:
                # The database is unavailable: wait and retry; leases run out, nothing is lost.
                logger.warning(
                    "webhook.dispatcher.db_error",
                    extra={"worker_id": self.worker_id, "error": type(exc).__name__},
                )
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)

    def _spawn(self, row: WebhookOutbox) -> None:
        task = asyncio.create_task(self._deliver(row), name=f"webhook:{row.message_id}")
        self._in_flight[row.seq] = task

        def finished(_task: asyncio.Task[None]) -> None:
            self._in_flight.pop(row.seq, None)
            # The endpoint's next event may be claimed now.
            self._wake.set()

        task.add_done_callback(finished)

    # -- one pass (tests, operators) ---------------------------------------------------------

    async def run_once(self, limit: int = IN_FLIGHT) -> int:
        """Claim the first due event of up to ``limit`` endpoints and try each once; wait for
        them; return how many were tried."""
        self._ensure_sender()
        rows = await self._claim(limit)
        if rows:
            await asyncio.gather(*(self._deliver(row) for row in rows))
        return len(rows)

    async def _claim(self, limit: int) -> list[WebhookOutbox]:
        async with self._sessionmaker() as db, db.begin():
            return await self._repo.claim(
                db,
                now=utc_now(),
                endpoint_keys=self._keys,
                limit=limit,
                worker_id=self.worker_id,
                lease=CLAIM_LEASE,
                serialize=not self._settings.is_sqlite,
            )

    # -- one attempt ------------------------------------------------------------------------

    async def _deliver(self, row: WebhookOutbox) -> None:
        endpoint = self._service.endpoint(row.endpoint_key)
        if endpoint is None:  # not claimable: the claim only takes configured endpoints
            return
        try:
            try:
                body = self._service.body_of(row)
            except (DecryptionError, ValueError) as exc:
                # Undecryptable (its key left the ring): no retry can fix it.
                await asyncio.shield(
                    self._record(
                        row,
                        endpoint.name,
                        Attempt(ok=False, error=f"unreadable {type(exc).__name__}"),
                        final=True,
                    )
                )
                return
            attempt = await self._ensure_sender().send(endpoint, row.message_id, body)
            await asyncio.shield(self._record(row, endpoint.name, attempt))
        except (SQLAlchemyError, OSError) as exc:
            # Recording failed: the lease runs out and the event is sent again (same id).
            logger.warning(
                "webhook.record_failed",
                extra={"webhook_id": row.message_id, "error": type(exc).__name__},
            )

    async def _record(
        self, row: WebhookOutbox, name: str, attempt: Attempt, *, final: bool = False
    ) -> None:
        now = utc_now()
        attempts = row.attempts + 1
        fields: dict[str, Any] = {
            "webhook_id": row.message_id,
            "event_type": row.event_type,
            "endpoint": name,
            "attempts": attempts,
            "http_status": attempt.status,
        }
        if attempt.ok:
            async with self._sessionmaker() as db, db.begin():
                owned = await self._repo.mark_delivered(db, row.seq, self.worker_id, now=now)
            WEBHOOK_DELIVERED.labels(endpoint=name).inc()
            logger.info("webhook.delivered", extra={**fields, "lost_claim": not owned})
            return
        error = attempt.error or "failed"
        WEBHOOK_FAILED.labels(endpoint=name).inc()
        if attempt.status == 410:
            # The receiver says the endpoint is gone for good; the operator decides (the
            # schedule is kept: a misrouted 410 must not drop events).
            logger.warning("webhook.gone", extra=fields)
        dead = final or now >= row.expires_at
        retry_at: datetime | None = None
        if not dead:
            delay = retry_delay(attempts, self._settings.webhook_retry_base_seconds)
            retry_at = min(now + timedelta(seconds=delay), row.expires_at)
        async with self._sessionmaker() as db, db.begin():
            await self._repo.mark_failed(
                db, row.seq, self.worker_id, error=error, retry_at=retry_at
            )
        if dead:
            WEBHOOK_DEAD.labels(endpoint=name).inc()
            logger.error("webhook.dead", extra={**fields, "error": error})
        else:
            logger.warning("webhook.retry", extra={**fields, "error": error})

    async def _release(self, seqs: set[int]) -> None:
        async with self._sessionmaker() as db, db.begin():
            await self._repo.release(db, seqs, self.worker_id)
        logger.info("webhook.released", extra={"worker_id": self.worker_id, "count": len(seqs)})

    # -- upkeep -----------------------------------------------------------------------------

    async def refresh_gauge(self) -> None:
        """Set the age of each endpoint's oldest undelivered event (0 when none waits)."""
        async with self._sessionmaker() as db:
            oldest = await self._repo.oldest_undelivered(db, self._keys)
        now = utc_now()
        for endpoint in self._service.endpoints:
            created = oldest.get(endpoint.key)
            age = max(0.0, (now - created).total_seconds()) if created is not None else 0.0
            WEBHOOK_OLDEST_AGE.labels(endpoint=endpoint.name).set(age)

    async def _maybe_refresh_gauge(self) -> None:
        now = utc_now()
        if self._last_gauge is None or now - self._last_gauge >= GAUGE_INTERVAL:
            self._last_gauge = now
            await self.refresh_gauge()

    async def prune(self) -> int:
        """Delete events delivered more than ``webhook_delivered_retention_days`` ago."""
        cutoff = utc_now() - timedelta(days=self._settings.webhook_delivered_retention_days)
        async with self._sessionmaker() as db, db.begin():
            count = await self._repo.prune(db, cutoff)
        if count:
            logger.info("webhook.pruned", extra={"count": count})
        return count

    async def _maybe_prune(self) -> None:
        now = utc_now()
        if self._last_prune is None or now - self._last_prune >= PRUNE_INTERVAL:
            self._last_prune = now
            await self.prune()
