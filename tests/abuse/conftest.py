"""Fixtures for the abuse-protection tests: one real Redis for the session, and every store test
run twice, against ``MemoryStore`` and ``RedisStore`` (Redis flushed before each test).

The outage tests stop and restart that Redis on the same port; ``redis_srv`` always hands out a
running server, so a failing outage test cannot leave the next one without Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from authgate.core.redis_store import RedisStore
from authgate.core.store import MemoryStore, Store
from tests.support.abuse import FUNCTIONAL_TIMEOUT, OUTAGE_TIMEOUT, StoreFactory
from tests.support.servers import RedisServer, redis_server


@pytest.fixture(scope="session")
def _redis_session() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def redis_srv(_redis_session: RedisServer) -> Iterator[RedisServer]:
    server = _redis_session
    if server.process is None:  # an earlier outage test failed before restarting it
        server.start()
    with redis.Redis.from_url(server.url) as client:
        client.flushdb()
    yield server
    if server.process is None:
        server.start()


@pytest.fixture(params=["memory", "redis"])
async def store_factory(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    """Builds stores of one kind; several Redis stores stand for several processes."""
    made: list[Store] = []
    url = request.getfixturevalue("redis_srv").url if request.param == "redis" else None
    shared_memory = MemoryStore()

    def factory() -> Store:
        if url is None:
            return shared_memory  # one process: every "instance" is the same dict
        store = RedisStore(url, timeout=FUNCTIONAL_TIMEOUT)
        made.append(store)
        return store

    yield factory
    for store in made:
        await store.close()
    await shared_memory.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    return store_factory()


@pytest.fixture
async def redis_store(redis_srv: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_srv.url, timeout=OUTAGE_TIMEOUT)
    yield store
    await store.close()
