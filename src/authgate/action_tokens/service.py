"""Issue and consume single-use tokens (verification, reset, email change, OAuth codes).

Only a keyed hash is stored. Issuing a token supersedes every earlier unused token of the same
kind for the same user, so only the latest link works. Consuming is one atomic conditional
UPDATE, so a token is spent once even under concurrent use.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from authgate.action_tokens.repository import ActionTokenRepository, SpentToken
from authgate.core.errors import InvalidToken
from authgate.core.security.opaque import OpaqueTokens, TokenKind
from authgate.core.time import utc_now
from authgate.models import ActionKind

__all__ = ["PREFIX", "ActionTokenService", "SpentToken"]

PREFIX: dict[ActionKind, TokenKind] = {
    ActionKind.verify_email: TokenKind.verification,
    ActionKind.verify_registration: TokenKind.verification,
    ActionKind.reset_password: TokenKind.reset,
    ActionKind.change_email: TokenKind.email_change,
    ActionKind.oauth_code: TokenKind.oauth_code,
}


class ActionTokenService:
    def __init__(
        self, opaque: OpaqueTokens, repository: ActionTokenRepository | None = None
    ) -> None:
        self._opaque = opaque
        self._repo = repository or ActionTokenRepository()

    async def issue(
        self,
        db: AsyncSession,
        kind: ActionKind,
        user_id: uuid.UUID,
        ttl_seconds: int,
        data: dict[str, Any] | None = None,
        *,
        supersede: bool = True,
    ) -> str:
        """A new raw token; by default every earlier unused token of this kind and user dies."""
        now = utc_now()
        if supersede:
            await self.supersede(db, kind, user_id, now)
        raw, token_hash = self._opaque.new(PREFIX[kind])
        self._repo.add(
            db,
            kind=kind,
            user_id=user_id,
            token_hash=token_hash,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
            data=data,
        )
        return raw

    async def supersede(
        self, db: AsyncSession, kind: ActionKind, user_id: uuid.UUID, now: datetime | None = None
    ) -> None:
        """Make every unused token of this kind for this user unusable."""
        await self._repo.supersede(db, kind, user_id, now or utc_now())

    async def supersede_all(self, db: AsyncSession, kind: ActionKind, now: datetime) -> None:
        """Make every unused token of this kind, of every user, unusable (a revoke-all)."""
        await self._repo.supersede_all(db, kind, now)

    async def peek(self, db: AsyncSession, kind: ActionKind, raw: str) -> SpentToken | None:
        """The token's owner if it is currently usable, without spending it."""
        if not OpaqueTokens.looks_like(PREFIX[kind], raw):
            return None
        token = await self._repo.usable(db, kind, self._opaque.hash(raw), utc_now())
        if token is None:
            return None
        return SpentToken(token.id, token.user_id, token.created_at, token.data, kind)

    async def consume(
        self, db: AsyncSession, kind: ActionKind | tuple[ActionKind, ...], raw: str
    ) -> SpentToken:
        """Spend a token or raise InvalidToken (unknown, used, superseded or expired alike).

        Several kinds may be given when they share a prefix (the two kinds of verification
        link); the spent token's ``kind`` says which it was.
        """
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not all(OpaqueTokens.looks_like(PREFIX[k], raw) for k in kinds):
            raise InvalidToken()
        spent = await self._repo.spend(db, kinds, self._opaque.hash(raw), utc_now())
        if spent is None:
            raise InvalidToken()
        return spent
