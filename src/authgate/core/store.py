"""Shared short-lived state: revocation flags, small caches, counters and rate-limit windows.

Two implementations of one ``Store`` protocol:

* ``MemoryStore``: a dict with expiry inside the process (the embedded default; one process only).
* ``RedisStore`` (``core/redis_store.py``, imported only when ``AUTHGATE_REDIS_URL`` is set: redis-py
  costs a process ~20 MB of memory): Redis, shared by every replica. Every key is prefixed
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
from collections.abc import Sequence
from typing import Protocol

from limits.aio.storage import MemoryStorage, Storage
from limits.errors import StorageError

from authgate.config import Settings
from authgate.core.time import utc_now

logger = logging.getLogger("authgate.store")

KEY_PREFIX = "authgate:"
LIMITS_PREFIX = KEY_PREFIX + "limits"

#: Everything the ``limits`` storage of a store raises when the backend is gone (it wraps the
#: backend's own errors in ``StorageError``). ``OSError`` covers refused connections and
#: ``TimeoutError`` (a subclass since Python 3.11).
STORE_ERRORS: tuple[type[Exception], ...] = (StorageError, OSError)


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


def make_store(settings: Settings) -> Store:
    """Redis when ``AUTHGATE_REDIS_URL`` is set, else the in-process store. Connects lazily."""
    if settings.redis_url:
        from authgate.core.redis_store import RedisStore

        return RedisStore.from_settings(settings)
    return MemoryStore()
