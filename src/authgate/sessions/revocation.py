"""The service-wide not-before of access tokens: emergency revocation (``revoke-all``).

``POST /admin/sessions/revoke-all`` and ``authgate sessions revoke-all`` end every session and
set one instant, kept in the database (the one row of ``service_revocation``) and in the shared
store. Every process holds it in memory, so the access check compares a token's ``iat`` with a
float and ``GET /users/me`` costs no round trip more; a background task reads the store every
``POLL_INTERVAL`` seconds. When the store has lost the value (Redis restarted, or the key
expired), the task reads it from the database and puts it back, without overwriting a newer one
written meanwhile (``set_float_if_absent``). Without a shared store (no ``AUTHGATE_REDIS_URL``:
one process, whose in-process store ``authgate sessions revoke-all`` cannot reach) the task reads
the database's row instead, one primary-key read per interval.

``iat`` has a resolution of one second, so the check is ``iat >= floor(not_before)``: a token
issued in the second of the revocation but before it belongs to a session the revocation ended,
which the session check refuses; a sign-in made right after, in the same second, works. When the
value changes, the process drops its cached principal snapshots, so those same-second tokens are
checked against the database at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime
from typing import Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authgate.core.store import Store, StoreUnavailable
from authgate.core.tasks import finish
from authgate.sessions.access import PrincipalCache
from authgate.sessions.repository import SessionRepository

logger = logging.getLogger("authgate.sessions")

#: The store key holding the instant (epoch seconds; ``0`` when there was never a revoke-all).
STORE_KEY: Final = "revoke-all:not-before"
#: Seconds between two reads of the store by each process (the contract: within 1 s).
POLL_INTERVAL: Final = 0.25
#: Life of the store's copy; once gone it is put back from the database.
STORE_TTL: Final = 24 * 3600.0


class ServiceNotBefore:
    """This process's copy of the not-before, and the task that keeps it current."""

    def __init__(
        self,
        store: Store,
        sessionmaker: async_sessionmaker[AsyncSession],
        principals: PrincipalCache,
        repository: SessionRepository | None = None,
        *,
        shared: bool = True,
    ) -> None:
        self._store = store
        self._shared = shared
        self._sessionmaker = sessionmaker
        self._principals = principals
        self._repo = repository or SessionRepository()
        self._value = 0.0
        self._seen: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failing = False

    @property
    def value(self) -> float:
        """The instant as epoch seconds (``0.0``: none known)."""
        return self._value

    def admits(self, iat: int) -> bool:
        """Was a token with this ``iat`` possibly issued after the last revoke-all?"""
        return iat >= math.floor(self._value)

    def note(self, value: float) -> None:
        """A newer instant is known: hold it, and let no cached snapshot decide any more."""
        if value > self._value:
            self._value = value
            self._principals.clear()

    async def publish(self, at: datetime) -> None:
        """Tell every process (the store) and this one (memory); raises ``StoreUnavailable``."""
        value = at.timestamp()
        await self._store.set_float(STORE_KEY, value, STORE_TTL)
        self.note(value)

    async def refresh(self) -> None:
        """Read the instant once: from the store (put back from the database if the store lost
        it), or from the database when there is no shared store."""
        if not self._shared:
            value = await self._from_database()
        else:
            stored = await self._store.get_float(STORE_KEY)
            if stored is None:
                await self._store.set_float_if_absent(
                    STORE_KEY, await self._from_database(), STORE_TTL
                )
                stored = await self._store.get_float(STORE_KEY)
            value = stored or 0.0
        if value != self._seen:
            self._seen = value
            self._value = max(self._value, value)
            # Also when this process published it: a snapshot read just before the revoking
            # transaction committed must not outlive it.
            self._principals.clear()

    async def _from_database(self) -> float:
        async with self._sessionmaker() as db:
            at = await self._repo.service_not_before(db)
        return 0.0 if at is None else at.timestamp()

    async def start(self) -> None:
        """One read now (failures are logged: the access check fails closed on the store
        anyway), then one every ``POLL_INTERVAL`` seconds."""
        await self._refresh_quietly()
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="authgate-not-before")

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            await finish(task)

    async def _run(self) -> None:
        # The flag ends the loop, not only the cancellation: on Python 3.11 redis-py can lose a
        # cancel that lands during a command (see ``authgate.core.tasks``), and a loop that
        # polled on after it kept ``stop()`` (and with it ``Runtime.close()``) waiting for ever.
        while not self._stopping:
            await asyncio.sleep(POLL_INTERVAL)
            if not self._stopping:
                await self._refresh_quietly()

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except (StoreUnavailable, SQLAlchemyError, OSError) as exc:
            if not self._failing:  # once per outage, not four times a second
                logger.warning(
                    "sessions.not_before.refresh_failed", extra={"error": type(exc).__name__}
                )
            self._failing = True
        else:
            self._failing = False


__all__ = ["POLL_INTERVAL", "STORE_KEY", "ServiceNotBefore"]
