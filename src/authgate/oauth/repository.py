"""Queries over pending sign-ins (oauth_states), identities and provider tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.models import OAuthIdentity, OAuthState, ProviderToken
from authgate.oauth.proof import proves_owner


class OAuthRepository:
    # -- states -----------------------------------------------------------------------------

    async def state_by_hash(self, db: AsyncSession, state_hash: str) -> OAuthState | None:
        result = await db.execute(select(OAuthState).where(OAuthState.state_hash == state_hash))
        return result.scalar_one_or_none()

    async def spend_state(
        self, db: AsyncSession, state_id: uuid.UUID, provider: str, now: datetime
    ) -> bool:
        """Mark a pending state used: one conditional UPDATE, so a state is spent exactly once."""
        result = await db.execute(
            update(OAuthState)
            .where(
                OAuthState.id == state_id,
                OAuthState.provider == provider,
                OAuthState.used_at.is_(None),
                OAuthState.expires_at > now,
            )
            .values(used_at=now)
            .returning(OAuthState.id)
            .execution_options(synchronize_session=False)
        )
        return result.first() is not None

    async def purge_expired_states(self, db: AsyncSession, now: datetime) -> int:
        """Delete pending sign-ins that can no longer complete (expired; a spent one expires too)."""
        result = await db.execute(
            delete(OAuthState)
            .where(OAuthState.expires_at < now)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    # -- identities -------------------------------------------------------------------------

    async def identity(self, db: AsyncSession, provider: str, subject: str) -> OAuthIdentity | None:
        result = await db.execute(
            select(OAuthIdentity).where(
                OAuthIdentity.provider == provider, OAuthIdentity.subject == subject
            )
        )
        return result.scalar_one_or_none()

    async def identity_of_user(
        self, db: AsyncSession, user_id: uuid.UUID, provider: str
    ) -> OAuthIdentity | None:
        result = await db.execute(
            select(OAuthIdentity).where(
                OAuthIdentity.user_id == user_id, OAuthIdentity.provider == provider
            )
        )
        return result.scalars().first()

    async def identities_of_user(self, db: AsyncSession, user_id: uuid.UUID) -> list[OAuthIdentity]:
        result = await db.execute(
            select(OAuthIdentity)
            .where(OAuthIdentity.user_id == user_id)
            .order_by(OAuthIdentity.created_at)
        )
        return list(result.scalars())

    async def count_identities(self, db: AsyncSession, user_id: uuid.UUID) -> int:
        result = await db.execute(
            select(func.count()).select_from(OAuthIdentity).where(OAuthIdentity.user_id == user_id)
        )
        return int(result.scalar_one())

    async def delete_identity(self, db: AsyncSession, identity_id: uuid.UUID) -> None:
        await db.execute(delete(OAuthIdentity).where(OAuthIdentity.id == identity_id))

    async def delete_unproven_identities(
        self, db: AsyncSession, user_id: uuid.UUID, email: str
    ) -> int:
        """Delete every identity of the user that neither proved ``email`` itself (the provider
        verified that very address, compared case-insensitively) nor was connected by the
        signed-in owner; their provider tokens go with them (ON DELETE CASCADE). Returns how
        many were deleted.

        For the flows that establish who owns an address by a password (registration, reset,
        verification): an identity that joined the account by another or unverified address
        must not survive into the account of the address's proven owner.
        """
        identities = await self.identities_of_user(db, user_id)
        doomed = [i.id for i in identities if not proves_owner(i, email)]
        if doomed:
            await db.execute(
                delete(OAuthIdentity)
                .where(OAuthIdentity.id.in_(doomed))
                .execution_options(synchronize_session=False)
            )
            for identity in identities:
                if identity.id in doomed:
                    db.expunge(identity)
        return len(doomed)

    # -- provider tokens --------------------------------------------------------------------

    async def token(
        self, db: AsyncSession, user_id: uuid.UUID, provider: str
    ) -> ProviderToken | None:
        """The stored row, always re-read from the database (never a stale identity-map copy)."""
        result = await db.execute(
            select(ProviderToken)
            .where(ProviderToken.user_id == user_id, ProviderToken.provider == provider)
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def update_token_if_version(
        self, db: AsyncSession, token_id: uuid.UUID, version: int, values: dict[str, Any]
    ) -> bool:
        """Optimistic lock: write only if nobody changed the row since ``version`` was read."""
        result = await db.execute(
            update(ProviderToken)
            .where(ProviderToken.id == token_id, ProviderToken.version == version)
            .values(**values)
            .returning(ProviderToken.id)
            .execution_options(synchronize_session=False)
        )
        return result.first() is not None

    async def token_providers(self, db: AsyncSession, user_id: uuid.UUID) -> list[str]:
        result = await db.execute(
            select(ProviderToken.provider)
            .where(ProviderToken.user_id == user_id)
            .order_by(ProviderToken.provider)
        )
        return list(result.scalars())

    async def delete_token(self, db: AsyncSession, token_id: uuid.UUID) -> None:
        await db.execute(delete(ProviderToken).where(ProviderToken.id == token_id))

    async def all_tokens(self, db: AsyncSession) -> list[ProviderToken]:
        result = await db.execute(select(ProviderToken).order_by(ProviderToken.id))
        return list(result.scalars())
