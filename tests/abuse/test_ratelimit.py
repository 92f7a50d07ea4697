"""Named rate limits: exact counts, Retry-After, shared across processes, fail closed."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from prometheus_client import REGISTRY

from authgate.config import DEFAULT_RATE_LIMITS
from authgate.core.errors import RateLimited, ServiceUnavailable
from authgate.core.limits import Limit
from authgate.core.ratelimit import RateLimiter
from authgate.core.redis_store import RedisStore
from authgate.core.store import MemoryStore, Store
from tests.support.abuse import StoreFactory, abuse_settings
from tests.support.servers import RedisServer


def limiter(store: Store, enabled: bool = True, **limits: str) -> RateLimiter:
    return RateLimiter(abuse_settings(rate_limits=limits, rate_limits_enabled=enabled), store)


def refused_count(name: str) -> float:
    return REGISTRY.get_sample_value("authgate_rate_limited_total", {"limit": name}) or 0.0


async def test_admits_exactly_n_then_refuses_with_retry_after(store: Store) -> None:
    rl = limiter(store, login_ip="3/minute")
    before = refused_count("login_ip")
    for _ in range(3):
        await rl.hit(Limit.login_ip, "203.0.113.7")
    with pytest.raises(RateLimited) as refused:
        await rl.hit(Limit.login_ip, "203.0.113.7")
    retry_after = int(refused.value.headers["Retry-After"])
    assert 55 <= retry_after <= 60
    assert refused.value.status == 429
    assert refused_count("login_ip") == before + 1
    # other keys and other names have their own buckets
    await rl.hit(Limit.login_ip, "203.0.113.8")
    await rl.hit(Limit.register_ip, "203.0.113.7")


async def test_parallel_hits_admit_exactly_n(store: Store) -> None:
    rl = limiter(store, login_ip="7/minute")
    results = await asyncio.gather(
        *(rl.hit(Limit.login_ip, "198.51.100.1") for _ in range(40)), return_exceptions=True
    )
    assert sum(r is None for r in results) == 7
    assert all(isinstance(r, RateLimited) for r in results if r is not None)


async def test_test_does_not_consume_and_clear_resets(store: Store) -> None:
    rl = limiter(store, login_ip="2/minute")
    assert await rl.test(Limit.login_ip, "k")
    assert await rl.test(Limit.login_ip, "k")
    await rl.hit(Limit.login_ip, "k")
    assert await rl.test(Limit.login_ip, "k")
    await rl.hit(Limit.login_ip, "k")
    assert not await rl.test(Limit.login_ip, "k")
    await rl.clear(Limit.login_ip, "k")
    assert await rl.test(Limit.login_ip, "k")
    await rl.hit(Limit.login_ip, "k")


async def test_cost_counts_several_slots(store: Store) -> None:
    rl = limiter(store, login_ip="5/minute")
    await rl.hit(Limit.login_ip, "k", cost=4)
    with pytest.raises(RateLimited):
        await rl.hit(Limit.login_ip, "k", cost=2)
    await rl.hit(Limit.login_ip, "k")
    with pytest.raises(RateLimited):
        await rl.hit(Limit.login_ip, "k")


async def test_window_moves_on(store: Store) -> None:
    rl = limiter(store, login_ip="2/second")
    await rl.hit(Limit.login_ip, "k")
    await rl.hit(Limit.login_ip, "k")
    with pytest.raises(RateLimited) as refused:
        await rl.hit(Limit.login_ip, "k")
    assert refused.value.headers["Retry-After"] == "1"
    await asyncio.sleep(1.1)
    await rl.hit(Limit.login_ip, "k")


async def test_disabled_limiter_always_admits(store: Store) -> None:
    rl = limiter(store, enabled=False, login_ip="1/hour")
    for _ in range(5):
        await rl.hit(Limit.login_ip, "k")
    assert await rl.test(Limit.login_ip, "k")


async def test_garbage_keys_map_to_stable_buckets(store: Store) -> None:
    rl = limiter(store, login_ip="2/minute")
    garbage = "x" * 10_240 + "\n\r:/{}*LIMITER/" + "\udcff"
    await rl.hit(Limit.login_ip, garbage)
    await rl.hit(Limit.login_ip, garbage)
    with pytest.raises(RateLimited):
        await rl.hit(Limit.login_ip, garbage)
    # a key that only differs after a separator is a different bucket, not a collision
    await rl.hit(Limit.login_ip, garbage + ":1")
    await rl.hit(Limit.login_ip, "")


async def test_garbage_keys_stay_small_in_redis(
    redis_store: RedisStore, redis_srv: RedisServer
) -> None:
    rl = limiter(redis_store, login_ip="2/minute")
    await rl.hit(Limit.login_ip, "a" * 10_240 + "\n:")
    with redis.Redis.from_url(redis_srv.url) as client:
        keys = client.keys("*")
    assert len(keys) == 1
    assert keys[0].startswith(b"authgate:limits:")
    assert len(keys[0]) < 120
    assert b"\n" not in keys[0]


async def test_two_processes_share_one_limit(store_factory: StoreFactory) -> None:
    one = limiter(store_factory(), login_account="10/15minutes")
    two = limiter(store_factory(), login_account="10/15minutes")
    results = await asyncio.gather(
        *(rl.hit(Limit.login_account, "alice@example.com") for rl in (one, two) for _ in range(15)),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 10


def test_every_default_name_parses() -> None:
    rl = RateLimiter(abuse_settings(rate_limits={}), MemoryStore())
    assert set(rl.items) == set(DEFAULT_RATE_LIMITS)


def test_bad_limit_string_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="login_ip"):
        limiter(MemoryStore(), login_ip="lots")


async def test_unknown_name_is_a_programming_error(store: Store) -> None:
    with pytest.raises(KeyError):
        await limiter(store).hit("no_such_limit", "k")  # type: ignore[arg-type]


async def test_outage_fails_closed_and_recovers(
    redis_store: RedisStore, redis_srv: RedisServer
) -> None:
    rl = limiter(redis_store, login_ip="3/minute")
    await rl.hit(Limit.login_ip, "k")

    redis_srv.stop()
    try:
        for _ in range(5):  # nothing is admitted while the store is down
            started = time.monotonic()
            with pytest.raises(ServiceUnavailable) as down:
                await rl.hit(Limit.login_ip, "k")
            assert time.monotonic() - started < 1.5
            assert down.value.status == 503
            assert down.value.headers["Retry-After"] == "5"
        with pytest.raises(ServiceUnavailable):
            await rl.test(Limit.login_ip, "k")
        with pytest.raises(ServiceUnavailable):
            await rl.clear(Limit.login_ip, "k")
    finally:
        redis_srv.start()

    # The same limiter works again (the restarted Redis is empty: a fresh window).
    for _ in range(3):
        await rl.hit(Limit.login_ip, "k")
    with pytest.raises(RateLimited):
        await rl.hit(Limit.login_ip, "k")
