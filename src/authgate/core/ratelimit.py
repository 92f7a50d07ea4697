"""Named rate limits (``AUTHGATE_RATE_LIMITS``) on the ``limits`` library, moving-window strategy.

A limit is a ``core.limits.Limit`` (the registry: defaults, what each is counted per, docs) and
is counted per key: ``per_ip``, ``per_address``, ``per_user`` and ``per_client`` derive the key
the one way the registry says and refuse a limit counted per something else; ``hit`` takes a
ready key (the login throttle's bucket). Keys are hashed (``key_digest``) before they reach the
store, so any string is safe.

The moving window is exact: ``10/15minutes`` admits exactly 10 hits in any 15-minute span, across
every process sharing the store. Refusals raise ``RateLimited`` with ``Retry-After`` = seconds
until the oldest hit leaves the window. When the store cannot be reached the limiter fails
closed: ``ServiceUnavailable`` (503, ``Retry-After: 5``), never an unchecked admission.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Mapping

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter

from authgate.config import Settings
from authgate.core.errors import RateLimited, ServiceUnavailable
from authgate.core.limits import Limit, Per, account_key, ip_key
from authgate.core.metrics import RATE_LIMITED
from authgate.core.store import STORE_ERRORS, Store, key_digest

logger = logging.getLogger("authgate.ratelimit")

#: Retry-After sent with a 503 when the store is down.
UNAVAILABLE_RETRY_AFTER = 5


def parse_limits(configured: Mapping[Limit, str]) -> dict[Limit, RateLimitItem]:
    """Parse every named limit; a malformed one is a configuration error at start-up."""
    items: dict[Limit, RateLimitItem] = {}
    for limit, text in configured.items():
        items[limit] = parse_limit(limit, text)
    return items


def parse_limit(name: str, text: str) -> RateLimitItem:
    try:
        return parse(text)
    except ValueError as exc:
        raise ValueError(f"rate limit {name!r}: cannot parse {text!r}") from exc


class RateLimiter:
    """Consume and inspect the named limits of ``settings.effective_rate_limits``."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.enabled = settings.rate_limits_enabled
        self.items = parse_limits(settings.effective_rate_limits)
        self._strategy = MovingWindowRateLimiter(store.limits_storage)

    def item(self, name: Limit) -> RateLimitItem:
        try:
            return self.items[name]
        except KeyError:
            raise KeyError(f"unknown rate limit {name!r}") from None

    # -- one key rule per kind of limit (``core.limits.Per``) ---------------------------

    async def per_ip(self, limit: Limit, ip_address: str | None) -> None:
        """Consume one unit of a per-address limit for the client IP."""
        await self.hit(_expect(limit, Per.client_ip), ip_key(ip_address))

    async def per_address(self, limit: Limit, address: str | None, raw: str = "") -> None:
        """Consume one unit of a per-email-address limit (key: ``account_key(address, raw)``),
        whether or not an account has the address."""
        await self.hit(_expect(limit, Per.address), account_key(address, raw))

    async def per_user(self, limit: Limit, user_id: uuid.UUID) -> None:
        """Consume one unit of a per-user limit."""
        await self.hit(_expect(limit, Per.user), str(user_id))

    async def per_client(self, limit: Limit, client_id: str) -> None:
        """Consume one unit of a per-service-client limit (an authenticated client id)."""
        await self.hit(_expect(limit, Per.client), client_id)

    async def check_per_ip(self, limit: Limit, ip_address: str | None) -> None:
        """Raise ``RateLimited`` if the client IP has spent a per-address limit; consumes
        nothing (for limits spent on failures only, checked before the attempt)."""
        key = ip_key(ip_address)
        if await self.test(_expect(limit, Per.client_ip), key):
            return
        try:
            stats = await self._strategy.get_window_stats(self.item(limit), limit, key_digest(key))
        except STORE_ERRORS as exc:
            raise _unavailable(limit, exc) from exc
        RATE_LIMITED.labels(limit).inc()
        raise RateLimited(retry_after=_seconds_until(stats.reset_time))

    # -- primitives -------------------------------------------------------------------------

    async def hit(self, name: Limit, key: str, cost: int = 1) -> None:
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

    async def test(self, name: Limit, key: str) -> bool:
        """Would one hit pass now? Consumes nothing. Raises ``ServiceUnavailable`` if down."""
        if not self.enabled:
            return True
        item = self.item(name)
        try:
            return bool(await self._strategy.test(item, name, key_digest(key)))
        except STORE_ERRORS as exc:
            raise _unavailable(name, exc) from exc

    async def clear(self, name: Limit, key: str) -> None:
        """Forget every hit of ``key`` on limit ``name``."""
        item = self.item(name)
        try:
            await self._strategy.clear(item, name, key_digest(key))
        except STORE_ERRORS as exc:
            raise _unavailable(name, exc) from exc


def _expect(limit: Limit, per: Per) -> Limit:
    """The registry decides what a limit is counted per; anything else is a programming error."""
    if limit.spec.per is not per:
        raise TypeError(f"rate limit {limit.value!r} is counted per {limit.spec.per.name}")
    return limit


def _seconds_until(reset_time: float) -> int:
    return max(1, math.ceil(reset_time - time.time()))


def _unavailable(name: str, exc: Exception) -> ServiceUnavailable:
    logger.warning("store.unavailable", extra={"limit": name, "error": type(exc).__name__})
    return ServiceUnavailable(retry_after=UNAVAILABLE_RETRY_AFTER)
