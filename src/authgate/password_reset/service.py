"""PasswordResetService: forgot-password links and the reset itself.

A reset token is opaque, keyed-hashed, single use and short-lived; a newer token supersedes it,
and any password change (reset, change, admin) supersedes every outstanding one. A reset ends
every session, does not sign the user in, and sends a notice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from authgate.action_tokens.service import ActionTokenService
from authgate.audit import AuditService, AuditType
from authgate.config import Settings
from authgate.core.email import EmailJob, EmailService, EmailTemplate
from authgate.core.errors import InvalidToken
from authgate.core.http import ClientInfo
from authgate.core.limits import account_key
from authgate.core.throttle import LoginThrottle
from authgate.models import ActionKind, User
from authgate.sessions.service import SessionService
from authgate.users.passwords import PasswordSetter
from authgate.users.repository import UserRepository
from authgate.users.takeover import AddressProven


class PasswordResetService:
    """Password reset: issues the links (after the answer, as an outbox job) and performs the
    reset.
    """

    def __init__(
        self,
        settings: Settings,
        tokens: ActionTokenService,
        passwords: PasswordSetter,
        sessions: SessionService,
        email: EmailService,
        audit: AuditService,
        users: UserRepository,
        throttle: LoginThrottle,
        *,
        on_address_proven: AddressProven,
    ) -> None:
        self._settings = settings
        self._throttle = throttle
        self._tokens = tokens
        self._passwords = passwords
        self._sessions = sessions
        self._email = email
        self._audit = audit
        self._users = users
        self._proven = on_address_proven
        email.register_job(EmailJob.password_reset_request, self._run_request)

    async def request(
        self, db: AsyncSession, normalized_email: str | None, client: ClientInfo
    ) -> None:
        """Queue the request: the same single outbox row for every address, so neither the
        answer nor its time tells whether an account exists. The link is issued (if the account
        exists and is active) by the dispatcher, after the response (``_run_request``)."""
        self._email.enqueue_job(
            db,
            EmailJob.password_reset_request,
            {
                "email": normalized_email,
                "ip_address": client.ip_address,
                "user_agent": client.user_agent,
            },
        )

    async def _run_request(self, db: AsyncSession, context: dict[str, Any]) -> None:
        address = context.get("email")
        user = await self._users.by_email(db, address) if isinstance(address, str) else None
        if user is None or not user.is_active:
            return
        ttl = self._settings.reset_token_ttl
        token = await self._tokens.issue(db, ActionKind.reset_password, user.id, ttl)
        await self._email.enqueue(
            db,
            to=user.email,
            template=EmailTemplate.password_reset,
            context={
                # No registrant-typed text to an address nobody has proven.
                "name": user.name if user.email_verified else None,
                "link": f"{self._settings.frontend_url}/reset-password?token={token}",
                "expires_minutes": max(1, ttl // 60),
            },
            user_id=user.id,
        )
        client = ClientInfo(context.get("ip_address"), context.get("user_agent"))
        self._audit.record(db, AuditType.password_reset_requested, user_id=user.id, client=client)

    async def reset(
        self, db: AsyncSession, token: str, new_password: str, client: ClientInfo
    ) -> User:
        """Set a new password with a reset link (``POST /auth/password/reset``).

        The password is checked before the token is spent, so a refused password leaves the link
        usable. A successful reset ends every session, lifts the account's sign-in throttle and
        mails the owner.

        Args:
            db: The request's unit of work.
            token: The ``agp_`` token from the link.
            new_password: The new password.
            client: The caller (its device becomes a known one for the throttle).

        Returns:
            The user whose password was reset.

        Raises:
            InvalidToken: The token is unknown, used or expired, or its account is disabled.
            PasswordPolicyError: The new password is refused (``weak_password``).
        """
        # Check the policy before spending the token: a refused password leaves it usable.
        pending = await self._tokens.peek(db, ActionKind.reset_password, token)
        user = await self._users.by_id(db, pending.user_id) if pending else None
        if pending is None or user is None or not user.is_active:
            raise InvalidToken()
        new_password = await self._passwords.check(user, new_password)
        spent = await self._tokens.consume(db, ActionKind.reset_password, token)
        if spent.user_id != user.id:
            raise InvalidToken()
        await self._passwords.set(db, user, new_password)
        if user.email_verified:
            # Also cancels a pending email change (``SessionService.end_all``).
            await self._sessions.end_all(db, user, reason="password_reset")
        else:
            # The link reached the mailbox, so the address is proven now: whatever an earlier,
            # unproven party planted in this account goes (sessions, provider connections).
            await self._proven(db, user, reason="password_reset")
        # The owner is back in control: lift whatever an attacker's guesses caused, and let the
        # browser that completed the reset sign in whatever strangers try meanwhile.
        await self._throttle.lift(account_key(user.email), client)
        self._audit.record(db, AuditType.password_reset_completed, user_id=user.id, client=client)
        return user
