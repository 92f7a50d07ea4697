"""EmailDispatcher: deliver the outbox, at least once and (in practice) exactly once.

Each batch is claimed in a short transaction: due rows (``pending`` whose ``next_attempt_at``
has come, or ``sending`` whose lease ``claimed_until`` has run out because a worker died) are
marked ``sending`` with this worker's id and a lease, and committed. Sending happens outside any
transaction; the result is then recorded by a conditional UPDATE that only succeeds while this
worker still holds the claim. Success wipes the encrypted payload; a transient failure schedules
a retry with exponential back-off and full jitter; a permanent failure, or the last allowed
attempt, moves the row to ``dead`` (see :func:`dead_letters`).

On PostgreSQL any number of dispatchers may run: the claim uses ``FOR UPDATE SKIP LOCKED`` and a
conditional ``UPDATE ... WHERE status = ...``, so each row is claimed by one worker at a time.

**One dispatcher per SQLite database.** SQLite has no ``SKIP LOCKED``; the conditional UPDATE
still keeps one process from sending a row twice, but run either ``serve`` with its built-in
dispatcher or a single ``authgate worker``, never both (``AUTHGATE_EMAIL_DISPATCHER_ENABLED=false``
switches the one in ``serve`` off).

A provider that is slow, failing or unreachable only delays the outbox: the dispatcher is its
own task and nothing on the request path ever awaits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from jinja2 import TemplateError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authgate.config import Settings
from authgate.core.db import make_engine, make_sessionmaker
from authgate.core.email.backends import (
    EmailBackend,
    EmailDeliveryError,
    OutgoingEmail,
    PermanentEmailError,
    TransientEmailError,
    make_backend,
)
from authgate.core.email.repository import OutboxRepository
from authgate.core.email.service import EmailService
from authgate.core.metrics import (
    EMAIL_DEAD,
    EMAIL_RETRIED,
    EMAIL_SENT,
    OUTBOX_OLDEST_AGE,
    OUTBOX_PENDING,
)
from authgate.core.security.crypto import DecryptionError, EncryptionService
from authgate.core.security.secrets import encryption_keys
from authgate.core.tasks import finish
from authgate.core.time import utc_now
from authgate.models.email_outbox import EmailOutbox

logger = logging.getLogger("authgate.email")

#: How long a claim is held; a row whose lease ran out is taken over by another worker.
CLAIM_LEASE = timedelta(seconds=60)
#: Hard bound on one send, well inside the lease so a slow provider cannot outlive it.
SEND_TIMEOUT = 30.0
#: Messages in flight at once per dispatcher.
SEND_CONCURRENCY = 4
#: Longest pause between two attempts.
RETRY_CAP_SECONDS = 3600.0
#: How often the loop deletes old sent rows.
PRUNE_INTERVAL = timedelta(hours=1)
#: How often the dispatcher measures the outbox backlog for the metrics (one aggregate query).
BACKLOG_INTERVAL = timedelta(seconds=15)
#: How long ``stop()`` waits for in-flight sends before cancelling them (claims are released).
STOP_TIMEOUT = SEND_TIMEOUT + 5

_random = random.SystemRandom()


def retry_delay(attempts: int, base: float, cap: float = RETRY_CAP_SECONDS) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(attempts-1))] after ``attempts`` tries."""
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    return _random.uniform(0, ceiling)


async def dead_letters(db: AsyncSession, *, limit: int = 100) -> Sequence[EmailOutbox]:
    """Dead messages, newest first, for operators (``last_error`` says why)."""
    return await OutboxRepository().dead_letters(db, limit=limit)


async def requeue_dead(db: AsyncSession, outbox_id: uuid.UUID) -> bool:
    """Give a dead message a fresh set of attempts (after fixing the cause). Caller commits.

    Only a message that still has its payload can be sent again; it is due at once."""
    return await OutboxRepository().requeue_dead(db, outbox_id, now=utc_now())


class _LostClaimError(Exception):
    """Raised inside a job's transaction to roll it back when the claim was lost."""


