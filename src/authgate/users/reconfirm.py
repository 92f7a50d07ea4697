"""Re-confirming the signed-in user's password, through the per-account sign-in throttle.

Change password, change email, delete account and linking a provider all ask for the current
password. Each check counts exactly like a login attempt (reserved before the password is
evaluated, a wrong one a failure, a right one a success; the owner's known device in a bucket of
its own), so none of these endpoints is a faster password-guessing oracle than the login.
"""

from __future__ import annotations

from authgate.core.errors import InvalidPassword
from authgate.core.http import ClientInfo
from authgate.core.limits import account_key
from authgate.core.security.passwords import PasswordService
from authgate.core.throttle import LoginThrottle
from authgate.models import User


class PasswordReconfirmation:
    def __init__(self, passwords: PasswordService, throttle: LoginThrottle) -> None:
        self._passwords = passwords
        self._throttle = throttle

    async def confirm(self, user: User, password: str, client: ClientInfo) -> None:
        """Return if ``password`` is the user's; 400 ``invalid_password`` if not (429 while the
        account is throttled, before anything is evaluated)."""
        bucket = await self._throttle.bucket(account_key(user.email), client)
        await self._throttle.reserve(bucket)
        ok, _ = await self._passwords.verify(password, user.password_hash)
        if not ok:
            await self._throttle.failure(bucket)
            raise InvalidPassword()
        await self._throttle.success(bucket)
