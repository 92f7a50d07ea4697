"""Which local account a provider sign-in lands in: the rules, in one place.

- An identity is keyed by (provider, subject), never by email.
- A provider address the provider has not verified never creates an account, joins one or opens
  a session: ``?error=email_not_verified`` (pre-account takeover: an attacker's provider account
  claiming the victim's address must not sit in, or later reach, the victim's account).
- A known identity signs in its user only while that still proves who owns the account: the user
  is active (else ``account_disabled``) and email-verified, and the identity was either linked by
  the signed-in owner (``linked_by_owner``) or proved the user's *current* address
  (``email_verified`` and the same address, case-insensitively); else ``email_not_verified``.
  So an identity whose user's address changed hands no longer signs in (the owner links it again).
  The proof is the one made when the identity was created or linked; what the provider says at
  later sign-ins neither renews nor upgrades it.
- A new identity whose (verified) address is unknown creates a verified user without password.
- The address belongs to an **unverified**, active local account: that account proves nothing
  (anyone can register any address), so it is deleted — with its password, sessions, links and
  anything planted in it — and a fresh user is created for the identity. A disabled account is
  never deleted this way (``account_disabled``).
- The address belongs to a **verified** local account: linked only when
  AUTHGATE_OAUTH_LINK_BY_EMAIL is on; otherwise nothing is created and the browser gets
  ``?error=account_exists`` (sign in with the password, then connect the provider from the account
  with POST /oauth/{provider}/link).
- Linking (a signed-in owner who re-confirmed the password connects a provider) never looks at
  addresses and marks the identity ``linked_by_owner``; an identity already connected to another
  user is refused (``already_linked``).
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from authgate.audit import AuditService, AuditType
from authgate.config import Settings
from authgate.core.http import ClientInfo
from authgate.core.time import utc_now
from authgate.models import OAuthIdentity, User
from authgate.oauth.errors import FlowError, FlowFailure
from authgate.oauth.proof import proves_owner
from authgate.oauth.providers import ProviderProfile
from authgate.oauth.repository import OAuthRepository
from authgate.users.repository import UserRepository
from authgate.webhooks import WebhookEvent, user_data
from authgate.webhooks.service import WebhookService


class AccountLinker:
    def __init__(
        self,
        settings: Settings,
        audit: AuditService,
        users: UserRepository,
        repository: OAuthRepository,
        webhooks: WebhookService | None = None,
    ) -> None:
        self._webhooks = webhooks or WebhookService.disabled()
        self._settings = settings
        self._audit = audit
        self._users = users
        self._repo = repository

    async def sign_in(
        self,
        db: AsyncSession,
        provider: str,
        profile: ProviderProfile,
        email: str | None,
        client: ClientInfo,
    ) -> tuple[User, OAuthIdentity]:
        identity = await self._repo.identity(db, provider, profile.subject)
        if identity is not None:
            user = await self._users.by_id(db, identity.user_id)
            if user is None or not user.is_active:
                raise FlowFailure(FlowError.account_disabled)
            if not user.email_verified or not proves_owner(identity, user.email):
                raise FlowFailure(
                    FlowError.email_not_verified, "identity does not prove the user's address"
                )
            self._touch(identity)
            return user, identity
        if email is None:
            raise FlowFailure(FlowError.email_required, "the provider gave no usable address")
        if not profile.email_verified:
            raise FlowFailure(FlowError.email_not_verified, "provider address not verified")
        existing = await self._users.by_email(db, email)
        if existing is not None:
            if not existing.is_active:
                raise FlowFailure(FlowError.account_disabled, "address of a disabled account")
            if not existing.email_verified:
                await self._replace_unverified(db, existing, provider, client)
            elif self._settings.oauth_link_by_email:
                return await self._link_by_email(db, existing, provider, profile, email)
            else:
                raise FlowFailure(FlowError.account_exists, "address taken by a local account")
        user = await self._users.create(db, email=email, name=profile.name, email_verified=True)
        if user is None:
            # A concurrent sign-up or sign-in of the address committed first.
            raise FlowFailure(FlowError.server_error, "concurrent sign-in")
        identity = self._new_identity(user.id, provider, profile, email)
        db.add(identity)
        await db.flush()
        await self._webhooks.emit(
            db,
            WebhookEvent.user_created,
            user_data(user.id, user.email, email_verified=True, method=f"oauth:{provider}"),
        )
        self._audit.record(
            db,
            AuditType.register,
            user_id=user.id,
            client=client,
            detail={"method": f"oauth:{provider}"},
        )
        return user, identity

    async def link(
        self,
        db: AsyncSession,
        user_id: uuid.UUID,
        provider: str,
        profile: ProviderProfile,
        email: str | None,
    ) -> tuple[User, OAuthIdentity]:
        user = await self._users.by_id(db, user_id)
        if user is None or not user.is_active:
            raise FlowFailure(FlowError.invalid_state, "the linking user is gone or disabled")
        identity = await self._repo.identity(db, provider, profile.subject)
        if identity is not None:
            if identity.user_id != user.id:
                raise FlowFailure(FlowError.already_linked, "identity belongs to another user")
            identity.email = email
            identity.email_verified = profile.email_verified
            identity.linked_by_owner = True
            identity.last_login_at = utc_now()
            return user, identity
        if await self._repo.identity_of_user(db, user.id, provider) is not None:
            raise FlowFailure(
                FlowError.already_linked, "another identity of this provider is linked"
            )
        identity = self._new_identity(user.id, provider, profile, email, linked_by_owner=True)
        db.add(identity)
        await db.flush()
        return user, identity

    async def _link_by_email(
        self, db: AsyncSession, user: User, provider: str, profile: ProviderProfile, email: str
    ) -> tuple[User, OAuthIdentity]:
        if await self._repo.identity_of_user(db, user.id, provider) is not None:
            raise FlowFailure(
                FlowError.already_linked, "another identity of this provider is linked"
            )
        identity = self._new_identity(user.id, provider, profile, email)
        db.add(identity)
        await db.flush()
        self._audit.record(
            db,
            AuditType.oauth_linked,
            user_id=user.id,
            detail={"provider": provider, "by": "verified_email"},
        )
        return user, identity

    async def _replace_unverified(
        self, db: AsyncSession, user: User, provider: str, client: ClientInfo
    ) -> None:
        """Delete an unverified account holding the address a provider has just verified.

        Its sessions, one-time tokens, identities and provider tokens go with it (ON DELETE
        CASCADE), so neither its password nor any pending link survives.
        """
        self._audit.record(
            db,
            AuditType.account_deleted,
            user_id=user.id,
            client=client,
            detail={"reason": "unverified_account_replaced_by_oauth", "provider": provider},
        )
        deleted = user_data(user.id, user.email, reason="unverified_account_replaced_by_oauth")
        await self._users.delete(db, user)
        await self._webhooks.emit(db, WebhookEvent.user_deleted, deleted)
        db.expunge(user)

    def _new_identity(
        self,
        user_id: uuid.UUID,
        provider: str,
        profile: ProviderProfile,
        email: str | None,
        *,
        linked_by_owner: bool = False,
    ) -> OAuthIdentity:
        now = utc_now()
        return OAuthIdentity(
            user_id=user_id,
            provider=provider,
            subject=profile.subject,
            email=email,
            email_verified=profile.email_verified,
            linked_by_owner=linked_by_owner,
            created_at=now,
            last_login_at=now,
        )

    @staticmethod
    def _touch(identity: OAuthIdentity) -> None:
        """Record the sign-in. The address the identity proved stays the one it proved when it
        was created or linked: what the provider says today neither renews nor upgrades it."""
        identity.last_login_at = utc_now()
