"""ProviderTokenVault: the vault for the providers' tokens.

Access and refresh tokens are stored AES-256-GCM encrypted (``EncryptionService``) with the key id
in every ciphertext and associated data ``"{user_id}:{provider}:{field}"``, so a ciphertext copied
to another row or field does not decrypt. ID tokens are never stored.

``get_valid_access_token`` refreshes a token that has expired or expires within
``REFRESH_MARGIN`` seconds. Refreshes are serialised per (user, provider) by an ``asyncio.Lock``
in the process and by an optimistic lock (``version``, conditional UPDATE) across processes;
callers that wait re-read the row and use the winner's token, so N concurrent callers cause one
refresh at the provider. The refreshed tokens are committed in their own short transaction at
once: a provider that rotates refresh tokens has already invalidated the old one, so the new one
must not depend on the caller's transaction committing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authgate.audit import AuditService, AuditType
from authgate.core.http import ClientInfo
from authgate.core.security.crypto import DecryptionError, EncryptionService
from authgate.core.time import utc_now
from authgate.models import ProviderToken
from authgate.oauth.errors import ProviderError, ProviderTokenUnavailable, ProviderUnavailable
from authgate.oauth.providers import ProviderRegistry
from authgate.oauth.repository import OAuthRepository

logger = logging.getLogger("authgate.oauth.vault")

#: Refresh when this little lifetime is left (seconds).
REFRESH_MARGIN = 60
ACCESS = "access_token"
REFRESH = "refresh_token"


def associated_data(user_id: uuid.UUID, provider: str, field: str) -> bytes:
    """Binds a ciphertext to its row and column."""
    return f"{user_id}:{provider}:{field}".encode()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What can be said about a stored token without decrypting it."""

    provider: str
    key_id: str
    expires_at: datetime | None
    scope: str | None
    token_type: str | None
    has_refresh_token: bool
    version: int
    updated_at: datetime


