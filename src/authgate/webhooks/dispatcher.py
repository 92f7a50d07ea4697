"""WebhookDispatcher: deliver the webhook outbox, at least once, in order per endpoint.

It runs where mail is delivered — inside ``serve`` next to the email dispatcher
(``AUTHGATE_EMAIL_DISPATCHER_ENABLED``) or in ``authgate worker`` — and only when endpoints are
configured. A loop claims, in a short transaction, the first due event of each endpoint that
has nothing in flight with the due events that follow it, up to ``BATCH``
(``WebhookRepository.claim``: one event in flight per endpoint, in order of creation, safe with
several processes), starts one task per endpoint that sends its run one event after the other,
and goes back to claiming; so a slow endpoint (up to ``AUTHGATE_WEBHOOK_TIMEOUT`` per attempt)
holds up only its own events. When a task ends, the loop wakes and claims the endpoint's next
events — at most once per ``CLAIM_INTERVAL``: under a steady stream of events (tens of
registrations a second) a claim then takes several per endpoint instead of one, and a claim
and a record are paid per run rather than per event, for at most a quarter of a second of
latency. An idle dispatcher claims at once when woken.

A task stops at the first attempt that fails. What became of its run is recorded by the loop
in the transaction of its next claim, or at once when no other run is in flight (a round costs
one or two transactions, whatever the number of endpoints), each UPDATE applying only while
this worker holds the claim: 2xx answers mark their events ``delivered`` (bodies wiped); the
failed one is retried after ``base · 2^(attempts-1)`` seconds capped at 5 minutes, with jitter
(between half and all of it), until the event's 24 hours are over, when it is ``dead``
(``authgate webhooks dead``); the events after it are handed back untried. A 410 is logged
(``webhook.gone``) and retried like any failure: the operator removes the endpoint. A task also
stops, handing the rest back, when the lease could run out during its next attempt or the
dispatcher is stopping.

At least once: until it is recorded a run stays claimed (``sending`` under this worker's lease),
so nobody else sends those events; a worker that dies before recording it has them sent again
when the lease runs out, with the same ``webhook-id``s; receivers dedupe on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
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
from authgate.webhooks.delivery import Attempt, WebhookSender, make_webhook_http_client
from authgate.webhooks.repository import ClaimedEvent, WebhookRepository
from authgate.webhooks.service import WebhookService

logger = logging.getLogger("authgate.webhooks")

#: How long a claim is held: well past the longest attempt (``webhook_timeout`` ≤ 30 s).
CLAIM_LEASE = timedelta(seconds=60)
#: Longest pause between two attempts.
RETRY_CAP_SECONDS = 300.0
#: Endpoints delivered to at once by one dispatcher.
IN_FLIGHT = 16
#: Events of one endpoint claimed, sent one after the other and recorded together.
BATCH = 32
#: Shortest time between two claims (seconds): lets a stream of events gather into runs
#: (``bench.inprocess webhooks`` trickle, ~33 events/s, alternating on a busy machine: median
#: 1.9-2.0 ms of CPU per delivery at 0.1 s, 1.6-1.7 ms at 0.25 s).
CLAIM_INTERVAL = 0.25
#: How often the age-of-the-oldest-event gauge is refreshed.
GAUGE_INTERVAL = timedelta(seconds=5)
#: How often delivered events past their retention are deleted.
PRUNE_INTERVAL = timedelta(hours=1)
#: Waited for in-flight attempts on stop, beyond the attempt timeout.
STOP_GRACE = 5.0

_random = random.SystemRandom()


@dataclass(slots=True)
class _Outcome:
    """What became of one endpoint's claimed run, waiting to be recorded."""

    name: str
    #: Events the endpoint accepted, with the status it answered.
    delivered: list[tuple[ClaimedEvent, int | None]] = field(default_factory=list)
    #: The attempt that failed (the run stops there) and whether no retry can fix it.
    failed: tuple[ClaimedEvent, Attempt, bool] | None = None
    #: Events not tried, handed back.
    untried: list[int] = field(default_factory=list)


def retry_delay(attempts: int, base: float, cap: float = RETRY_CAP_SECONDS) -> float:
    """After ``attempts`` failed attempts: between half and all of ``min(cap, base·2^(n-1))``."""
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    return _random.uniform(ceiling / 2, ceiling)


