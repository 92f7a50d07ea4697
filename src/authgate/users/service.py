"""UserService: the signed-in user's own account (profile, password, email, deletion)."""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from authgate.audit import AuditService, AuditType
from authgate.core.errors import ValidationFailed
from authgate.core.http import ClientInfo
from authgate.core.limits import Limit, account_key
from authgate.core.ratelimit import RateLimiter
from authgate.core.security.passwords import PasswordService
from authgate.core.throttle import LoginThrottle
from authgate.models import AuthSession, User
from authgate.sessions.service import IssuedTokens, SessionService
from authgate.users.emails import normalize_email
from authgate.users.passwords import PasswordSetter
from authgate.users.reconfirm import PasswordReconfirmation
from authgate.users.repository import UserRepository
from authgate.verification.service import VerificationService
from authgate.webhooks import WebhookEvent, user_data
from authgate.webhooks.service import WebhookService


class ProviderTokenRevoker(Protocol):
    """What account deletion needs of the provider-token vault (``oauth.vault.ProviderTokenVault``)."""

    async def revoke_all(
        self, db: AsyncSession, user_id: uuid.UUID, client: ClientInfo | None = None
    ) -> None: ...


class UserService:
    def __init__(
        self,
        passwords: PasswordService,
        sessions: SessionService,
        verification: VerificationService,
        password_setter: PasswordSetter,
        audit: AuditService,
        users: UserRepository,
        limiter: RateLimiter,
        throttle: LoginThrottle,
        provider_tokens: ProviderTokenRevoker | None = None,
        webhooks: WebhookService | None = None,
    ) -> None:
        self._webhooks = webhooks or WebhookService.disabled()
        self._provider_tokens = provider_tokens
        self._limiter = limiter
        self._reconfirm = PasswordReconfirmation(passwords, throttle)
        self._passwords = passwords
        self._sessions = sessions
        self._verification = verification
        self._password_setter = password_setter
        self._audit = audit
        self._users = users

    async def _confirm_password(self, user: User, password: str, client: ClientInfo) -> None:
        await self._reconfirm.confirm(user, password, client)

    async def update_profile(self, db: AsyncSession, user: User, name: str | None) -> User:
        renamed = name != user.name
        await self._users.update(db, user, name=name)
        if renamed:
            await self._webhooks.emit(
                db, WebhookEvent.user_updated, user_data(user.id, changes=["name"])
            )
        return user

    async def change_password(
        self,
        db: AsyncSession,
        user: User,
        session: AuthSession,
        current_password: str,
        new_password: str,
        client: ClientInfo,
    ) -> IssuedTokens:
        """Every session ends; the caller continues in a fresh session (a new ``sid``), so the
        access token presented for the change stops working too. Wrong current passwords count
        toward the same per-account throttle as failed logins."""
        await self._limiter.per_user(Limit.change_password_account, user.id)
        await self._confirm_password(user, current_password, client)
        new_password = await self._password_setter.check(user, new_password)
        await self._password_setter.set(db, user, new_password)
        await self._sessions.end_all(db, user, reason="password_changed")
        issued = await self._sessions.reopen(db, user, session, client)
        self._audit.record(
            db,
            AuditType.password_changed,
            user_id=user.id,
            session_id=issued.session_id,
            client=client,
        )
        return issued

    async def change_email(
        self, db: AsyncSession, user: User, new_email: str, password: str, client: ClientInfo
    ) -> None:
        """Limited per user and per recipient (``email_change_user``, ``email_change_recipient``).

        The current address is refused before the password is looked at; the recipient limit
        is consumed after a right password whether or not the address is taken, so a 429 says
        nothing about who has it."""
        address = normalize_email(new_email, field="new_email")
        if account_key(address) == account_key(user.email):
            raise ValidationFailed(
                [
                    {
                        "loc": ["body", "new_email"],
                        "msg": "This is already the account's address.",
                        "type": "value_error.same_email",
                    }
                ],
                detail="The new address is the current one.",
            )
        await self._limiter.per_user(Limit.email_change_user, user.id)
        await self._confirm_password(user, password, client)
        await self._limiter.per_address(Limit.email_change_recipient, address)
        await self._verification.request_email_change(db, user, address)
        self._audit.record(db, AuditType.email_change_requested, user_id=user.id, client=client)

    async def delete_account(
        self, db: AsyncSession, user: User, password: str, client: ClientInfo
    ) -> None:
        await self._confirm_password(user, password, client)
        self._audit.record(
            db,
            AuditType.account_deleted,
            user_id=user.id,
            client=client,
            detail={"email_domain": user.email.rsplit("@", 1)[-1]},
        )
        # Publish the end of every session first: other processes refuse the tokens at once.
        await self._sessions.end_all(db, user, reason="account_deleted")
        if self._provider_tokens is not None:
            await self._provider_tokens.revoke_all(db, user.id, client)
        deleted = user_data(user.id, user.email, reason="deleted_by_user")
        await self._users.delete(db, user)
        await self._webhooks.emit(db, WebhookEvent.user_deleted, deleted)
