"""Queries over sessions and their refresh tokens."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.models import AuthSession, RefreshToken, User


class SessionRepository:
    async def spend_refresh_token(
        self, db: AsyncSession, token_hash: str, now: datetime
    ) -> tuple[uuid.UUID, uuid.UUID] | None:
        """Atomically mark an unused, unexpired token of a live session as used.

        One conditional ``UPDATE … RETURNING``: of any number of concurrent callers exactly one
        gets the row; the others see ``used_at`` already set.
        """
        # A live session of an active user: a disabled account's sessions stop refreshing.
        live_sessions = (
            select(AuthSession.id)
            .join(User, User.id == AuthSession.user_id)
            .where(
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
                User.is_active.is_(True),
            )
        )
        stmt = (
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == token_hash,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > now,
                RefreshToken.session_id.in_(live_sessions),
            )
            .values(used_at=now)
            .returning(RefreshToken.id, RefreshToken.session_id)
            .execution_options(synchronize_session=False)
        )
        row = (await db.execute(stmt)).first()
        return None if row is None else (row[0], row[1])

    async def token_by_hash(self, db: AsyncSession, token_hash: str) -> RefreshToken | None:
        result = await db.execute(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
        return result.scalar_one_or_none()

    async def get_session(self, db: AsyncSession, session_id: uuid.UUID) -> AuthSession | None:
        return await db.get(AuthSession, session_id)

    async def session_of_user(
        self, db: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID
    ) -> AuthSession | None:
        result = await db.execute(
            select(AuthSession).where(AuthSession.id == session_id, AuthSession.user_id == user_id)
        )
        return result.scalar_one_or_none()

    async def active_sessions(
        self, db: AsyncSession, user_id: uuid.UUID, now: datetime
    ) -> list[AuthSession]:
        result = await db.execute(
            select(AuthSession)
            .where(
                AuthSession.user_id == user_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
            )
            .order_by(AuthSession.last_used_at.desc())
        )
        return list(result.scalars())

    async def revoke_session(
        self, db: AsyncSession, session_id: uuid.UUID, now: datetime, reason: str
    ) -> bool:
        """Revoke a live session (and so all its tokens); False when it was already ended."""
        result = await db.execute(
            update(AuthSession)
            .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
            .returning(AuthSession.id)
            .execution_options(synchronize_session=False)
        )
        # The session row alone decides: every token check joins it. Not touching the token
        # rows here keeps concurrent reuse detections from deadlocking with a rotation.
        return result.first() is not None

    async def revoke_user_sessions(
        self, db: AsyncSession, user_id: uuid.UUID, now: datetime, reason: str
    ) -> list[uuid.UUID]:
        result = await db.execute(
            update(AuthSession)
            .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
            .returning(AuthSession.id)
            .execution_options(synchronize_session=False)
        )
        return [row[0] for row in result]

    async def touch(self, db: AsyncSession, session_id: uuid.UUID, now: datetime) -> None:
        await db.execute(
            update(AuthSession)
            .where(AuthSession.id == session_id)
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )

    async def principal(
        self, db: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID
    ) -> tuple[User, AuthSession] | None:
        """The user and session behind an access token, in one query."""
        result = await db.execute(
            select(User, AuthSession)
            .join(AuthSession, and_(AuthSession.user_id == User.id, AuthSession.id == session_id))
            .where(User.id == user_id)
        )
        row = result.first()
        return None if row is None else (row[0], row[1])
