"""The principal snapshot cache refills single-flight: concurrent misses share one query."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from authgate.core.time import utc_now
from authgate.sessions.access import PrincipalCache, PrincipalSnapshot

WAITERS = 32


def _snapshot(user_id: uuid.UUID, session_id: uuid.UUID, name: str = "Ada") -> PrincipalSnapshot:
    now = utc_now()
    return PrincipalSnapshot(
        user_id=user_id,
        email="ada@example.com",
        name=name,
        email_verified=True,
        is_active=True,
        is_superuser=False,
        roles=[],
        created_at=now,
        updated_at=now,
        tokens_valid_after=0.0,
        session_id=session_id,
        session_revoked=False,
        session_expires_at=now + timedelta(days=1),
    )


class SlowLoader:
    """A database read that waits until released, counting how often it is made."""

    def __init__(self, result: PrincipalSnapshot | None) -> None:
        self.result = result
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self) -> PrincipalSnapshot | None:
        self.calls += 1
        await self.release.wait()
        return self.result


async def _miss_together(
    cache: PrincipalCache, loader: SlowLoader, user_id: uuid.UUID, session_id: uuid.UUID
) -> list[PrincipalSnapshot | None]:
    waiting = [
        asyncio.create_task(cache.get_or_load(user_id, session_id, loader)) for _ in range(WAITERS)
    ]
    await asyncio.sleep(0)  # every caller has missed and is waiting
    loader.release.set()
    return await asyncio.gather(*waiting)


async def test_concurrent_misses_run_one_query() -> None:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    cache = PrincipalCache(ttl=60)
    loader = SlowLoader(_snapshot(user_id, session_id))

    results = await _miss_together(cache, loader, user_id, session_id)

    assert loader.calls == 1
    assert all(result is loader.result for result in results)
    # Stored: the next call is a hit, no query.
    assert await cache.get_or_load(user_id, session_id, loader) is loader.result
    assert loader.calls == 1


async def test_other_keys_are_loaded_on_their_own() -> None:
    user_id = uuid.uuid4()
    cache = PrincipalCache(ttl=60)
    loaders = [SlowLoader(_snapshot(user_id, uuid.uuid4())) for _ in range(3)]
    waiting = [
        asyncio.create_task(cache.get_or_load(user_id, loader.result.session_id, loader))
        for loader in loaders
        if loader.result is not None
    ]
    await asyncio.sleep(0)
    for loader in loaders:
        loader.release.set()
    await asyncio.gather(*waiting)
    assert [loader.calls for loader in loaders] == [1, 1, 1]


async def test_an_absent_principal_is_shared_but_not_stored() -> None:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    cache = PrincipalCache(ttl=60)
    loader = SlowLoader(None)

    assert await _miss_together(cache, loader, user_id, session_id) == [None] * WAITERS
    assert loader.calls == 1
    assert await cache.get_or_load(user_id, session_id, loader) is None
    assert loader.calls == 2


async def test_a_failed_query_fails_every_waiter_and_the_next_miss_retries() -> None:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    cache = PrincipalCache(ttl=60)
    calls = 0
    release = asyncio.Event()

    async def failing() -> PrincipalSnapshot | None:
        nonlocal calls
        calls += 1
        await release.wait()
        raise ConnectionError("database down")

    waiting = [
        asyncio.create_task(cache.get_or_load(user_id, session_id, failing)) for _ in range(WAITERS)
    ]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert calls == 1
    assert all(isinstance(result, ConnectionError) for result in results)

    snapshot = _snapshot(user_id, session_id)
    loader = SlowLoader(snapshot)
    loader.release.set()
    assert await cache.get_or_load(user_id, session_id, loader) is snapshot


async def test_a_caller_that_goes_away_does_not_cancel_the_query_for_the_others() -> None:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    cache = PrincipalCache(ttl=60)
    loader = SlowLoader(_snapshot(user_id, session_id))
    first = asyncio.create_task(cache.get_or_load(user_id, session_id, loader))
    second = asyncio.create_task(cache.get_or_load(user_id, session_id, loader))
    await asyncio.sleep(0)
    first.cancel()
    loader.release.set()
    assert await second is loader.result
    with pytest.raises(asyncio.CancelledError):
        await first
    assert loader.calls == 1


@pytest.mark.parametrize("invalidate", ["forget_user", "forget_sessions", "clear"])
async def test_a_refill_in_flight_during_an_invalidation_is_not_stored(invalidate: str) -> None:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    cache = PrincipalCache(ttl=60)
    stale = SlowLoader(_snapshot(user_id, session_id, name="before"))
    waiting = asyncio.create_task(cache.get_or_load(user_id, session_id, stale))
    await asyncio.sleep(0)
    if invalidate == "forget_user":
        cache.forget_user(user_id)
    elif invalidate == "forget_sessions":
        cache.forget_sessions([session_id])
    else:
        cache.clear()
    # A miss after the change does not join the old query: it reads again.
    fresh = SlowLoader(_snapshot(user_id, session_id, name="after"))
    fresh.release.set()
    assert await cache.get_or_load(user_id, session_id, fresh) is fresh.result
    stale.release.set()
    assert await waiting is stale.result
    assert cache.get(user_id, session_id) is fresh.result  # the stale read was not stored


async def test_without_the_cache_every_call_queries() -> None:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    cache = PrincipalCache(ttl=0)
    loader = SlowLoader(_snapshot(user_id, session_id))
    await _miss_together(cache, loader, user_id, session_id)
    assert loader.calls == WAITERS
