"""The Redis ``Store`` (``AUTHGATE_REDIS_URL``), shared by every replica; see ``core/store.py``.

A module of its own so that a process without Redis never imports redis-py (``make_store``
imports this only when the URL is set).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis.asyncio as aioredis
from limits.aio.storage import RedisStorage
from limits.errors import StorageError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from authgate.config import Settings
from authgate.core.store import KEY_PREFIX, LIMITS_PREFIX, Store, StoreUnavailable

__all__ = ["RedisStore"]

logger = logging.getLogger("authgate.store")

#: Everything a Redis call raises when Redis is gone.
_REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, StorageError, OSError)


def _ttl_ms(ttl_seconds: float) -> int:
    return max(1, math.ceil(ttl_seconds * 1000))


class _RedispyLimitsStorage(RedisStorage):
    """``limits``' Redis storage, loading only redis-py.

    The stock class imports every client it could use (coredis, valkey and their dependencies)
    when it is built; authgate only ever uses redis-py. No ``STORAGE_SCHEME`` here, so the
    ``limits`` scheme registry is left untouched.
    """

    # redis>=5.2 is pinned by pyproject.toml; None skips the version lookup.
    DEPENDENCIES = {"redis": None}  # noqa: RUF012 - overrides the upstream attribute


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except _REDIS_ERRORS as exc:
        logger.warning("store.unavailable", extra={"error": type(exc).__name__})
        raise StoreUnavailable(str(exc) or type(exc).__name__) from exc


class RedisStore(Store):
    """Redis-backed store, shared by every process pointing at the same Redis.

    One connection pool serves both this store and the ``limits`` storage. Socket timeouts of
    ``settings.store_timeout`` bound every call; a failed command is retried once, immediately,
    and only for connection errors (a pooled connection that died with a Redis restart), so an
    outage is reported in about one timeout rather than after a long back-off.
    """

    def __init__(self, url: str, *, timeout: float = 0.5) -> None:
        self._pool: aioredis.ConnectionPool = aioredis.ConnectionPool.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            health_check_interval=30,
        )
        self._redis = aioredis.Redis(connection_pool=self._pool)
        self.limits_storage = _RedispyLimitsStorage(
            _limits_uri(url),
            wrap_exceptions=True,
            implementation="redispy",
            key_prefix=LIMITS_PREFIX,
            connection_pool=self._pool,  # type: ignore[arg-type]  # passed through to redis-py
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisStore:
        if not settings.redis_url:
            raise ValueError("AUTHGATE_REDIS_URL is not set")
        return cls(settings.redis_url, timeout=settings.store_timeout)

    @staticmethod
    def _k(key: str) -> str:
        return KEY_PREFIX + key

    async def set_flag(self, key: str, ttl_seconds: float) -> None:
        with _unavailable():
            await self._redis.set(self._k(key), b"1", px=_ttl_ms(ttl_seconds))

    async def has_flag(self, key: str) -> bool:
        with _unavailable():
            return bool(await self._redis.exists(self._k(key)))

    async def has_any_flag(self, keys: Sequence[str]) -> list[bool]:
        if not keys:
            return []
        with _unavailable():
            values = await self._redis.mget([self._k(key) for key in keys])
        return [value is not None for value in values]

    async def get_float(self, key: str) -> float | None:
        with _unavailable():
            raw = await self._redis.get(self._k(key))
        return None if raw is None else float(raw)

    async def get_floats(self, keys: Sequence[str]) -> list[float | None]:
        if not keys:
            return []
        with _unavailable():
            values = await self._redis.mget([self._k(key) for key in keys])
        return [None if raw is None else float(raw) for raw in values]

    async def set_float(self, key: str, value: float, ttl_seconds: float) -> None:
        with _unavailable():
            await self._redis.set(self._k(key), repr(float(value)), px=_ttl_ms(ttl_seconds))

    async def set_float_if_absent(self, key: str, value: float, ttl_seconds: float) -> bool:
        with _unavailable():
            done = await self._redis.set(
                self._k(key), repr(float(value)), px=_ttl_ms(ttl_seconds), nx=True
            )
        return bool(done)

    async def incr(self, key: str, ttl_seconds: float, amount: int = 1) -> int:
        name = self._k(key)
        with _unavailable():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(name, amount)
                pipe.pexpire(name, _ttl_ms(ttl_seconds))
                value, _ = await pipe.execute()
        return int(value)

    async def delete(self, *keys: str) -> None:
        if not keys:
            return
        with _unavailable():
            await self._redis.delete(*(self._k(key) for key in keys))

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except _REDIS_ERRORS:
            return False

    async def close(self) -> None:
        await self._redis.aclose()
        await self._pool.aclose()


def _limits_uri(url: str) -> str:
    """The ``limits`` spelling of a redis-py URL (only parsed: the pool is shared)."""
    if url.startswith("unix://"):
        return "async+redis+unix://" + url.removeprefix("unix://")
    return "async+" + url
