"""Re-confirming the signed-in user, through the per-account sign-in throttle.

Change password, change email, delete account, linking a provider and the MFA changes all ask
for the current password. Each check counts exactly like a login attempt (reserved before the
password is evaluated, a wrong one a failure, a right one a success; the owner's known device in
a bucket of its own), so none of these endpoints is a faster password-guessing oracle than the
login. Where a second-factor code is asked for too (turning TOTP off, new recovery codes), the
password and the code are one attempt: a wrong code is a failure as well, and the counters are
cleared only when both are right.

An account without a password (provider sign-in only) cannot re-enter one: it proves itself by a
sign-in younger than ``REAUTH_WINDOW`` instead (``confirm_owner``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from authgate.core.errors import InvalidCode, InvalidPassword, ReauthenticationRequired
from authgate.core.http import ClientInfo
from authgate.core.limits import account_key
from authgate.core.security.passwords import PasswordService
from authgate.core.throttle import LoginThrottle
from authgate.core.time import utc_now
from authgate.models import AuthSession, User

#: How recent the sign-in of an account without a password must be to stand in for it.
REAUTH_WINDOW = timedelta(minutes=5)

#: Checks a second-factor code once the first factor is right; raises ``InvalidCode`` if wrong.
SecondFactorCheck = Callable[[], Awaitable[None]]


class PasswordReconfirmation:
    def __init__(self, passwords: PasswordService, throttle: LoginThrottle) -> None:
        self._passwords = passwords
        self._throttle = throttle

    async def confirm(
        self,
        user: User,
        password: str,
        client: ClientInfo,
        *,
        second_factor: SecondFactorCheck | None = None,
    ) -> None:
        """Return if ``password`` is the user's (and ``second_factor`` passes); 400
        ``invalid_password`` (or the check's ``invalid_code``) if not, 429 while the account
        is throttled, before anything is evaluated."""
        bucket = await self._throttle.bucket(account_key(user.email), client)
        await self._throttle.reserve(bucket)
        ok, _ = await self._passwords.verify(password, user.password_hash)
        if not ok:
            await self._throttle.failure(bucket)
            raise InvalidPassword()
        await self._second_factor(bucket, second_factor)
        await self._throttle.success(bucket)

    async def confirm_owner(
        self,
        user: User,
        session: AuthSession,
        password: str | None,
        client: ClientInfo,
        *,
        second_factor: SecondFactorCheck | None = None,
    ) -> None:
        """``confirm`` for an account with a password (missing → 400 ``invalid_password``);
        without one, a sign-in (``session``) younger than ``REAUTH_WINDOW``, else 403
        ``reauthentication_required``. A ``second_factor`` counts in the throttle either way."""
        if user.password_hash is not None:
            if not password:
                raise InvalidPassword("The current password is required.")
            await self.confirm(user, password, client, second_factor=second_factor)
            return
        if utc_now() - session.created_at > REAUTH_WINDOW:
            raise ReauthenticationRequired()
        if second_factor is None:
            return
        bucket = await self._throttle.bucket(account_key(user.email), client)
        await self._throttle.reserve(bucket)
        await self._second_factor(bucket, second_factor)
        await self._throttle.success(bucket)

    async def _second_factor(self, bucket: str, check: SecondFactorCheck | None) -> None:
        if check is None:
            return
        try:
            await check()
        except InvalidCode:
            await self._throttle.failure(bucket)
            raise
