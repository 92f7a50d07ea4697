"""Named rate limits (``AUTHGATE_RATE_LIMITS``) on the ``limits`` library, moving-window strategy.

A limit is looked up by name (``login_ip``, ``login_account``, … see ``DEFAULT_RATE_LIMITS`` and
docs/rate-limits.md) and counted per caller-supplied key (client IP, normalised email, user id,
client id). Keys are hashed (``key_digest``) before they reach the store, so any string is safe.

The moving window is exact: ``10/15minutes`` admits exactly 10 hits in any 15-minute span, across
every process sharing the store. Refusals raise ``RateLimited`` with ``Retry-After`` = seconds
until the oldest hit leaves the window. When the store cannot be reached the limiter fails
closed: ``ServiceUnavailable`` (503, ``Retry-After: 5``), never an unchecked admission.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter

from authgate.config import Settings
from authgate.core.errors import RateLimited, ServiceUnavailable
from authgate.core.metrics import RATE_LIMITED
from authgate.core.store import STORE_ERRORS, Store, key_digest

logger = logging.getLogger("authgate.ratelimit")

#: Retry-After sent with a 503 when the store is down.
UNAVAILABLE_RETRY_AFTER = 5


def parse_limits(configured: dict[str, str]) -> dict[str, RateLimitItem]:
    """Parse every named limit; a malformed one is a configuration error at start-up."""
    items: dict[str, RateLimitItem] = {}
    for name, text in configured.items():
        try:
            items[name] = parse(text)
        except ValueError as exc:
            raise ValueError(f"rate limit {name!r}: cannot parse {text!r}") from exc
    return items


class RateLimiter:
    """Consume and inspect the named limits of ``settings.effective_rate_limits``."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.enabled = settings.rate_limits_enabled
        self.items = parse_limits(settings.effective_rate_limits)
        self._strategy = MovingWindowRateLimiter(store.limits_storage)

    def item(self, name: str) -> RateLimitItem:
        try:
            return self.items[name]
        except KeyError:
            raise KeyError(f"unknown rate limit {name!r}") from None

    async def hit(self, name: str, key: str, cost: int = 1) -> None:
        """Consume ``cost`` from limit ``name`` for ``key``.

        Raises ``RateLimited`` (429) when over the limit, ``ServiceUnavailable`` (503) when the
        store is unreachable. A disabled limiter (``rate_limits_enabled=false``) always admits.
        """
        if not self.enabled:
            return
        item = self.item(name)
        bucket = key_digest(key)
        try:
            if await self._strategy.hit(item, name, bucket, cost=cost):
                return
            stats = await self._strategy.get_window_stats(item, name, bucket)
        except STORE_ERRORS as exc:
            raise _unavailable(name, exc) from exc
        RATE_LIMITED.labels(name).inc()
        logger.info("ratelimit.refused", extra={"limit": name})
        raise RateLimited(retry_after=_seconds_until(stats.reset_time))

    async def test(self, name: str, key: str) -> bool:
        """Would one hit pass now? Consumes nothing. Raises ``ServiceUnavailable`` if down."""
        if not self.enabled:
            return True
        item = self.item(name)
        try:
            return bool(await self._strategy.test(item, name, key_digest(key)))
        except STORE_ERRORS as exc:
            raise _unavailable(name, exc) from exc

    async def clear(self, name: str, key: str) -> None:
        """Forget every hit of ``key`` on limit ``name``."""
        item = self.item(name)
        try:
            await self._strategy.clear(item, name, key_digest(key))
        except STORE_ERRORS as exc:
            raise _unavailable(name, exc) from exc


def _seconds_until(reset_time: float) -> int:
    return max(1, math.ceil(reset_time - time.time()))


def _unavailable(name: str, exc: Exception) -> ServiceUnavailable:
    logger.warning("store.unavailable", extra={"limit": name, "error": type(exc).__name__})
    return ServiceUnavailable(retry_after=UNAVAILABLE_RETRY_AFTER)
