"""Per-account brute-force throttle for password checks (NIST SP 800-63B rev 4 §3.2.2, OWASP).

Keyed by the account (``account_key``: the normalised email, hashed), whatever IP the attempts
come from. Every password check goes through it: login, and every re-confirmation of the
password (change password or email, delete the account, link a provider, MFA changes); so does
every second-factor code of a sign-in (``mfa/challenges.py``): a right password of an account with
TOTP on only gives its pending slot back (``pass_first_factor``), the counters are cleared when
the second factor succeeds, and a wrong code is a failure like a wrong password. Layers, all stored
with an expiry so nothing an anonymous attacker triggers is permanent:

1. **Rate limit** ``login_account`` (default ``10/15minutes``), consumed atomically by
   ``reserve`` *before* the password is evaluated.
2. **Growing delay** after consecutive failures (``failure``): the first 5 are free, then the
   account refuses password checks for 1 s, 2 s, 4 s, … doubling per further failure, capped
   at 15 min:

   ====================  ======  ======  ======  ===  =======  =========
   consecutive failures  1 to 5  6       7       8    …        16 and on
   delay after it        none    1 s     2 s     4 s  …        15 min
   ====================  ======  ======  ======  ===  =======  =========

   Attempts admitted by ``reserve`` but not reported yet (*pending*) count as failures when
   the next one is admitted, so parallel guesses are never evaluated more often than the same
   guesses made one after the other (6 with the defaults, the 6th starting the first delay).
3. **Hard cap**: at most 100 consecutive attempts are evaluated without a success (counted by
   ``reserve``); the 101st locks the bucket's password checks for 1 hour.

**Known devices.** An IP address + User-Agent pair that signed in to the account successfully
(``remember_device``, 90 days) or completed a password reset gets a bucket of its own
(``bucket``): failures from anywhere else never refuse the owner there, and its own failures
throttle it exactly like the shared bucket. The pair is stored only as an HMAC (keyed with
``AUTHGATE_SECRET_KEY``), so being "known" cannot be forged without both the owner's IP and
User-Agent. A completed reset (``lift``) clears the shared bucket, ``login_account`` window
included, and starts every device bucket of the account afresh.

Counters live 1 hour after the last attempt/failure and then start again from zero; a success
(``success``) resets them and lifts any delay. Forgot and reset password use other limits, so
the owner can always regain the account.

``settings.rate_limits_enabled = false`` switches the throttle off along with the rate limits.
A store that cannot be reached makes every method raise ``ServiceUnavailable`` (fail closed).
"""

from __future__ import annotations

import hmac
import logging
import math
import secrets

from authgate.config import Settings
from authgate.core.errors import RateLimited, ServiceUnavailable
from authgate.core.http import ClientInfo
from authgate.core.limits import Limit
from authgate.core.metrics import RATE_LIMITED
from authgate.core.ratelimit import UNAVAILABLE_RETRY_AFTER, RateLimiter
from authgate.core.store import Store, StoreUnavailable, key_digest
from authgate.core.time import utc_now

logger = logging.getLogger("authgate.throttle")

#: The named rate limit ``reserve`` consumes (per bucket: the account or one of its devices).
RATE_LIMIT_NAME = Limit.login_account
#: Metric label of refusals by the delay or the hard cap.
METRIC_LABEL = "login_throttle"
#: How long a successful sign-in keeps its IP + User-Agent pair "known" to the account.
KNOWN_DEVICE_TTL = 90 * 24 * 3600.0


