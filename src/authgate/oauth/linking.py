"""LinkGuard: who may connect a provider to an account, and the notices the owner gets.

A Bearer token alone never connects a provider: a stolen access token would otherwise become a
permanent way back in. The owner re-confirms with the current password (a wrong one counts in the
per-account login throttle, like every re-confirmation of the password) or, for an account without
a password, with a sign-in younger than ``users.reconfirm.REAUTH_WINDOW``. The owner is emailed
when a link is started and again when a provider gets connected.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from authgate.core.email import EmailService, EmailTemplate
from authgate.core.http import ClientInfo
from authgate.core.security.passwords import PasswordService
from authgate.core.throttle import LoginThrottle
from authgate.models import AuthSession, User
from authgate.users.reconfirm import PasswordReconfirmation


class LinkGuard:
    def __init__(
        self, passwords: PasswordService, throttle: LoginThrottle, email: EmailService
    ) -> None:
        self._reconfirm = PasswordReconfirmation(passwords, throttle)
        self._email = email

    async def confirm(
        self, user: User, session: AuthSession, password: str | None, client: ClientInfo
    ) -> None:
        """InvalidPassword (400), ReauthenticationRequired (403) or a throttle refusal (429)."""
        await self._reconfirm.confirm_owner(user, session, password, client)

    async def notify_started(self, db: AsyncSession, user: User, provider: str) -> None:
        await self._notify(db, user, provider, EmailTemplate.oauth_link_started)

    async def notify_linked(self, db: AsyncSession, user: User, provider: str) -> None:
        await self._notify(db, user, provider, EmailTemplate.oauth_linked)

    async def _notify(
        self, db: AsyncSession, user: User, provider: str, template: EmailTemplate
    ) -> None:
        await self._email.enqueue(
            db,
            to=user.email,
            template=template,
            context={"name": user.name, "provider": provider},
            user_id=user.id,
        )
