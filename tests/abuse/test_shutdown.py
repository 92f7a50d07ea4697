"""Shutdown always ends: the not-before poller stops while it talks to Redis (the CI flake where
a teardown hung in ``Runtime.close()``).

The poller's stop used to rely on its cancellation alone, and on Python 3.11 a cancellation can
be lost inside redis-py: every socket write is wrapped in ``asyncio.wait_for``, which returns
the write's result instead of raising when the cancel arrives as the write finishes (CPython
gh-86296). Its ``while True`` loop then polled on and ``stop()`` waited for ever.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from authgate.core.store import MemoryStore, RedisStore
from authgate.sessions import revocation
from authgate.sessions.access import PrincipalCache
from authgate.sessions.revocation import STORE_KEY, ServiceNotBefore
from tests.support.servers import RedisServer

#: What a stop may take here; the poller's own work is a Redis round trip or two.
PROMPT = 2.0


async def _stopped_within(not_before: ServiceNotBefore, seconds: float) -> bool:
    """Stop the poller; False when that did not end in ``seconds`` (the poll task is then
    cancelled until it ends, so a failing test leaves nothing running)."""
    task = not_before._task
    stopping = asyncio.ensure_future(not_before.stop())
    done, _ = await asyncio.wait({stopping}, timeout=seconds)
    if done:
        stopping.result()
        return True
    while task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.05)
    await asyncio.wait({stopping}, timeout=seconds)
    return False


async def test_the_poller_stops_promptly_while_it_polls_redis(
    redis_srv: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No pause between polls, so a stop nearly always lands during a Redis command: before
    the fix most of these stops never ended."""
    monkeypatch.setattr(revocation, "POLL_INTERVAL", 0.0)
    store = RedisStore(redis_srv.url, timeout=0.5)
    try:
        await store.set_float(STORE_KEY, 1.0, 60)
        hung = 0
        for _ in range(20):
            not_before = ServiceNotBefore(
                store, async_sessionmaker(), PrincipalCache(1.0), shared=True
            )
            await not_before.start()
            await asyncio.sleep(random.uniform(0, 0.01))
            hung += not await _stopped_within(not_before, PROMPT)
        assert hung == 0
    finally:
        await store.close()


async def _written() -> None:
    """A socket write that did not have to wait (the common case)."""


class _LosesCancellation(MemoryStore):
    """Reads as redis-py sends a command: the write wrapped in ``asyncio.wait_for``."""

    def __init__(self) -> None:
        super().__init__()
        self.polling = asyncio.Event()

    async def get_float(self, key: str) -> float | None:
        self.polling.set()
        await asyncio.wait_for(_written(), 1.0)
        return await super().get_float(key)


async def test_a_cancellation_lost_in_the_store_client_does_not_keep_the_poller_alive() -> None:
    """Deterministic: the stop lands while the poll is inside ``wait_for``."""
    store = _LosesCancellation()
    await store.set_float(STORE_KEY, 1.0, 60)
    not_before = ServiceNotBefore(store, async_sessionmaker(), PrincipalCache(1.0), shared=True)
    await not_before.start()
    store.polling.clear()
    await store.polling.wait()  # the next poll is in the store's wait_for now
    assert await _stopped_within(not_before, PROMPT)