class LoginThrottle:
    """Consecutive-failure delays and a hard cap per account, on the shared ``Store``.

    Call order for one password check::

        bucket = await throttle.bucket(account_key(email), client)  # the device's, if known
        await throttle.reserve(bucket)       # 429 / 503 before any password work
        if not password_ok:
            await throttle.failure(bucket)
            raise InvalidCredentials
        await throttle.success(bucket)

    ``reserve``/``failure``/``success`` take any bucket; ``account_key`` itself is the shared one.
    """

    FREE_FAILURES = 5
    BASE_DELAY = 1.0
    MAX_DELAY = 15 * 60.0
    MAX_CONSECUTIVE = 100
    WINDOW = 60 * 60.0
    #: An attempt admitted but never reported stops counting as pending after this long.
    PENDING_TTL = 60.0

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        limiter: RateLimiter | None = None,
        device_secret: bytes | None = None,
        free_failures: int | None = None,
        base_delay: float | None = None,
        max_delay: float | None = None,
        max_consecutive: int | None = None,
        window: float | None = None,
    ) -> None:
        self.enabled = settings.rate_limits_enabled
        self.store = store
        self.limiter = limiter or RateLimiter(settings, store)
        # Every process must use the same secret (the runtime passes AUTHGATE_SECRET_KEY); a
        # random one only suits a throttle that lives in one process (unit tests).
        self._device_secret = device_secret or secrets.token_bytes(32)
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
    def _keys(bucket: str) -> tuple[str, str, str, str, str]:
        digest = key_digest(bucket)
        return (
            f"throttle:until:{digest}",  # end of the current delay (timestamp)
            f"throttle:lock:{digest}",  # end of the hard-cap lock (timestamp)
            f"throttle:failures:{digest}",  # consecutive failures
            f"throttle:attempts:{digest}",  # consecutive evaluated attempts (reserve)
            f"throttle:pending:{digest}",  # admitted attempts not reported yet
        )

    # -- known devices --------------------------------------------------------------------

    def _device_digest(self, account: str, client: ClientInfo | None) -> str | None:
        """HMAC of (account, IP, User-Agent); ``None`` unless both IP and User-Agent are known."""
        if client is None or not client.ip_address or not client.user_agent:
            return None
        message = "\x00".join(("device", account, client.ip_address, client.user_agent))
        mac = hmac.new(self._device_secret, message.encode("utf-8", "surrogatepass"), "sha256")
        return mac.hexdigest()[:32]

    @staticmethod
    def _generation_key(account: str) -> str:
        return f"throttle:generation:{key_digest(account)}"  # bumped by every completed reset

    async def bucket(self, account: str, client: ClientInfo | None) -> str:
        """The bucket of this attempt: the device's own one if it is known, else ``account``."""
        device = self._device_digest(account, client)
        if not self.enabled or device is None:
            return account
        try:
            known, generation = await self.store.get_floats(
                [f"throttle:device:{device}", self._generation_key(account)]
            )
        except StoreUnavailable as exc:
            raise ServiceUnavailable(retry_after=UNAVAILABLE_RETRY_AFTER) from exc
        if known is None:
            return account
        # Not derivable from user input: the device part is a keyed digest, the account hashed.
        return f"{key_digest(account)}:{device}:{int(generation or 0)}"

    async def remember_device(self, account: str, client: ClientInfo | None) -> None:
        """This IP + User-Agent pair signed in to the account (or reset its password)."""
        device = self._device_digest(account, client)
        if not self.enabled or device is None:
            return
        try:
            await self.store.set_flag(f"throttle:device:{device}", KNOWN_DEVICE_TTL)
        except StoreUnavailable as exc:
            raise ServiceUnavailable(retry_after=UNAVAILABLE_RETRY_AFTER) from exc

    async def lift(self, account: str, client: ClientInfo | None = None) -> None:
        """After a completed password reset: clear the shared bucket (its ``login_account``
        window too), start every device bucket of the account afresh, and remember the
        device that completed the reset."""
        if not self.enabled:
            return
        try:
            await self.store.delete(*self._keys(account))
            await self.store.incr(self._generation_key(account), KNOWN_DEVICE_TTL)
        except StoreUnavailable as exc:
            raise ServiceUnavailable(retry_after=UNAVAILABLE_RETRY_AFTER) from exc
        await self.limiter.clear(RATE_LIMIT_NAME, account)
        await self.remember_device(account, client)

    # -- one password check ---------------------------------------------------------------

    async def check(self, account_key: str) -> None:
        """Raise ``RateLimited`` while the bucket is in a delay or locked by the hard cap."""
        if not self.enabled:
            return
        until_key, lock_key, *_ = self._keys(account_key)
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

        Order: the delay (``check``); a pending slot, taken with one atomic increment and
        refused when the attempts already pending, counted as failures, would start a delay
        (so parallel attempts get no more evaluations than sequential ones); the
        ``login_account`` rate limit (atomic in the store); then the hard cap on consecutive
        evaluated attempts. An attempt that passes is counted even if it never reports back.
        """
        if not self.enabled:
            return
        await self.check(account_key)
        _, lock_key, failures_key, attempts_key, pending_key = self._keys(account_key)
        try:
            slot = await self.store.incr(pending_key, self.PENDING_TTL)
            failures = await self.store.get_float(failures_key)
        except StoreUnavailable as exc:
            raise ServiceUnavailable(retry_after=UNAVAILABLE_RETRY_AFTER) from exc
        ahead = max(slot - 1, 0)
        looming = self.delay_for(int(failures or 0) + ahead) if ahead else 0.0
        if looming > 0:
            await self._release(pending_key)
            RATE_LIMITED.labels(METRIC_LABEL).inc()
            raise RateLimited(retry_after=max(1, math.ceil(looming)))
        try:
            await self.limiter.hit(RATE_LIMIT_NAME, account_key)
        except (RateLimited, ServiceUnavailable):
            await self._release(pending_key)
            raise
        try:
            attempts = await self.store.incr(attempts_key, self.window)
            if attempts <= self.max_consecutive:
                return
            await self.store.set_float(lock_key, _now() + self.window, self.window)
        except StoreUnavailable as exc:
            raise ServiceUnavailable(retry_after=UNAVAILABLE_RETRY_AFTER) from exc
        await self._release(pending_key)
        RATE_LIMITED.labels(METRIC_LABEL).inc()
        logger.warning("auth.login.locked", extra={"account": key_digest(account_key)[:12]})
        raise RateLimited(retry_after=math.ceil(self.window))

    async def _release(self, pending_key: str) -> None:
        """Give a pending slot back (never below zero: a slot may have expired meanwhile)."""
        try:
            left = await self.store.incr(pending_key, self.PENDING_TTL, -1)
            if left < 0:
                await self.store.incr(pending_key, self.PENDING_TTL, -left)
        except StoreUnavailable as exc:
            raise ServiceUnavailable(retry_after=UNAVAILABLE_RETRY_AFTER) from exc

    async def failure(self, account_key: str) -> None:
        """Record a failed password; from the 6th consecutive one, start a growing delay.

        The failure is counted before its pending slot is released, so the two never add up
        to less than the truth in between."""
        if not self.enabled:
            return
        until_key, _, failures_key, _, pending_key = self._keys(account_key)
        try:
            failures = await self.store.incr(failures_key, self.window)
            delay = self.delay_for(failures)
            if delay > 0:
                await self.store.set_float(until_key, _now() + delay, delay)
        except StoreUnavailable as exc:
            raise ServiceUnavailable(retry_after=UNAVAILABLE_RETRY_AFTER) from exc
        await self._release(pending_key)

    async def pass_first_factor(self, account_key: str) -> None:
        """A right password whose sign-in still waits for its second factor: give the pending
        slot back but keep the consecutive counters (``success`` would clear failures that
        wrong second-factor codes are part of). ``success`` comes with the second factor."""
        if not self.enabled:
            return
        *_, pending_key = self._keys(account_key)
        await self._release(pending_key)

    async def success(self, account_key: str) -> None:
        """Reset the consecutive counters and lift any delay or lock (the rate limit stays);
        other attempts still pending stay pending."""
        if not self.enabled:
            return
        until_key, lock_key, failures_key, attempts_key, pending_key = self._keys(account_key)
        try:
            await self.store.delete(until_key, lock_key, failures_key, attempts_key)
        except StoreUnavailable as exc:
            raise ServiceUnavailable(retry_after=UNAVAILABLE_RETRY_AFTER) from exc
        await self._release(pending_key)


def _now() -> float:
    return utc_now().timestamp()
