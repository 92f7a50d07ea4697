"""Per-account login throttle: parallel guesses, growing delays, the hard cap, fail closed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from authgate.core.errors import RateLimited, ServiceUnavailable
from authgate.core.http import ClientInfo
from authgate.core.redis_store import RedisStore
from authgate.core.store import MemoryStore, Store
from authgate.core.throttle import LoginThrottle
from tests.support.abuse import StoreFactory, abuse_settings
from tests.support.servers import RedisServer

ALICE = "alice@example.com"


def throttle(store: Store, login_account: str = "1000/hour", **options: Any) -> LoginThrottle:
    settings = abuse_settings(rate_limits={"login_account": login_account})
    return LoginThrottle(settings, store, **options)


async def admitted(th: LoginThrottle, account: str) -> bool:
    try:
        await th.reserve(account)
    except RateLimited:
        return False
    return True


def retry_after(exc: pytest.ExceptionInfo[RateLimited]) -> int:
    return int(exc.value.headers["Retry-After"])


def test_default_schedule() -> None:
    th = LoginThrottle(abuse_settings(), MemoryStore())
    assert [th.delay_for(n) for n in range(1, 12)] == [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32]
    assert th.delay_for(15) == 512
    assert th.delay_for(16) == 900
    assert th.delay_for(10_000) == 900
    assert th.max_consecutive == 100
    assert th.window == 3600


async def test_parallel_guesses_are_bounded_by_the_account_limit(store: Store) -> None:
    # Free failures out of the way: this is about the login_account window alone.
    th = throttle(store, login_account="10/15minutes", free_failures=1000)
    results = await asyncio.gather(*(admitted(th, ALICE) for _ in range(50)))
    assert sum(results) <= 10 + 2
    assert sum(results) == 10  # the moving window is exact
    # the account is the key, not the caller: another account is untouched
    assert await admitted(th, "bob@example.com")


async def test_parallel_guesses_from_two_processes(store_factory: StoreFactory) -> None:
    one = throttle(store_factory(), login_account="10/15minutes")
    two = throttle(store_factory(), login_account="10/15minutes")
    results = await asyncio.gather(*(admitted(th, ALICE) for th in (one, two) for _ in range(25)))
    assert sum(results) <= 10 + 2
    # Pending attempts count as failures: no more than 6 sequential guesses get (5 free + the
    # one that starts the first delay).
    assert sum(results) == 6


async def test_parallel_guesses_get_no_more_evaluations_than_sequential(store: Store) -> None:
    th = throttle(store, login_account="10/15minutes")
    sequential = 0
    while await admitted(th, ALICE):
        sequential += 1
        await th.failure(ALICE)
    assert sequential == 6

    bob = "bob@example.com"
    parallel = sum(await asyncio.gather(*(admitted(th, bob) for _ in range(50))))
    assert parallel <= sequential
    # The refused ones gave their slot back; reporting the admitted ones starts the delay.
    for _ in range(parallel):
        await th.failure(bob)
    with pytest.raises(RateLimited):
        await th.check(bob)


async def test_a_success_meanwhile_does_not_free_the_other_pending_slots(store: Store) -> None:
    th = throttle(store, login_account="10/15minutes")
    assert all(await asyncio.gather(*(admitted(th, ALICE) for _ in range(6))))
    await th.success(ALICE)  # one of the six was right: the other five are still in flight
    assert await admitted(th, ALICE)
    assert not await admitted(th, ALICE)


async def test_delays_grow_and_expire(store: Store) -> None:
    th = throttle(store, free_failures=2, base_delay=0.3)
    for _ in range(2):  # free failures: no delay
        await th.reserve(ALICE)
        await th.failure(ALICE)
    await th.check(ALICE)

    await th.reserve(ALICE)
    await th.failure(ALICE)  # 3rd: 0.3 s
    with pytest.raises(RateLimited) as delayed:
        await th.reserve(ALICE)
    assert retry_after(delayed) == 1
    await asyncio.sleep(0.4)
    await th.check(ALICE)

    await th.reserve(ALICE)
    await th.failure(ALICE)  # 4th: 0.6 s
    await asyncio.sleep(0.35)
    with pytest.raises(RateLimited):
        await th.check(ALICE)  # still inside the longer delay
    await asyncio.sleep(0.4)
    await th.reserve(ALICE)
    assert await admitted(th, "bob@example.com")


async def test_success_resets_the_delay(store: Store) -> None:
    th = throttle(store, free_failures=1, base_delay=60)
    await th.reserve(ALICE)
    await th.failure(ALICE)
    await th.reserve(ALICE)
    await th.failure(ALICE)
    with pytest.raises(RateLimited) as delayed:
        await th.check(ALICE)
    assert 59 <= retry_after(delayed) <= 60
    await th.success(ALICE)  # e.g. after a password reset
    await th.reserve(ALICE)
    await th.failure(ALICE)  # counting starts again: the first failure is free
    await th.check(ALICE)


async def test_hard_cap_of_100_consecutive_attempts(store: Store) -> None:
    # Unreported attempts also count as pending failures; free failures keep that out of the way.
    th = throttle(store, free_failures=1000)
    for _ in range(100):
        await th.reserve(ALICE)
    with pytest.raises(RateLimited) as locked:
        await th.reserve(ALICE)
    assert retry_after(locked) == 3600
    with pytest.raises(RateLimited):
        await th.check(ALICE)
    await th.check("bob@example.com")


async def test_success_before_the_cap_restarts_the_count(store: Store) -> None:
    th = throttle(store, max_consecutive=3)
    for _ in range(3):
        await th.reserve(ALICE)
    await th.success(ALICE)
    for _ in range(3):
        await th.reserve(ALICE)
    assert not await admitted(th, ALICE)


async def test_hard_cap_lock_is_not_permanent(store: Store) -> None:
    th = throttle(store, max_consecutive=3, window=0.5)
    for _ in range(3):
        await th.reserve(ALICE)
        await th.failure(ALICE)
    assert not await admitted(th, ALICE)
    assert not await admitted(th, ALICE)  # refusals while locked do not extend the lock
    await asyncio.sleep(0.7)
    await th.reserve(ALICE)


async def test_disabled_throttle_admits_everything(store: Store) -> None:
    settings = abuse_settings(rate_limits_enabled=False, rate_limits={"login_account": "1/hour"})
    th = LoginThrottle(settings, store, max_consecutive=1)
    for _ in range(10):
        await th.reserve(ALICE)
        await th.failure(ALICE)
    await th.check(ALICE)


async def test_garbage_account_keys(store: Store) -> None:
    th = throttle(store, max_consecutive=2)
    garbage = "\n:" * 5_000 + "\udcff"
    await th.reserve(garbage)
    await th.failure(garbage)
    await th.reserve(garbage)
    assert not await admitted(th, garbage)
    assert await admitted(th, garbage + "\n")


async def test_outage_fails_closed_and_recovers(
    redis_store: RedisStore, redis_srv: RedisServer
) -> None:
    th = throttle(redis_store, login_account="10/15minutes")
    await th.reserve(ALICE)

    redis_srv.stop()
    try:
        for call in (th.check, th.reserve, th.failure, th.success):
            started = time.monotonic()
            with pytest.raises(ServiceUnavailable):
                await call(ALICE)
            assert time.monotonic() - started < 1.5
    finally:
        redis_srv.start()

    await th.check(ALICE)
    await th.reserve(ALICE)
    await th.failure(ALICE)
    await th.success(ALICE)


OWNER = ClientInfo("198.51.100.20", "Mozilla/5.0 (owner's browser)")


async def exhaust(th: LoginThrottle, bucket: str) -> None:
    while await admitted(th, bucket):
        await th.failure(bucket)


async def test_a_known_device_has_a_bucket_of_its_own(store: Store) -> None:
    th = throttle(store, login_account="10/15minutes", device_secret=b"k" * 32)
    assert await th.bucket(ALICE, OWNER) == ALICE  # not known yet
    await th.remember_device(ALICE, OWNER)
    own = await th.bucket(ALICE, OWNER)
    assert own != ALICE
    assert ALICE not in own and "owner" not in own  # digests only

    await exhaust(th, ALICE)  # strangers' guesses
    assert not await admitted(th, ALICE)
    assert await admitted(th, own)
    await th.success(own)

    # Being known takes the IP *and* the User-Agent, for this account only.
    for other in (
        ClientInfo(OWNER.ip_address, "Mozilla/5.0 (attacker)"),
        ClientInfo("203.0.113.99", OWNER.user_agent),
        ClientInfo(OWNER.ip_address, None),
        ClientInfo(None, OWNER.user_agent),
        None,
    ):
        assert await th.bucket(ALICE, other) == ALICE
    assert await th.bucket("bob@example.com", OWNER) == "bob@example.com"
    # Another process with the same secret agrees; one with another secret does not.
    assert await throttle(store, device_secret=b"k" * 32).bucket(ALICE, OWNER) == own
    assert await throttle(store, device_secret=b"x" * 32).bucket(ALICE, OWNER) == ALICE

    # Its own failures throttle it like any bucket.
    await exhaust(th, own)
    assert not await admitted(th, own)


async def test_lift_clears_the_account_window_and_every_device_bucket(store: Store) -> None:
    th = throttle(store, login_account="10/15minutes", device_secret=b"k" * 32)
    await th.remember_device(ALICE, OWNER)
    own = await th.bucket(ALICE, OWNER)
    for bucket in (ALICE, own):
        for _ in range(10):  # the whole login_account window, no delays involved
            await th.reserve(bucket)
            await th.success(bucket)
        assert not await admitted(th, bucket)

    resetter = ClientInfo("192.0.2.44", "Mozilla/5.0 (phone)")
    await th.lift(ALICE, resetter)
    assert await admitted(th, ALICE)  # the login_account window too, not just the delays
    fresh = await th.bucket(ALICE, OWNER)
    assert fresh != own
    assert await admitted(th, fresh)
    assert await th.bucket(ALICE, resetter) != ALICE  # the reset's browser is known now
