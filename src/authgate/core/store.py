"""Shared short-lived state: revocation flags, small caches, counters and rate-limit windows.

Two implementations of one ``Store`` protocol:

* ``MemoryStore``: a dict with expiry inside the process (the embedded default; one process only).
* ``RedisStore``: Redis, shared by every replica (``AUTHGATE_REDIS_URL``). Every key is prefixed
  ``authgate:``; every failure (refused connection, timeout, protocol error) surfaces as
  ``StoreUnavailable`` within about ``store_timeout`` seconds, and the client reconnects by
  itself once Redis is back, so nothing has to be rebuilt after an outage.

Callers decide what an unreachable store means; for anything that guards security (rate limits,
revocation) the answer is "fail closed": turn ``StoreUnavailable`` into ``ServiceUnavailable``.

Keys given to a store are chosen by the code, not by users: hash anything untrusted first
(``key_digest``).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import redis.asyncio as aioredis
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.errors import StorageError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from authgate.config import Settings
from authgate.core.time import utc_now

logger = logging.getLogger("authgate.store")

KEY_PREFIX = "authgate:"
LIMITS_PREFIX = KEY_PREFIX + "limits"

#: Everything a store (or the ``limits`` storage built on it) raises when the backend is gone.
#: ``OSError`` covers refused connections and ``TimeoutError`` (a subclass since Python 3.11).
STORE_ERRORS: tuple[type[Exception], ...] = (RedisError, StorageError, OSError)


class StoreUnavailable(Exception):
    """The shared store could not be reached (or did not answer in time)."""


def key_digest(value: str) -> str:
    """A fixed-size, separator-free stand-in for an untrusted key part (IP, email, client id).

    128 bits of SHA-256 in hex: garbage of any length (newlines, colons, 10 KB) maps to one
    stable 32-character bucket, so it can neither blow up key space nor forge another key.
    """
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class Store(Protocol):
    """Short-lived shared state. Every method but ``ping`` raises ``StoreUnavailable``."""

    #: The same backend as a ``limits`` storage, for ``RateLimiter``.
    limits_storage: Storage

    async def set_flag(self, key: str, ttl_seconds: float) -> None:
        """Set ``key`` for ``ttl_seconds`` (e.g. a revoked session id until its tokens expire)."""
        ...

    async def has_flag(self, key: str) -> bool: ...

    async def has_any_flag(self, keys: Sequence[str]) -> list[bool]:
        """``has_flag`` for each key, in order, in one round trip."""
        ...

    async def get_float(self, key: str) -> float | None: ...

    async def get_floats(self, keys: Sequence[str]) -> list[float | None]:
        """``get_float`` for each key, in order, in one round trip."""
        ...

    async def set_float(self, key: str, value: float, ttl_seconds: float) -> None: ...

    async def set_float_if_absent(self, key: str, value: float, ttl_seconds: float) -> bool:
        """``set_float`` unless the key exists (atomically); whether it was set."""
        ...

    async def incr(self, key: str, ttl_seconds: float, amount: int = 1) -> int:
        """Atomically add ``amount`` and (re)start the key's life at ``ttl_seconds``; new value."""
        ...

    async def delete(self, *keys: str) -> None:
        """Remove the keys (absent ones are ignored), in one round trip."""
        ...

    async def ping(self) -> bool:
        """Is the backend reachable? For readiness probes; never raises."""
        ...

    async def close(self) -> None: ...


class _MemoryLimitsStorage(MemoryStorage):
    """``limits``' memory storage, with a ``clear`` that cannot break its expiry task.

    The upstream ``clear`` pops the key while the background sweep may be about to read it,
    which kills the sweep with a ``KeyError``; an empty list is swept away normally instead.
    """

    async def clear(self, key: str) -> None:
        self.storage.pop(key, None)
        self.expirations.pop(key, None)
        if key in self.events:
            self.events[key] = []

    async def aclose(self) -> None:
        if self.timer is not None and not self.timer.done():
            self.timer.cancel()
        await self.reset()


class _RedispyLimitsStorage(RedisStorage):
    """``limits``' Redis storage, loading only redis-py.

    The stock class imports every client it could use (coredis, valkey and their dependencies)
    when it is built; authgate only ever uses redis-py. No ``STORAGE_SCHEME`` here, so the
    ``limits`` scheme registry is left untouched.
    """

    # redis>=5.2 is pinned by pyproject.toml; None skips the version lookup.
    DEPENDENCIES = {"redis": None}  # noqa: RUF012 - overrides the upstream attribute


def _ttl_ms(ttl_seconds: float) -> int:
    return max(1, math.ceil(ttl_seconds * 1000))


class MemoryStore(Store):
    """In-process store for a single process (development, tests, one-replica deployments).

    Time is read from ``core.time.utc_now`` so tests may move the clock. Every operation is a
    single synchronous step between awaits, hence atomic for all coroutines of the loop.
    """

    #: Sweep expired entries when the dict grows past this many keys since the last sweep.
    SWEEP_EVERY = 10_000

    def __init__(self) -> None:
        self._data: dict[str, tuple[float, float]] = {}  # key -> (value, expires_at)
        self._next_sweep = self.SWEEP_EVERY
        self.limits_storage = _MemoryLimitsStorage()

    @staticmethod
    def _now() -> float:
        return utc_now().timestamp()

    def _get(self, key: str) -> float | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires_at = item
        if expires_at <= self._now():
            del self._data[key]
            return None
        return value

    def _put(self, key: str, value: float, ttl_seconds: float) -> None:
        self._data[key] = (value, self._now() + max(ttl_seconds, 0.001))
        if len(self._data) >= self._next_sweep:
            now = self._now()
            self._data = {k: v for k, v in self._data.items() if v[1] > now}
            self._next_sweep = len(self._data) + self.SWEEP_EVERY

    async def set_flag(self, key: str, ttl_seconds: float) -> None:
        self._put(key, 1.0, ttl_seconds)

    async def has_flag(self, key: str) -> bool:
        return self._get(key) is not None

    async def has_any_flag(self, keys: Sequence[str]) -> list[bool]:
        return [self._get(key) is not None for key in keys]

    async def get_float(self, key: str) -> float | None:
        return self._get(key)

    async def get_floats(self, keys: Sequence[str]) -> list[float | None]:
        return [self._get(key) for key in keys]

    async def set_float(self, key: str, value: float, ttl_seconds: float) -> None:
        self._put(key, float(value), ttl_seconds)

    async def set_float_if_absent(self, key: str, value: float, ttl_seconds: float) -> bool:
        if self._get(key) is not None:
            return False
        self._put(key, float(value), ttl_seconds)
        return True

    async def incr(self, key: str, ttl_seconds: float, amount: int = 1) -> int:
        value = int(self._get(key) or 0) + amount
        self._put(key, float(value), ttl_seconds)
        return value

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._data.pop(key, None)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()
        await self.limits_storage.aclose()


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except STORE_ERRORS as exc:
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
        except STORE_ERRORS:
            return False

    async def close(self) -> None:
        await self._redis.aclose()
        await self._pool.aclose()


def _limits_uri(url: str) -> str:
    """The ``limits`` spelling of a redis-py URL (only parsed: the pool is shared)."""
    if url.startswith("unix://"):
        return "async+redis+unix://" + url.removeprefix("unix://")
    return "async+" + url


def make_store(settings: Settings) -> Store:
    """Redis when ``AUTHGATE_REDIS_URL`` is set, else the in-process store. Connects lazily."""
    if settings.redis_url:
        return RedisStore.from_settings(settings)
    return MemoryStore()
