"""Which local account a provider sign-in lands in: the rules, in one place.

- An identity is keyed by (provider, subject), never by email: a known identity signs in its user.
- A new identity whose address is unknown creates a user (``email_verified`` only if the provider
  asserts ``email_verified: true``; no password).
- The address belongs to an **unverified** local account and the provider verifies it: that
  account proves nothing (anyone can register any address), so it is deleted — with its password,
  sessions, links and anything planted in it — and a fresh user is created for the identity
  (pre-account-takeover defence). An unverified provider address never touches it
  (``account_exists``).
- The address belongs to a **verified** local account: linked only when
  AUTHGATE_OAUTH_LINK_BY_EMAIL is on *and* the provider verified the address; otherwise nothing is
  created and the browser gets ``?error=account_exists`` (sign in with the password, then connect
  the provider from the account with POST /oauth/{provider}/link).
- Linking (a signed-in user connects a provider) never looks at addresses; an identity already
  connected to another user is refused (``already_linked``).
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
from authgate.oauth.providers import ProviderProfile
from authgate.oauth.repository import OAuthRepository
from authgate.users.repository import UserRepository, email_key


class AccountLinker:
    def __init__(
        self,
        settings: Settings,
        audit: AuditService,
        users: UserRepository,
        repository: OAuthRepository,
    ) -> None:
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
            self._touch(identity, profile, email)
            return user, identity
        if email is None:
            raise FlowFailure(FlowError.email_required, "the provider gave no usable address")
        existing = await self._users.by_email(db, email)
        if existing is not None:
            if profile.email_verified and not existing.email_verified:
                await self._replace_unverified(db, existing, provider, client)
            elif (
                profile.email_verified
                and existing.email_verified
                and self._settings.oauth_link_by_email
            ):
                return await self._link_by_email(db, existing, provider, profile, email)
            else:
                raise FlowFailure(FlowError.account_exists, "address taken by a local account")
        user = User(
            email=email,
            email_key=email_key(email),
            name=profile.name,
            password_hash=None,
            email_verified=profile.email_verified,
        )
        db.add(user)
        await db.flush()
        identity = self._new_identity(user.id, provider, profile, email)
        db.add(identity)
        await db.flush()
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
            self._touch(identity, profile, email)
            return user, identity
        if await self._repo.identity_of_user(db, user.id, provider) is not None:
            raise FlowFailure(
                FlowError.already_linked, "another identity of this provider is linked"
            )
        identity = self._new_identity(user.id, provider, profile, email)
        db.add(identity)
        await db.flush()
        return user, identity

    async def _link_by_email(
        self, db: AsyncSession, user: User, provider: str, profile: ProviderProfile, email: str
    ) -> tuple[User, OAuthIdentity]:
        if not user.is_active:
            raise FlowFailure(FlowError.account_disabled)
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
        await self._users.delete(db, user)
        db.expunge(user)

    def _new_identity(
        self, user_id: uuid.UUID, provider: str, profile: ProviderProfile, email: str | None
    ) -> OAuthIdentity:
        now = utc_now()
        return OAuthIdentity(
            user_id=user_id,
            provider=provider,
            subject=profile.subject,
            email=email,
            email_verified=profile.email_verified,
            created_at=now,
            last_login_at=now,
        )

    @staticmethod
    def _touch(identity: OAuthIdentity, profile: ProviderProfile, email: str | None) -> None:
        identity.email = email
        identity.email_verified = profile.email_verified
        identity.last_login_at = utc_now()
