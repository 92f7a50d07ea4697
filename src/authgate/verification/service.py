"""VerificationService: email verification links and email-change confirmations.

``POST /auth/verify-email`` takes either kind of token: ``agv_`` (verify the address of a new
account) or ``age_`` (confirm a change of address; uniqueness is checked again at that moment).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.action_tokens.service import ActionTokenService
from authgate.audit import AuditService, AuditType
from authgate.config import Settings
from authgate.core.email import EmailService, EmailTemplate
from authgate.core.errors import InvalidToken
from authgate.core.http import ClientInfo
from authgate.core.security.opaque import TokenKind
from authgate.models import ActionKind, User
from authgate.users.repository import UserRepository, email_key


class VerificationService:
    def __init__(
        self,
        settings: Settings,
        tokens: ActionTokenService,
        email: EmailService,
        audit: AuditService,
        users: UserRepository,
        *,
        on_user_changed: Callable[[uuid.UUID], None] | None = None,
    ) -> None:
        self._settings = settings
        self._changed = on_user_changed or (lambda _user_id: None)
        self._tokens = tokens
        self._email = email
        self._audit = audit
        self._users = users

    def _link(self, token: str) -> str:
        return f"{self._settings.frontend_url}/verify-email?token={token}"

    async def send_verification(self, db: AsyncSession, user: User) -> None:
        """A fresh link; every earlier verification link of this user stops working.

        No ``name``: the address is not verified yet, and whoever registered it chose the name,
        so it would be their text in a stranger's mailbox."""
        ttl = self._settings.verification_token_ttl
        token = await self._tokens.issue(db, ActionKind.verify_email, user.id, ttl)
        await self._email.enqueue(
            db,
            to=user.email,
            template=EmailTemplate.verify_email,
            context={
                "link": self._link(token),
                "expires_hours": max(1, ttl // 3600),
            },
            user_id=user.id,
        )

    async def request_email_change(self, db: AsyncSession, user: User, new_email: str) -> None:
        """Link to the new address (unless taken), notice to the old one. The mail to the new,
        unverified address carries no text of the user's choosing (no ``name``)."""
        taken = await self._users.by_email(db, new_email)
        if taken is None:
            ttl = self._settings.email_change_token_ttl
            token = await self._tokens.issue(
                db, ActionKind.change_email, user.id, ttl, data={"new_email": new_email}
            )
            await self._email.enqueue(
                db,
                to=new_email,
                template=EmailTemplate.email_change_confirm,
                context={
                    "link": self._link(token),
                    "new_email": new_email,
                    "expires_hours": max(1, ttl // 3600),
                },
                user_id=user.id,
            )
        await self._email.enqueue(
            db,
            to=user.email,
            template=EmailTemplate.email_change_notice,
            context={"name": user.name, "new_email": new_email},
            user_id=user.id,
        )

    async def verify(self, db: AsyncSession, token: str, client: ClientInfo) -> User:
        if isinstance(token, str) and token.startswith(TokenKind.email_change.value):
            return await self._confirm_email_change(db, token, client)
        spent = await self._tokens.consume(db, ActionKind.verify_email, token)
        user = await self._users.by_id(db, spent.user_id)
        if user is None or not user.is_active:
            raise InvalidToken()
        if not user.email_verified:
            user.email_verified = True
            self._changed(user.id)
            self._audit.record(db, AuditType.email_verified, user_id=user.id, client=client)
            await self._email.enqueue(
                db,
                to=user.email,
                template=EmailTemplate.welcome,
                context={"name": user.name},
                user_id=user.id,
            )
        return user

    async def _confirm_email_change(self, db: AsyncSession, token: str, client: ClientInfo) -> User:
        spent = await self._tokens.consume(db, ActionKind.change_email, token)
        user = await self._users.by_id(db, spent.user_id)
        new_email = (spent.data or {}).get("new_email")
        if user is None or not user.is_active or not isinstance(new_email, str):
            raise InvalidToken()
        other = await self._users.by_email(db, new_email)
        if other is not None and other.id != user.id:
            # Taken since the link was sent: the link is spent and the address stays as it was.
            raise InvalidToken("The new address is no longer available.", commit=True)
        old_email = user.email
        try:
            # The check above cannot see a concurrent confirmation or registration of the same
            # address that has not committed yet; the unique index can (a savepoint keeps the
            # spent token while the change is undone).
            async with db.begin_nested():
                user.email = new_email
                user.email_key = email_key(new_email)
                user.email_verified = True
                await db.flush()
        except IntegrityError:
            raise InvalidToken("The new address is no longer available.", commit=True) from None
        self._changed(user.id)
        # Reset links went to the old address; they must not outlive the change.
        await self._tokens.supersede(db, ActionKind.reset_password, user.id)
        # The old address hears that it no longer controls the account.
        await self._email.enqueue(
            db,
            to=old_email,
            template=EmailTemplate.email_changed,
            context={"name": user.name, "new_email": new_email},
            user_id=user.id,
        )
        self._audit.record(
            db,
            AuditType.email_change_confirmed,
            user_id=user.id,
            client=client,
            detail={"old_domain": old_email.rsplit("@", 1)[-1]},
        )
        return user
