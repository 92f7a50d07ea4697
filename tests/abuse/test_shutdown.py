"""Shutdown always ends: the not-before poller stops while it talks to Redis, and
``Runtime.close()`` is bounded step by step (the CI flake where a teardown hung in ``close()``).

The poller's stop used to rely on its cancellation alone, and on Python 3.11 a cancellation can
be lost inside redis-py: every socket write is wrapped in ``asyncio.wait_for``, which returns
the write's result instead of raising when the cancel arrives as the write finishes (CPython
gh-86296). Its ``while True`` loop then polled on and ``stop()`` waited for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from authgate.config import Settings
from authgate.core.redis_store import RedisStore
from authgate.core.security.passwords import PasswordService
from authgate.core.store import MemoryStore
from authgate.runtime import Runtime
from authgate.sessions import revocation
from authgate.sessions.access import PrincipalCache
from authgate.sessions.revocation import STORE_KEY, ServiceNotBefore
from tests.support.db import authgate_logs
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


@pytest.fixture
def settings_overrides(redis_srv: RedisServer) -> dict[str, Any]:
    # Like the runtime of the test whose teardown hung: Redis, the email dispatcher on.
    return {"redis_url": redis_srv.url, "email_dispatcher_enabled": True}


async def test_close_is_bounded_when_a_component_never_stops(
    settings: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One step that never returns (not even when cancelled) costs its bound and a WARNING
    naming it; every other component is still stopped and the engine disposed."""
    runtime = Runtime.build(settings)
    await runtime.start()
    assert runtime.dispatcher is not None
    loops = [runtime.dispatcher._task, runtime.housekeeper._task]
    assert all(loop is not None and not loop.done() for loop in loops)
    release = asyncio.Event()

    async def never_stops() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    pool = runtime.engine.sync_engine.pool  # dispose() replaces it with a fresh one
    real_stop = runtime.not_before.stop
    monkeypatch.setattr(runtime.not_before, "stop", never_stops)
    try:
        with authgate_logs(caplog) as records:
            started = time.monotonic()
            await runtime.close(step_timeout=0.3)
            elapsed = time.monotonic() - started
        assert elapsed < 0.3 + PROMPT
        warnings = [
            r for r in records if r.levelno == logging.WARNING and r.name == "authgate.runtime"
        ]
        assert {(r.getMessage(), getattr(r, "component", None)) for r in warnings} == {
            ("runtime.close.timed_out", "not_before")
        }
        assert all(loop is not None and loop.done() for loop in loops)
        assert runtime.dispatcher._task is None
        assert runtime.engine.sync_engine.pool is not pool
        with pytest.raises(Exception, match="busy"):
            await runtime.passwords.hash("correct horse battery staple")
        assert isinstance(runtime.store, RedisStore)
    finally:
        release.set()
        await real_stop()


async def test_close_runs_every_step_when_one_fails_and_then_raises(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = Runtime.build(settings)
    await runtime.start()

    async def fails() -> None:
        raise RuntimeError("housekeeper broke")

    real_stop = runtime.housekeeper.stop
    monkeypatch.setattr(runtime.housekeeper, "stop", fails)
    try:
        with pytest.raises(RuntimeError, match="housekeeper broke"):
            await runtime.close(step_timeout=0.3)
        assert runtime.not_before._task is None
        assert runtime.dispatcher is not None
        assert runtime.dispatcher._task is None
        with pytest.raises(Exception, match="busy"):
            await PasswordService.hash(runtime.passwords, "correct horse battery staple")
    finally:
        await real_stop()
