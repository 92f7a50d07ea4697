"""Per-account brute-force throttle for password logins (NIST SP 800-63B rev 4 §3.2.2, OWASP).

Keyed by the account (the normalised email, hashed), whatever IP the attempts come from. Three
layers, all stored with an expiry so nothing an anonymous attacker triggers is permanent:

1. **Rate limit** ``login_account`` (default ``10/15minutes``), consumed atomically by
   ``reserve`` *before* the password is evaluated: 50 parallel guesses get at most 10
   evaluations; the rest are refused with 429 straight away.
2. **Growing delay** after consecutive failures (``failure``): the first 5 are free, then the
   account refuses logins for 1 s, 2 s, 4 s, … doubling per further failure, capped at 15 min:

   ====================  ======  ======  ======  ===  =======  =========
   consecutive failures  1 to 5  6       7       8    …        16 and on
   delay after it        none    1 s     2 s     4 s  …        15 min
   ====================  ======  ======  ======  ===  =======  =========

3. **Hard cap**: at most 100 consecutive attempts are evaluated without a success (counted by
   ``reserve``); the 101st locks the account's password login for 1 hour.

Counters live 1 hour after the last attempt/failure and then start again from zero; a success
(``success``) resets them and lifts any delay. The throttle only guards password login: forgot
and reset password use other limits, so the owner can always regain the account (call
``success`` after a successful reset to lift the delay at once).

``settings.rate_limits_enabled = false`` switches the throttle off along with the rate limits.
A store that cannot be reached makes every method raise ``ServiceUnavailable`` (fail closed).
"""

from __future__ import annotations

import logging
import math

from authgate.config import Settings
from authgate.core.errors import RateLimited, ServiceUnavailable
from authgate.core.metrics import RATE_LIMITED
from authgate.core.ratelimit import UNAVAILABLE_RETRY_AFTER, RateLimiter
from authgate.core.store import Store, StoreUnavailable, key_digest
from authgate.core.time import utc_now

logger = logging.getLogger("authgate.throttle")

#: The named rate limit ``reserve`` consumes.
RATE_LIMIT_NAME = "login_account"
#: Metric label of refusals by the delay or the hard cap.
METRIC_LABEL = "login_throttle"


class LoginThrottle:
    """Consecutive-failure delays and a hard cap per account, on the shared ``Store``.

    Call order for one login::

        await throttle.reserve(email)       # 429 / 503 before any password work
        if not password_ok:
            await throttle.failure(email)
            raise InvalidCredentials
        await throttle.success(email)
    """

    FREE_FAILURES = 5
    BASE_DELAY = 1.0
    MAX_DELAY = 15 * 60.0
    MAX_CONSECUTIVE = 100
    WINDOW = 60 * 60.0

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        limiter: RateLimiter | None = None,
        free_failures: int | None = None,
        base_delay: float | None = None,
        max_delay: float | None = None,
        max_consecutive: int | None = None,
        window: float | None = None,
    ) -> None:
        self.enabled = settings.rate_limits_enabled
        self.store = store
        self.limiter = limiter or RateLimiter(settings, store)
        self.free_failures = self.FREE_FAILURES if free_failures is None else free_failures
        self.base_delay = self.BASE_DELAY if base_delay is None else base_delay
        self.max_delay = self.MAX_DELAY if max_delay is None else max_delay
        self.max_consecutive = self.MAX_CONSECUTIVE if max_consecutive is None else max_consecutive
        self.window = self.WINDOW if window is None else window

    def delay_for(self, failures: int) -> float:
        """Seconds of refusal after ``failures`` consecutive failures (see the module table)."""
        extra = failures - self.free_failures
        if extra <= 0:
            return 0.0
        # Cap the exponent first: 2 ** 10_000 would overflow a float.
        return min(self.base_delay * 2.0 ** min(extra - 1, 64), self.max_delay)

    @staticmethod
    def _keys(account_key: str) -> tuple[str, str, str, str]:
        digest = key_digest(account_key)
        return (
            f"throttle:until:{digest}",  # end of the current delay (timestamp)
            f"throttle:lock:{digest}",  # end of the hard-cap lock (timestamp)
            f"throttle:failures:{digest}",  # consecutive failures
            f"throttle:attempts:{digest}",  # consecutive evaluated attempts (reserve)
        )

    async def check(self, account_key: str) -> None:
        """Raise ``RateLimited`` while the account is in a delay or locked by the hard cap."""
        if not self.enabled:
            return
        until_key, lock_key, _, _ = self._keys(account_key)
        try:
            deadlines = await self.store.get_floats([until_key, lock_key])
        except StoreUnavailable as exc:
            raise ServiceUnavailable(retry_after=UNAVAILABLE_RETRY_AFTER) from exc
        remaining = max((d for d in deadlines if d is not None), default=0.0) - _now()
        if remaining > 0:
            RATE_LIMITED.labels(METRIC_LABEL).inc()
            raise RateLimited(retry_after=math.ceil(remaining))

    async def reserve(self, account_key: str) -> None:
        """Count one attempt before the password is evaluated; raise if it may not be.

        Order: the delay (``check``), then the ``login_account`` rate limit (atomic in the
        store, so parallel attempts cannot overshoot it), then the hard cap on consecutive
        evaluated attempts. An attempt that passes is counted even if it never reports back.
        """
        if not self.enabled:
            return
        await self.check(account_key)
        await self.limiter.hit(RATE_LIMIT_NAME, account_key)
        _, lock_key, _, attempts_key = self._keys(account_key)
        try:
            attempts = await self.store.incr(attempts_key, self.window)
            if attempts <= self.max_consecutive:
                return
            await self.store.set_float(lock_key, _now() + self.window, self.window)
        except StoreUnavailable as exc:
            raise ServiceUnavailable(retry_after=UNAVAILABLE_RETRY_AFTER) from exc
        RATE_LIMITED.labels(METRIC_LABEL).inc()
        logger.warning("auth.login.locked", extra={"account": key_digest(account_key)[:12]})
        raise RateLimited(retry_after=math.ceil(self.window))

    async def failure(self, account_key: str) -> None:
        """Record a failed password; from the 6th consecutive one, start a growing delay."""
        if not self.enabled:
            return
        until_key, _, failures_key, _ = self._keys(account_key)
        try:
            failures = await self.store.incr(failures_key, self.window)
            delay = self.delay_for(failures)
            if delay > 0:
                await self.store.set_float(until_key, _now() + delay, delay)
        except StoreUnavailable as exc:
            raise ServiceUnavailable(retry_after=UNAVAILABLE_RETRY_AFTER) from exc

    async def success(self, account_key: str) -> None:
        """Reset the consecutive counters and lift any delay or lock (the rate limit stays)."""
        if not self.enabled:
            return
        try:
            await self.store.delete(*self._keys(account_key))
        except StoreUnavailable as exc:
            raise ServiceUnavailable(retry_after=UNAVAILABLE_RETRY_AFTER) from exc


def _now() -> float:
    return utc_now().timestamp()