def _by_endpoint(rows: Sequence[ClaimedEvent]) -> list[list[ClaimedEvent]]:
    """Claimed rows as one run per endpoint, each in ``seq`` order."""
    runs: dict[str, list[ClaimedEvent]] = {}
    for row in sorted(rows, key=lambda row: row.seq):
        runs.setdefault(row.endpoint_key, []).append(row)
    return list(runs.values())


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
        #: One task per endpoint with a claimed run, by endpoint key.
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._last_claim = float("-inf")
        #: Runs that ended, recorded with the next claim.
        self._outcomes: list[_Outcome] = []
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
        with contextlib.suppress(SQLAlchemyError, OSError):
            await self._claim(0)  # record what the last runs did
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None
            self._sender = None
        if task is not None:
            logger.info("webhook.dispatcher.stopped", extra={"worker_id": self.worker_id})

    async def _drain(self) -> None:
        """Wait for in-flight attempts (one attempt's timeout and a grace), then cancel them
        (a cancelled run keeps what it sent and hands the rest back)."""
        tasks = list(self._in_flight.values())
        if not tasks:
            return
        grace = self._settings.webhook_timeout + STOP_GRACE
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        for pending_task in pending:
            pending_task.cancel()
        for pending_task in pending:
            await finish(pending_task)

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
                if self._outcomes and not self._in_flight:
                    # Every run ended: record them now rather than with the paced claim.
                    await self._claim(0)
                free = IN_FLIGHT - len(self._in_flight)
                if free > 0 or self._outcomes:
                    await self._pace()
                    for rows in _by_endpoint(await self._claim(free)):
                        self._spawn(rows)
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

    async def _pace(self) -> None:
        """Wait until ``CLAIM_INTERVAL`` has passed since the last claim (not when stopping)."""
        wait = self._last_claim + CLAIM_INTERVAL - time.monotonic()
        if wait > 0 and not self._stopping:
            await asyncio.sleep(wait)
        self._last_claim = time.monotonic()

    def _spawn(self, rows: Sequence[ClaimedEvent]) -> None:
        key = rows[0].endpoint_key
        task = asyncio.create_task(self._deliver(rows), name=f"webhook:{rows[0].message_id}")
        self._in_flight[key] = task

        def finished(_task: asyncio.Task[None]) -> None:
            self._in_flight.pop(key, None)
            # The endpoint's next events may be claimed now.
            self._wake.set()

        task.add_done_callback(finished)

    # -- one pass (tests, operators) ---------------------------------------------------------

    async def run_once(self, limit: int = IN_FLIGHT) -> int:
        """Claim the due runs of up to ``limit`` endpoints and send them; wait for them; return
        how many events were claimed."""
        self._ensure_sender()
        rows = await self._claim(limit)
        if rows:
            await asyncio.gather(*(self._deliver(run) for run in _by_endpoint(rows)))
            await self._claim(0)
        return len(rows)

    async def _claim(self, limit: int) -> list[ClaimedEvent]:
        """In one transaction, record the runs that ended and claim up to ``limit`` new ones
        (0: only record)."""
        if limit <= 0 and not self._outcomes:
            return []
        outcomes, self._outcomes = self._outcomes, []
        now = utc_now()
        delivered = [row.seq for outcome in outcomes for row, _status in outcome.delivered]
        untried = [seq for outcome in outcomes for seq in outcome.untried]
        plans = [self._retry_plan(outcome.failed, now) for outcome in outcomes if outcome.failed]
        dead = {seq for (seq, _error, retry_at) in plans if retry_at is None}
        rows: list[ClaimedEvent] = []
        try:
            async with self._sessionmaker() as db, db.begin():
                owned = await self._repo.record(
                    db,
                    self.worker_id,
                    now=now,
                    delivered=delivered,
                    failed=plans,
                    untried=untried,
                )
                if limit > 0:
                    rows = await self._repo.claim(
                        db,
                        now=now,
                        endpoint_keys=self._keys,
                        limit=limit,
                        worker_id=self.worker_id,
                        lease=CLAIM_LEASE,
                        serialize=not self._settings.is_sqlite,
                        batch=BATCH,
                    )
        except (SQLAlchemyError, OSError) as exc:
            if outcomes:
                # Not recorded: the leases run out and the events are sent again (same ids).
                logger.warning(
                    "webhook.record_failed",
                    extra={"count": len(delivered) + len(plans), "error": type(exc).__name__},
                )
            raise
        self._log_outcomes(outcomes, dead, lost=owned < len(delivered))
        return rows

    def _retry_plan(
        self, failed: tuple[ClaimedEvent, Attempt, bool], now: datetime
    ) -> tuple[int, str, datetime | None]:
        """``(seq, error, retry_at)`` of a failed attempt; ``retry_at`` None: it is dead."""
        row, attempt, final = failed
        dead = final or now >= row.expires_at
        retry_at: datetime | None = None
        if not dead:
            delay = retry_delay(row.attempts + 1, self._settings.webhook_retry_base_seconds)
            retry_at = min(now + timedelta(seconds=delay), row.expires_at)
        return row.seq, attempt.error or "failed", retry_at

    # -- one run of one endpoint ------------------------------------------------------------

    async def _deliver(self, rows: Sequence[ClaimedEvent]) -> None:
        """Send an endpoint's claimed run in order, stopping at the first failure; leave the
        outcome for the next claim to record (also when cancelled: what was sent is kept, the
        rest handed back)."""
        endpoint = self._service.endpoint(rows[0].endpoint_key)
        if endpoint is None:  # not claimable: the claim only takes configured endpoints
            return
        sender = self._ensure_sender()
        # The next attempt must end before the lease does, or another worker could take over.
        deadline = timedelta(seconds=self._settings.webhook_timeout + STOP_GRACE)
        outcome = _Outcome(endpoint.name)
        done = 0
        try:
            for row in rows:
                if self._stopping or (
                    row.claimed_until is not None and utc_now() + deadline > row.claimed_until
                ):
                    break
                try:
                    body = self._service.body_of(row)
                except (DecryptionError, ValueError) as exc:
                    # Undecryptable (its key left the ring): no retry can fix it.
                    error = f"unreadable {type(exc).__name__}"
                    outcome.failed, done = (row, Attempt(ok=False, error=error), True), done + 1
                    break
                attempt = await sender.send(endpoint, row.message_id, body)
                done += 1
                if not attempt.ok:
                    outcome.failed = (row, attempt, False)
                    break
                outcome.delivered.append((row, attempt.status))
        finally:
            outcome.untried = [row.seq for row in rows[done:]]
            self._outcomes.append(outcome)

    def _log_outcomes(self, outcomes: Sequence[_Outcome], dead: set[int], *, lost: bool) -> None:
        for outcome in outcomes:
            name = outcome.name
            if outcome.delivered:
                WEBHOOK_DELIVERED.labels(endpoint=name).inc(len(outcome.delivered))
            for row, status in outcome.delivered:
                logger.info(
                    "webhook.delivered",
                    extra={
                        "webhook_id": row.message_id,
                        "event_type": row.event_type,
                        "endpoint": name,
                        "attempts": row.attempts + 1,
                        "http_status": status,
                        "lost_claim": lost,
                    },
                )
            if outcome.failed is not None:
                row, attempt, _final = outcome.failed
                self._log_failure(name, row, attempt, dead=row.seq in dead)
            if outcome.untried:
                logger.info(
                    "webhook.released",
                    extra={"worker_id": self.worker_id, "count": len(outcome.untried)},
                )

    def _log_failure(self, name: str, row: ClaimedEvent, attempt: Attempt, *, dead: bool) -> None:
        fields: dict[str, Any] = {
            "webhook_id": row.message_id,
            "event_type": row.event_type,
            "endpoint": name,
            "attempts": row.attempts + 1,
            "http_status": attempt.status,
        }
        error = attempt.error or "failed"
        WEBHOOK_FAILED.labels(endpoint=name).inc()
        if attempt.status == 410:
            # The receiver says the endpoint is gone for good; the operator decides (the
            # schedule is kept: a misrouted 410 must not drop events).
            logger.warning("webhook.gone", extra=fields)
        if dead:
            WEBHOOK_DEAD.labels(endpoint=name).inc()
            logger.error("webhook.dead", extra={**fields, "error": error})
        else:
            logger.warning("webhook.retry", extra={**fields, "error": error})

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