class ProviderTokenVault:
    """The encrypted store of the providers' access and refresh tokens: stores them after a
    sign-in, hands out a valid access token (refreshing it once for concurrent callers), and
    revokes them at the provider.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        encryption: EncryptionService,
        audit: AuditService,
        providers: ProviderRegistry,
        repository: OAuthRepository | None = None,
    ) -> None:
        self._maker = sessionmaker
        self._encryption = encryption
        self._audit = audit
        self._providers = providers
        self._repo = repository or OAuthRepository()
        self._locks: weakref.WeakValueDictionary[tuple[uuid.UUID, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    # -- storing ----------------------------------------------------------------------------

    async def store(
        self,
        db: AsyncSession,
        *,
        user_id: uuid.UUID,
        identity_id: uuid.UUID,
        provider: str,
        token: dict[str, Any],
    ) -> None:
        """Keep the tokens of a completed sign-in (in the caller's unit of work)."""
        values = self._encrypted_values(user_id, provider, token, keep_refresh=None)
        row = await self._repo.token(db, user_id, provider)
        if row is None:
            db.add(
                ProviderToken(user_id=user_id, identity_id=identity_id, provider=provider, **values)
            )
        else:
            for key, value in values.items():
                setattr(row, key, value)
            row.identity_id = identity_id
            row.version = row.version + 1
        self._audit.record(
            db,
            AuditType.provider_token_stored,
            user_id=user_id,
            detail={
                "provider": provider,
                "has_refresh_token": values["refresh_token_ct"] is not None,
            },
        )

    def _encrypted_values(
        self,
        user_id: uuid.UUID,
        provider: str,
        token: dict[str, Any],
        *,
        keep_refresh: str | None,
    ) -> dict[str, Any]:
        refresh = token.get("refresh_token") or keep_refresh
        expires_in = token.get("expires_in")
        return {
            "key_id": self._encryption.current_kid,
            "access_token_ct": self._encryption.encrypt(
                token["access_token"].encode(), associated_data(user_id, provider, ACCESS)
            ),
            "refresh_token_ct": (
                self._encryption.encrypt(
                    refresh.encode(), associated_data(user_id, provider, REFRESH)
                )
                if refresh
                else None
            ),
            "token_type": token.get("token_type"),
            "scope": token.get("scope"),
            "expires_at": utc_now() + timedelta(seconds=expires_in)
            if expires_in is not None
            else None,
            "updated_at": utc_now(),
        }

    # -- reading ----------------------------------------------------------------------------

    async def get_valid_access_token(
        self,
        db: AsyncSession,
        user_id: uuid.UUID,
        provider: str,
        *,
        client: ClientInfo | None = None,
        caller: str | None = None,
    ) -> str:
        """A usable access token for the user at the provider, refreshed if needed.

        Raises ProviderTokenUnavailable (none stored, refresh refused, undecryptable) or
        ProviderUnavailable (the provider cannot be reached now). The access is audited in ``db``.
        """
        async with self._maker() as session:
            row = await self._repo.token(session, user_id, provider)
            if row is None:
                raise ProviderTokenUnavailable()
            token = self._access_if_fresh(row)
        if token is None:
            token = await self._refresh(user_id, provider)
        detail: dict[str, Any] = {"provider": provider}
        if caller:
            detail["caller"] = caller
        self._audit.record(
            db, AuditType.provider_token_accessed, user_id=user_id, client=client, detail=detail
        )
        return token

    def _access_if_fresh(self, row: ProviderToken) -> str | None:
        if row.expires_at is not None and row.expires_at - utc_now() <= timedelta(
            seconds=REFRESH_MARGIN
        ):
            return None
        return self._decrypt(row, ACCESS)

    def _decrypt(self, row: ProviderToken, field: str) -> str:
        blob = row.access_token_ct if field == ACCESS else row.refresh_token_ct
        if blob is None:
            raise ProviderTokenUnavailable()
        try:
            return self._encryption.decrypt(
                blob, associated_data(row.user_id, row.provider, field)
            ).decode()
        except DecryptionError:
            logger.error(
                "oauth.provider_token.undecryptable",
                extra={"user_id": str(row.user_id), "provider": row.provider, "field": field},
            )
            raise ProviderTokenUnavailable() from None

    def _lock(self, user_id: uuid.UUID, provider: str) -> asyncio.Lock:
        key = (user_id, provider)
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    async def _refresh(self, user_id: uuid.UUID, provider: str) -> str:
        async with self._lock(user_id, provider), self._maker() as session:
            row = await self._repo.token(session, user_id, provider)
            if row is None:
                raise ProviderTokenUnavailable()
            fresh = self._access_if_fresh(row)
            if fresh is not None:  # refreshed by the caller we waited for
                return fresh
            if row.refresh_token_ct is None:
                raise ProviderTokenUnavailable(
                    "The provider token expired and cannot be refreshed."
                )
            refresh_token = self._decrypt(row, REFRESH)
            version, token_id = row.version, row.id
            await session.rollback()  # hold no transaction while waiting on the provider
            try:
                meta = await self._providers.metadata(provider)
                response = await self._providers.refresh(meta, refresh_token)
            except ProviderError as exc:
                return await self._refresh_failed(user_id, provider, version, exc)
            values = self._encrypted_values(user_id, provider, response, keep_refresh=refresh_token)
            values["version"] = version + 1
            if not await self._repo.update_token_if_version(session, token_id, version, values):
                # Another process refreshed first: its tokens are the current ones.
                await session.rollback()
                return await self._reread(user_id, provider)
            self._audit.record(
                session,
                AuditType.provider_token_refreshed,
                user_id=user_id,
                detail={"provider": provider, "rotated": "refresh_token" in response},
            )
            await session.commit()
            logger.info(
                "oauth.provider_token.refreshed",
                extra={"user_id": str(user_id), "provider": provider},
            )
            return str(response["access_token"])

    async def _refresh_failed(
        self, user_id: uuid.UUID, provider: str, version: int, exc: ProviderError
    ) -> str:
        # A refresh token rotated by another process is refused here: use that process's result.
        async with self._maker() as session:
            row = await self._repo.token(session, user_id, provider)
            if row is not None and row.version != version:
                fresh = self._access_if_fresh(row)
                if fresh is not None:
                    return fresh
            self._audit.record(
                session,
                AuditType.provider_token_refreshed,
                user_id=user_id,
                detail={"provider": provider, "outcome": "failed", "reason": str(exc)},
            )
            await session.commit()
        logger.warning(
            "oauth.provider_token.refresh_failed",
            extra={"user_id": str(user_id), "provider": provider, "reason": str(exc)},
        )
        if exc.transient:
            raise ProviderUnavailable() from None
        raise ProviderTokenUnavailable() from None

    async def _reread(self, user_id: uuid.UUID, provider: str) -> str:
        async with self._maker() as session:
            row = await self._repo.token(session, user_id, provider)
            fresh = self._access_if_fresh(row) if row is not None else None
        if fresh is None:
            raise ProviderTokenUnavailable()
        return fresh

    async def token_info(
        self, db: AsyncSession, user_id: uuid.UUID, provider: str
    ) -> TokenInfo | None:
        """Key id, expiry, scope and whether a refresh token is held, without decrypting."""
        row = await self._repo.token(db, user_id, provider)
        if row is None:
            return None
        return TokenInfo(
            provider=row.provider,
            key_id=self._encryption.key_id_of(row.access_token_ct),
            expires_at=row.expires_at,
            scope=row.scope,
            token_type=row.token_type,
            has_refresh_token=row.refresh_token_ct is not None,
            version=row.version,
            updated_at=row.updated_at,
        )

    # -- revoking ---------------------------------------------------------------------------

    async def revoke(
        self, db: AsyncSession, user_id: uuid.UUID, provider: str, client: ClientInfo | None = None
    ) -> None:
        """Revoke at the provider (RFC 7009) when it can, then forget the tokens.

        A failure at the provider does not keep the tokens: it is audited and logged.
        """
        row = await self._repo.token(db, user_id, provider)
        if row is None:
            return
        outcome = "revoked"
        try:
            meta = await self._providers.metadata(provider)
            if meta.revocation_endpoint is None:
                outcome = "unsupported"
            else:
                if row.refresh_token_ct is not None:
                    await self._providers.revoke(meta, self._decrypt(row, REFRESH), REFRESH)
                await self._providers.revoke(meta, self._decrypt(row, ACCESS), ACCESS)
        except (ProviderError, ProviderTokenUnavailable, ProviderUnavailable) as exc:
            outcome = "failed"
            logger.warning(
                "oauth.provider_token.revoke_failed",
                extra={"user_id": str(user_id), "provider": provider, "reason": str(exc)},
            )
        await self._repo.delete_token(db, row.id)
        self._audit.record(
            db,
            AuditType.provider_token_revoked,
            user_id=user_id,
            client=client,
            detail={"provider": provider, "outcome": outcome},
        )

    async def revoke_all(
        self, db: AsyncSession, user_id: uuid.UUID, client: ClientInfo | None = None
    ) -> None:
        """``revoke`` for every provider the user holds tokens of (the account is going away:
        the grants it gave those providers' APIs should not outlive it)."""
        for provider in await self._repo.token_providers(db, user_id):
            await self.revoke(db, user_id, provider, client)


async def reencrypt_provider_tokens(db: AsyncSession, encryption: EncryptionService) -> int:
    """Move every provider-token ciphertext to the current key (``authgate keys reencrypt``).

    Each row is rewritten with a conditional UPDATE on its version, so a refresh that lands
    meanwhile wins (its ciphertexts are made with the current key anyway). Returns the number of
    rows rewritten. Raises DecryptionError if a ciphertext's key is no longer in the ring.
    """
    repo = OAuthRepository()
    count = 0
    for row in await repo.all_tokens(db):
        blobs = [row.access_token_ct] + ([row.refresh_token_ct] if row.refresh_token_ct else [])
        if not any(encryption.needs_reencrypt(blob) for blob in blobs):
            continue
        values: dict[str, Any] = {
            "key_id": encryption.current_kid,
            "access_token_ct": encryption.reencrypt(
                row.access_token_ct, associated_data(row.user_id, row.provider, ACCESS)
            ),
        }
        if row.refresh_token_ct is not None:
            values["refresh_token_ct"] = encryption.reencrypt(
                row.refresh_token_ct, associated_data(row.user_id, row.provider, REFRESH)
            )
        if await repo.update_token_if_version(db, row.id, row.version, values):
            count += 1
    return count