def _default_worker_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class EmailDispatcher:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        service: EmailService,
        backend: EmailBackend,
        *,
        worker_id: str | None = None,
        repository: OutboxRepository | None = None,
    ) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        self._service = service
        self._backend = backend
        self._repo = repository or OutboxRepository()
        self.worker_id = (worker_id or _default_worker_id())[:64]
        #: How long ``stop()`` waits for in-flight sends before cancelling them.
        self.stop_timeout = STOP_TIMEOUT
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._last_prune: datetime | None = None
        self._last_backlog: datetime | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Run the delivery loop as a background task (idempotent)."""
        if self._task is not None and not self._task.done():
            return
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name=f"email-dispatcher:{self.worker_id}")
        self._task.add_done_callback(self._on_done)
        logger.info("email.dispatcher.started", extra={"worker_id": self.worker_id})

    async def stop(self) -> None:
        """Stop claiming, let in-flight sends finish (up to ``STOP_TIMEOUT``), release the rest.

        A claimed message is always either recorded as sent/failed or released to ``pending``.
        When the caller is cancelled meanwhile, the loop is cancelled at once.
        """
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            # Cancelled at once when the caller gives up waiting (a bounded Runtime.close()):
            # a loop left running would go on claiming rows another dispatcher expects.
            await finish(task, grace=self.stop_timeout)
        logger.info("email.dispatcher.stopped", extra={"worker_id": self.worker_id})

    def _on_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # Make a dead loop loud: mail would otherwise silently pile up in the outbox.
            logger.error(
                "email.dispatcher.crashed",
                extra={"worker_id": self.worker_id, "error": type(task.exception()).__name__},
            )

    def notify(self) -> None:
        """Wake the loop now (after a commit that queued mail). Safe to call any time."""
        self._wake.set()

    async def _loop(self) -> None:
        interval = self._settings.email_poll_interval
        while not self._stopping:
            batch = 50
            processed = 0
            try:
                processed = await self.run_once(batch)
                await self._maybe_prune()
                await self._maybe_observe_backlog()
            except* (SQLAlchemyError, OSError) as group:
                # The database is unavailable: wait and retry; claims run out and nothing is
                # lost. (``except*``: failures inside the send TaskGroup arrive grouped.)
                logger.warning(
                    "email.dispatcher.db_error",
                    extra={
                        "worker_id": self.worker_id,
                        "error": type(group.exceptions[0]).__name__,
                    },
                )
            if processed >= batch or self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()

    async def _maybe_prune(self) -> None:
        now = utc_now()
        if self._last_prune is None or now - self._last_prune >= PRUNE_INTERVAL:
            self._last_prune = now
            await self.prune()

    async def _maybe_observe_backlog(self) -> None:
        now = utc_now()
        if self._last_backlog is None or now - self._last_backlog >= BACKLOG_INTERVAL:
            self._last_backlog = now
            await self.observe_backlog()

    async def observe_backlog(self) -> None:
        """Set the outbox gauges (``authgate_email_outbox_pending``, ``…_oldest_age_seconds``)."""
        async with self._sessionmaker() as db:
            count, oldest = await self._repo.backlog(db)
        OUTBOX_PENDING.set(count)
        age = (utc_now() - oldest).total_seconds() if oldest is not None else 0.0
        OUTBOX_OLDEST_AGE.set(max(age, 0.0))

    # -- one batch ------------------------------------------------------------------------

    async def run_once(self, limit: int = 50) -> int:
        """Claim up to ``limit`` due messages and try each once; return how many were tried."""
        if self._stopping and self._task is None:
            return 0
        rows = await self._claim(limit)
        if not rows:
            return 0
        unsent = {row.id for row in rows}
        semaphore = asyncio.Semaphore(SEND_CONCURRENCY)

        async def deliver(row: EmailOutbox) -> None:
            async with semaphore:
                if self._stopping:
                    return
                await self._deliver(row)
                unsent.discard(row.id)

        try:
            async with asyncio.TaskGroup() as group:
                for row in rows:
                    group.create_task(deliver(row))
        finally:
            if unsent:
                await asyncio.shield(self._release(set(unsent)))
        return len(rows) - len(unsent)

    async def _claim(self, limit: int) -> list[EmailOutbox]:
        now = utc_now()
        async with self._sessionmaker() as db, db.begin():
            # An abandoned claim counts as an attempt, and one that used the last attempt is
            # dead: a message that kills its worker must not cycle through leases for ever.
            claim = await self._repo.claim(
                db,
                now=now,
                limit=limit,
                worker_id=self.worker_id,
                lease=CLAIM_LEASE,
                max_attempts=self._settings.email_max_attempts,
                skip_locked=not self._settings.is_sqlite,
            )
            if dead := claim.abandoned_dead:
                EMAIL_DEAD.labels(backend=self._backend.name).inc(dead)
                logger.error("email.dead", extra={"count": dead, "error": "abandoned"})
            return claim.rows

    async def _run_job(self, row: EmailOutbox) -> None:
        """Run a job row in one transaction with marking it done: a crash leaves it pending."""
        handler = self._service.job_handler(row.template)
        try:
            if handler is None:
                raise PermanentEmailError(f"no handler for {row.template}")
            try:
                context = self._service.context_of(row)
            except (DecryptionError, ValueError) as exc:
                raise PermanentEmailError(f"cannot read job: {type(exc).__name__}") from None
            async with self._sessionmaker() as db, db.begin():
                await handler(db, context)
                if not await self._repo.mark_job_done(db, row.id, self.worker_id, now=utc_now()):
                    # Another worker took the row over: undo this run, the owner does it.
                    raise _LostClaimError
        except _LostClaimError:
            return
        except PermanentEmailError as exc:
            await asyncio.shield(self._record_failure(row, exc))
            return
        except SQLAlchemyError as exc:
            await asyncio.shield(self._record_failure(row, TransientEmailError(type(exc).__name__)))
            return
        # The job queued mail (or not): look again at once rather than after the poll interval.
        self._wake.set()
        self._log(row, "email.job.done", attempts=row.attempts + 1, lost_claim=False)

    async def _deliver(self, row: EmailOutbox) -> None:
        if self._service.is_job(row.template):
            await self._run_job(row)
            return
        message: OutgoingEmail | None = None
        try:
            try:
                message = self._service.build(row)
            except (DecryptionError, TemplateError, ValueError, LookupError, TypeError) as exc:
                # Undecryptable (key removed from the ring) or no longer renderable (a template
                # changed since it was queued): no retry can fix it.
                raise PermanentEmailError(f"cannot build message: {type(exc).__name__}") from None
            try:
                message_id = await asyncio.wait_for(self._backend.send(message), SEND_TIMEOUT)
            except TimeoutError:
                raise TransientEmailError("send timed out") from None
            except EmailDeliveryError:
                raise
            except Exception as exc:  # noqa: BLE001
                # The provider boundary: an error a backend failed to classify must cost one
                # attempt, not kill the loop or leave the row cycling through expired leases.
                # No traceback: its text could quote the request, and with it the link.
                logger.error(
                    "email.backend.unexpected_error",
                    extra={
                        "outbox_id": str(row.id),
                        "backend": self._backend.name,
                        "error": type(exc).__name__,
                    },
                )
                raise TransientEmailError(f"unexpected {type(exc).__name__}") from None
        except EmailDeliveryError as exc:
            await asyncio.shield(self._record_failure(row, exc))
            return
        await asyncio.shield(self._record_sent(row, message_id))

    async def _record_sent(self, row: EmailOutbox, provider_message_id: str | None) -> None:
        now = utc_now()
        async with self._sessionmaker() as db, db.begin():
            owned = await self._repo.mark_sent(
                db, row.id, self.worker_id, now=now, provider_message_id=provider_message_id
            )
        EMAIL_SENT.labels(backend=self._backend.name).inc()
        self._log(row, "email.sent", attempts=row.attempts + 1, lost_claim=not owned)

    async def _record_failure(self, row: EmailOutbox, exc: EmailDeliveryError) -> None:
        attempts = row.attempts + 1
        dead = isinstance(exc, PermanentEmailError) or attempts >= self._settings.email_max_attempts
        retry_at: datetime | None = None
        if not dead:
            delay = retry_delay(attempts, self._settings.email_retry_base_seconds)
            retry_at = utc_now() + timedelta(seconds=delay)
        async with self._sessionmaker() as db, db.begin():
            await self._repo.mark_failed(
                db, row.id, self.worker_id, error=exc.reason, retry_at=retry_at
            )
        if dead:
            EMAIL_DEAD.labels(backend=self._backend.name).inc()
            self._log(row, "email.dead", attempts=attempts, error=exc.reason, level=logging.ERROR)
        else:
            EMAIL_RETRIED.labels(backend=self._backend.name).inc()
            self._log(
                row, "email.retry", attempts=attempts, error=exc.reason, level=logging.WARNING
            )

    async def _release(self, ids: set[uuid.UUID]) -> None:
        """Hand claimed-but-untried rows back (graceful stop): pending again, due now."""
        async with self._sessionmaker() as db, db.begin():
            await self._repo.release(db, ids, self.worker_id)
        logger.info("email.released", extra={"worker_id": self.worker_id, "count": len(ids)})

    async def prune(self) -> int:
        """Delete sent rows older than ``email_sent_retention_days``; return how many."""
        cutoff = utc_now() - timedelta(days=self._settings.email_sent_retention_days)
        async with self._sessionmaker() as db, db.begin():
            count = await self._repo.prune(db, cutoff)
        if count:
            logger.info("email.pruned", extra={"count": count})
        return count

    def _log(
        self, row: EmailOutbox, event: str, *, level: int = logging.INFO, **fields: Any
    ) -> None:
        logger.log(
            level,
            event,
            extra={
                "outbox_id": str(row.id),
                "template": row.template,
                "recipient_domain": row.to_address.rpartition("@")[2].lower(),
                "backend": self._backend.name,
                "worker_id": self.worker_id,
                **fields,
            },
        )


async def run_worker(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    service: EmailService | None = None,
) -> None:
    """``authgate worker``: run a dispatcher until SIGTERM/SIGINT (or ``stop`` is set).

    ``service`` is the runtime's ``EmailService``, with its jobs registered (``cli.py`` passes
    it); without one the worker delivers mail only and dead-letters job rows.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    engine = make_engine(settings)
    backend = make_backend(settings)
    service = service or EmailService(settings, EncryptionService(encryption_keys(settings)))
    dispatcher = EmailDispatcher(settings, make_sessionmaker(engine), service, backend)
    try:
        await dispatcher.start()
        await stop.wait()
    finally:
        await dispatcher.stop()
        await backend.close()
        await engine.dispose()
        for sig in installed:
            loop.remove_signal_handler(sig)
