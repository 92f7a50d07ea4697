"""The shared store: flags, floats, counters with expiry; Redis outages and recovery."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from authgate.core.redis_store import RedisStore
from authgate.core.store import (
    MemoryStore,
    Store,
    StoreUnavailable,
    key_digest,
    make_store,
)
from authgate.core.time import shifted
from tests.support.abuse import StoreFactory, abuse_settings
from tests.support.servers import RedisServer, free_port


async def test_flag_is_set_then_expires(store: Store) -> None:
    await store.set_flag("revoked:sid:a", 0.5)
    assert await store.has_flag("revoked:sid:a")
    assert not await store.has_flag("revoked:sid:b")
    await asyncio.sleep(0.7)
    assert not await store.has_flag("revoked:sid:a")


async def test_has_any_flag_answers_in_order(store: Store) -> None:
    await store.set_flag("f:1", 10)
    await store.set_flag("f:3", 10)
    assert await store.has_any_flag(["f:1", "f:2", "f:3"]) == [True, False, True]
    assert await store.has_any_flag([]) == []


async def test_float_round_trip_and_expiry(store: Store) -> None:
    assert await store.get_float("tva:u1") is None
    await store.set_float("tva:u1", 1_700_000_000.125, 0.5)
    await store.set_float("tva:u2", -2.5, 10)
    assert await store.get_float("tva:u1") == 1_700_000_000.125
    assert await store.get_floats(["tva:u1", "nope", "tva:u2"]) == [1_700_000_000.125, None, -2.5]
    await asyncio.sleep(0.7)
    assert await store.get_float("tva:u1") is None
    assert await store.get_float("tva:u2") == -2.5


async def test_delete_removes_several_keys(store: Store) -> None:
    await store.set_flag("d:1", 10)
    await store.set_float("d:2", 1.0, 10)
    await store.delete("d:1", "d:2", "d:absent")
    await store.delete()
    assert await store.has_any_flag(["d:1", "d:2"]) == [False, False]


async def test_incr_is_atomic_and_restarts_the_ttl(store: Store) -> None:
    values = await asyncio.gather(*(store.incr("c:x", 0.6) for _ in range(50)))
    assert sorted(values) == list(range(1, 51))
    assert await store.incr("c:x", 0.6, amount=5) == 55
    await asyncio.sleep(0.35)
    assert await store.incr("c:x", 0.6) == 56  # the TTL restarts on each increment
    await asyncio.sleep(0.35)
    assert await store.get_float("c:x") == 56
    await asyncio.sleep(0.4)
    assert await store.get_float("c:x") is None


async def test_two_stores_share_state(store_factory: StoreFactory) -> None:
    one, two = store_factory(), store_factory()
    await one.set_flag("shared", 10)
    assert await two.has_flag("shared")
    await two.incr("n", 10)
    assert await one.incr("n", 10) == 2


async def test_odd_keys_do_not_break_the_store(store: Store) -> None:
    odd = "x:\n\r\0*?" + "é" * 5000
    await store.set_flag(odd, 10)
    assert await store.has_flag(odd)
    assert not await store.has_flag(odd[:-1])


async def test_ping(store: Store) -> None:
    assert await store.ping() is True


def test_key_digest_is_stable_and_compact() -> None:
    garbage = "a" * 10_240 + "\n:\r" + "\udcff"
    assert key_digest(garbage) == key_digest(garbage)
    assert key_digest(garbage) != key_digest(garbage + " ")
    assert len(key_digest(garbage)) == 32
    assert key_digest(garbage).isalnum()


def test_make_store_picks_the_backend(redis_srv: RedisServer) -> None:
    assert isinstance(make_store(abuse_settings()), MemoryStore)
    assert isinstance(make_store(abuse_settings(redis_url=redis_srv.url)), RedisStore)


async def test_memory_store_follows_the_clock() -> None:
    store = MemoryStore()
    await store.set_flag("k", 60)
    with shifted(timedelta(seconds=61)):
        assert not await store.has_flag("k")


async def test_redis_keys_are_prefixed(redis_store: RedisStore, redis_srv: RedisServer) -> None:
    await redis_store.set_flag("revoked:sid:1", 10)
    client = aioredis.Redis.from_url(redis_srv.url)
    try:
        assert await client.keys("*") == [b"authgate:revoked:sid:1"]
    finally:
        await client.aclose()


async def _timed(call: Awaitable[object]) -> tuple[float, Exception | None]:
    started = time.monotonic()
    try:
        await call
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


async def test_redis_outage_fails_fast_and_recovers(
    redis_store: RedisStore, redis_srv: RedisServer
) -> None:
    await redis_store.set_flag("before", 60)
    assert await redis_store.has_flag("before")  # a pooled connection now exists

    redis_srv.stop()
    try:
        for call in (
            redis_store.has_flag("before"),
            redis_store.set_flag("during", 60),
            redis_store.has_any_flag(["a", "b"]),
            redis_store.get_float("x"),
            redis_store.incr("c", 60),
            redis_store.delete("before"),
        ):
            elapsed, exc = await _timed(call)
            assert isinstance(exc, StoreUnavailable), exc
            assert elapsed < 1.0
        started = time.monotonic()
        assert await redis_store.ping() is False
        assert time.monotonic() - started < 1.0
    finally:
        redis_srv.start()

    # Same object, no rebuild: it reconnects by itself (the restarted Redis is empty).
    assert await redis_store.ping() is True
    assert not await redis_store.has_flag("before")
    await redis_store.set_flag("after", 60)
    assert await redis_store.has_flag("after")


async def test_unreachable_redis_at_start_is_reported_not_raised_at_build() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout=0.3)
    try:
        assert await store.ping() is False
        with pytest.raises(StoreUnavailable):
            await store.has_flag("x")
    finally:
        await store.close()


async def test_hung_redis_times_out_and_recovers(
    redis_store: RedisStore, redis_srv: RedisServer
) -> None:
    """A Redis that accepts connections but never answers (SIGSTOP) costs one timeout, no more."""
    await redis_store.set_flag("k", 60)
    assert redis_srv.process is not None
    redis_srv.process.send_signal(signal.SIGSTOP)
    try:
        elapsed, exc = await _timed(redis_store.has_flag("k"))
        assert isinstance(exc, StoreUnavailable), exc
        assert elapsed < 1.5
        elapsed, exc = await _timed(redis_store.ping())
        assert exc is None
        assert elapsed < 1.5
    finally:
        redis_srv.process.send_signal(signal.SIGCONT)
    assert await redis_store.has_flag("k")
