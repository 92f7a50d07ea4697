"""What follows when someone proves the mailbox of an account that was not verified.

Anyone can type any address into a sign-up form or a provider profile, so an unverified account
proves nothing about who owns the mailbox. The moment someone does prove it (a verification
link, a password reset), whatever an earlier, unproven party may have planted in the account
goes: its sessions end, and every provider identity that did not itself prove this address
(and was not linked by a signed-in owner) is removed, so a provider sign-in of the earlier
party cannot land in the account afterwards.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from authgate.action_tokens.service import ActionTokenService
from authgate.audit import AuditService, AuditType
from authgate.models import ActionKind, User
from authgate.sessions.service import SessionService
from authgate.users.repository import UserChanges, UserRepository
from authgate.webhooks import WebhookEvent, user_data
from authgate.webhooks.service import WebhookService

#: The verification links of an address (a first sign-up's, a later sign-up's).
VERIFY_KINDS = (ActionKind.verify_email, ActionKind.verify_registration)


class IdentityPruner(Protocol):
    """What this needs of the OAuth identities (``oauth.repository.OAuthRepository``)."""

    async def delete_unproven_identities(
        self, db: AsyncSession, user_id: uuid.UUID, email: str
    ) -> int: ...


class AddressProven:
    """The one place an unverified account becomes verified by proof of its mailbox (its
    verification link, a password reset), with everything that must go with it."""

    def __init__(
        self,
        users: UserRepository,
        tokens: ActionTokenService,
        sessions: SessionService,
        audit: AuditService,
        identities: IdentityPruner | None,
        webhooks: WebhookService | None = None,
    ) -> None:
        self._webhooks = webhooks or WebhookService.disabled()
        self._users = users
        self._tokens = tokens
        self._sessions = sessions
        self._audit = audit
        self._identities = identities

    async def __call__(
        self, db: AsyncSession, user: User, *, reason: str, changes: UserChanges | None = None
    ) -> None:
        """Mark ``user`` verified (with ``changes``, e.g. a later sign-up's password); every
        other verification link stops working, every session ends, unproven identities go."""
        verified: UserChanges = {**(changes or {}), "email_verified": True}
        await self._users.update(db, user, **verified)
        await self._webhooks.emit(
            db, WebhookEvent.user_verified, user_data(user.id, user.email, reason=reason)
        )
        for kind in VERIFY_KINDS:
            await self._tokens.supersede(db, kind, user.id)
        await self._sessions.end_all(db, user, reason=reason)
        if self._identities is None:
            return
        removed = await self._identities.delete_unproven_identities(db, user.id, user.email)
        if removed:
            self._audit.record(
                db,
                AuditType.oauth_unlinked,
                user_id=user.id,
                detail={"reason": reason, "unproven_identities": removed},
            )
