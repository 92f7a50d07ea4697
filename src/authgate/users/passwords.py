"""Setting a user's password: the rules a new password must pass, and what a change entails.

Used by both ways a password changes, a reset (``password_reset/``) and a change by the signed-in
user (``users/service.py``): outstanding reset links stop working and the owner is told by email,
with the providers that can still sign in to the account.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from authgate.action_tokens.service import ActionTokenService
from authgate.core.email import EmailService, EmailTemplate
from authgate.core.security.passwords import PasswordService
from authgate.core.time import utc_now
from authgate.models import ActionKind, OAuthIdentity, User
from authgate.users.repository import UserRepository
from authgate.webhooks import WebhookEvent, user_data
from authgate.webhooks.service import WebhookService


class ConnectionLister(Protocol):
    """What the password-changed mail needs of the provider connections (``OAuthRepository``)."""

    async def identities_of_user(
        self, db: AsyncSession, user_id: uuid.UUID
    ) -> Sequence[OAuthIdentity]: ...


def password_context(user: User) -> list[str | None]:
    """Context words the policy refuses as (most of) a password."""
    return [user.email, user.email.split("@", 1)[0], user.name]


class PasswordSetter:
    def __init__(
        self,
        passwords: PasswordService,
        tokens: ActionTokenService,
        email: EmailService,
        users: UserRepository,
        connections: ConnectionLister | None = None,
        webhooks: WebhookService | None = None,
    ) -> None:
        self._webhooks = webhooks or WebhookService.disabled()
        self._passwords = passwords
        self._tokens = tokens
        self._email = email
        self._users = users
        self._connections = connections

    async def check(self, user: User, new_password: str) -> str:
        """The password as it will be stored, or a 422 naming the rule it breaks."""
        return await self._passwords.validate(new_password, context=password_context(user))

    async def set(self, db: AsyncSession, user: User, new_password: str) -> None:
        """Hash and store a (checked) password; outstanding reset links stop working and the
        owner is told by email (whether it was a reset or a change)."""
        await self._users.update(
            db,
            user,
            password_hash=await self._passwords.hash(new_password),
            password_changed_at=utc_now(),
        )
        await self._tokens.supersede(db, ActionKind.reset_password, user.id)
        await self._webhooks.emit(db, WebhookEvent.user_password_changed, user_data(user.id))
        await self._email.enqueue(
            db,
            to=user.email,
            template=EmailTemplate.password_changed,
            # The providers that can still sign in to the account, so the owner sees a backdoor.
            context={"name": user.name, "providers": await self._linked_providers(db, user)},
            user_id=user.id,
        )

    async def _linked_providers(self, db: AsyncSession, user: User) -> list[str]:
        if self._connections is None:
            return []
        return sorted({i.provider for i in await self._connections.identities_of_user(db, user.id)})
