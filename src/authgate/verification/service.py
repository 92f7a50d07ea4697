"""VerificationService: email verification links and email-change confirmations.

``POST /auth/verify-email`` takes either kind of token: ``agv_`` (verify the address of a new
account) or ``age_`` (confirm a change of address; uniqueness is checked again at that moment).

A later sign-up of a still unverified address never touches the account: its link
(``verify_registration``) carries that sign-up's password hash and name, and they become the
account's only when that link is followed, i.e. by whoever reads the mailbox. Every link of an
unverified account stays usable until one of them verifies it (docs/api.md, "Registering an
unverified address again").
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy.ext.asyncio import AsyncSession

from authgate.action_tokens.service import ActionTokenService
from authgate.audit import AuditService, AuditType
from authgate.config import Settings
from authgate.core.db import security_write
from authgate.core.email import EmailJob, EmailService, EmailTemplate
from authgate.core.errors import InvalidToken
from authgate.core.http import ClientInfo
from authgate.core.security.opaque import TokenKind
from authgate.core.time import utc_now
from authgate.models import ActionKind, User
from authgate.users.repository import UserChanges, UserRepository
from authgate.users.takeover import VERIFY_KINDS, AddressProven
from authgate.webhooks import WebhookEvent, user_data
from authgate.webhooks.service import WebhookService


@dataclass(frozen=True, slots=True)
class Registration:
    """A later sign-up of an unverified address: what its link sets when it is followed."""

    password_hash: str
    name: str | None
    at: datetime
    client: ClientInfo


class VerificationService:
    """Email verification links, the links of a later sign-up of an unverified address, and the
    confirmation of an email change.
    """

    def __init__(
        self,
        settings: Settings,
        tokens: ActionTokenService,
        email: EmailService,
        audit: AuditService,
        users: UserRepository,
        *,
        on_address_proven: AddressProven,
        webhooks: WebhookService | None = None,
    ) -> None:
        self._webhooks = webhooks or WebhookService.disabled()
        self._settings = settings
        self._proven = on_address_proven
        self._tokens = tokens
        self._email = email
        self._audit = audit
        self._users = users
        email.register_job(EmailJob.verification_resend, self._run_resend)

    def _link(self, token: str) -> str:
        return f"{self._settings.frontend_url}/verify-email?token={token}"

    async def send_verification(self, db: AsyncSession, user: User) -> None:
        """A fresh link for the account as it is; earlier plain links stop working (a later
        sign-up's link does not). The mail carries no user-supplied text: the address is not
        verified, so it may belong to someone else."""
        ttl = self._settings.verification_token_ttl
        token = await self._tokens.issue(db, ActionKind.verify_email, user.id, ttl)
        await self._email.enqueue(
            db,
            to=user.email,
            template=EmailTemplate.verify_email,
            context={"link": self._link(token), "expires_hours": max(1, ttl // 3600)},
            user_id=user.id,
        )

    def request_resend(self, db: AsyncSession, normalized_email: str | None) -> None:
        """Queue a resend: one outbox row whatever the address (no answer or timing tells
        whether an unverified account exists); the dispatcher sends the link (``_run_resend``)."""
        self._email.enqueue_job(db, EmailJob.verification_resend, {"email": normalized_email})

    async def _run_resend(self, db: AsyncSession, context: dict[str, Any]) -> None:
        address = context.get("email")
        user = await self._users.by_email(db, address) if isinstance(address, str) else None
        if user is not None and user.is_active and not user.email_verified:
            await self.send_verification(db, user)

    async def send_registration_link(
        self, db: AsyncSession, user: User, registration: Registration
    ) -> None:
        """The link of a later sign-up: following it sets that sign-up's password (and name).

        The mail says plainly that another sign-up happened, when and from where, so the owner
        of the mailbox decides which sign-up becomes the account.
        """
        ttl = self._settings.verification_token_ttl
        token = await self._tokens.issue(
            db,
            ActionKind.verify_registration,
            user.id,
            ttl,
            data={
                "password_hash": registration.password_hash,
                "name": registration.name,
                "at": registration.at.isoformat(),
            },
            supersede=False,
        )
        await self._email.enqueue(
            db,
            to=user.email,
            template=EmailTemplate.verify_registration,
            context={
                "link": self._link(token),
                "expires_hours": max(1, ttl // 3600),
                "at": registration.at.strftime("%Y-%m-%d %H:%M UTC"),
                "ip_address": registration.client.ip_address or "unknown",
                "user_agent": (registration.client.user_agent or "unknown")[:256],
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
        """Spend a verification or email-change link (``POST /auth/verify-email``).

        Args:
            db: The request's unit of work.
            token: The ``agv_`` token from the link.
            client: The caller, for the audit record.

        Returns:
            The user, now verified (or with the new address).

        Raises:
            InvalidToken: The token is unknown, used, expired, or its account is disabled.
        """
        if isinstance(token, str) and token.startswith(TokenKind.email_change.value):
            return await self._confirm_email_change(db, token, client)
        spent = await self._tokens.consume(db, VERIFY_KINDS, token)
        user = await self._users.by_id(db, spent.user_id)
        if user is None or not user.is_active:
            raise InvalidToken()
        if user.email_verified:
            return user
        # The account is settled; the other sign-ups' links (and plain links) stop working.
        later = spent.kind is ActionKind.verify_registration
        changes = self._adopted_registration(spent.data or {}) if later else None
        await self._proven(db, user, reason="email_verified", changes=changes)
        self._audit.record(
            db,
            AuditType.email_verified,
            user_id=user.id,
            client=client,
            detail={"registration": "later" if later else "first"},
        )
        await self._email.enqueue(
            db,
            to=user.email,
            template=EmailTemplate.welcome,
            context={"name": user.name},
            user_id=user.id,
        )
        return user

    async def _burn_email_change_link(self, db: AsyncSession, token: str) -> NoReturn:
        """The link's new address was taken: keep the link spent (a security write), change
        nothing else, and refuse."""

        async def spend(tx: AsyncSession) -> None:
            # Spent again in the security write's own transaction (a concurrent confirmation
            # may have spent it in between: spent all the same).
            with contextlib.suppress(InvalidToken):
                await self._tokens.consume(tx, ActionKind.change_email, token)

        await security_write(db, spend)
        raise InvalidToken("The new address is no longer available.")

    @staticmethod
    def _adopted_registration(data: dict[str, object]) -> UserChanges:
        """What the followed link of a later sign-up sets: its password and name."""
        password_hash = data.get("password_hash")
        if not isinstance(password_hash, str):
            raise InvalidToken()
        name = data.get("name")
        return {
            "password_hash": password_hash,
            "password_changed_at": utc_now(),
            "name": name if isinstance(name, str) else None,
        }

    async def _confirm_email_change(self, db: AsyncSession, token: str, client: ClientInfo) -> User:
        spent = await self._tokens.consume(db, ActionKind.change_email, token)
        user = await self._users.by_id(db, spent.user_id)
        new_email = (spent.data or {}).get("new_email")
        if user is None or not user.is_active or not isinstance(new_email, str):
            raise InvalidToken()
        other = await self._users.by_email(db, new_email)
        if other is not None and other.id != user.id:
            # Taken since the link was sent: the link is spent and the address stays as it was.
            await self._burn_email_change_link(db, token)
        old_email = user.email
        # The check above cannot see a concurrent confirmation or registration of the same
        # address that has not committed yet; the repository's unique index can.
        if not await self._users.change_email(db, user, new_email):
            await self._burn_email_change_link(db, token)
        await self._webhooks.emit(
            db, WebhookEvent.user_updated, user_data(user.id, new_email, changes=["email"])
        )
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
