"""Queries over sessions and their refresh tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.core.db import UTCDateTime
from authgate.core.time import as_utc
from authgate.models import AuthSession, RefreshToken, User

# The refresh hot path's statements, built once: no per-request construction or cache-key work.
_NOW = bindparam("now", type_=UTCDateTime())
_SPENDABLE = (
    RefreshToken.token_hash == bindparam("b_token_hash"),
    RefreshToken.used_at.is_(None),
    RefreshToken.revoked_at.is_(None),
    RefreshToken.expires_at > _NOW,
)
_LIVE = (
    AuthSession.revoked_at.is_(None),
    AuthSession.expires_at > _NOW,
    AuthSession.user_id == User.id,
    User.is_active.is_(True),
)
_SPEND_PG = (
    update(RefreshToken)
    .where(*_SPENDABLE, RefreshToken.session_id == AuthSession.id, *_LIVE)
    .values(used_at=_NOW)
    .returning(
        RefreshToken.id, RefreshToken.session_id, AuthSession.user_id, AuthSession.expires_at
    )
    .execution_options(synchronize_session=False)
)
_SPEND_SQLITE = (
    update(RefreshToken)
    .where(
        *_SPENDABLE,
        RefreshToken.session_id.in_(
            select(AuthSession.id).join(User, User.id == AuthSession.user_id).where(*_LIVE)
        ),
    )
    .values(used_at=_NOW)
    .returning(RefreshToken.id, RefreshToken.session_id)
    .execution_options(synchronize_session=False)
)
_SESSION_FACTS = select(AuthSession.user_id, AuthSession.expires_at).where(
    AuthSession.id == bindparam("session_id")
)
_INSERT_TOKEN = insert(RefreshToken)


@dataclass(frozen=True, slots=True)
class SpentRefresh:
    token_id: uuid.UUID
    session_id: uuid.UUID
    user_id: uuid.UUID
    session_expires_at: datetime


@dataclass(frozen=True, slots=True)
class SessionView:
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    ip_address: str | None
    user_agent: str | None


class SessionRepository:
    async def spend_refresh_token(
        self, db: AsyncSession, token_hash: str, now: datetime
    ) -> SpentRefresh | None:
        """Atomically mark an unused, unexpired token of a live session of an active user as
        used, and return what the successor needs, in one round trip.

        One conditional ``UPDATE … FROM … RETURNING``: of any number of concurrent callers
        exactly one gets the row; the others see ``used_at`` already set.
        """
        params = {"b_token_hash": token_hash, "now": now}
        if db.get_bind().dialect.name == "postgresql":
            # UPDATE … FROM … RETURNING with the session's columns: one round trip.
            row = (await db.execute(_SPEND_PG, params)).first()
            return None if row is None else SpentRefresh(row[0], row[1], row[2], as_utc(row[3]))
        # SQLite's RETURNING sees only the target table: spend, then read the session.
        spent = (await db.execute(_SPEND_SQLITE, params)).first()
        if spent is None:
            return None
        session = (await db.execute(_SESSION_FACTS, {"session_id": spent[1]})).one()
        return SpentRefresh(spent[0], spent[1], session[0], as_utc(session[1]))

    async def add_token(
        self,
        db: AsyncSession,
        *,
        session_id: uuid.UUID,
        token_hash: str,
        parent_id: uuid.UUID | None,
        issued_at: datetime,
        expires_at: datetime,
        ip_address: str | None,
        user_agent: str | None,
    ) -> None:
        await db.execute(
            _INSERT_TOKEN,
            {
                "id": uuid.uuid4(),
                "session_id": session_id,
                "token_hash": token_hash,
                "parent_id": parent_id,
                "issued_at": issued_at,
                "expires_at": expires_at,
                "ip_address": ip_address,
                "user_agent": user_agent,
            },
        )

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
    ) -> list[SessionView]:
        """Live sessions with their last use, IP and User-Agent taken from the newest refresh
        token (a refresh writes only its token row, never the session row)."""
        latest = (
            select(RefreshToken.session_id, func.max(RefreshToken.issued_at).label("last"))
            .join(AuthSession, AuthSession.id == RefreshToken.session_id)
            .where(AuthSession.user_id == user_id)
            .group_by(RefreshToken.session_id)
            .subquery()
        )
        result = await db.execute(
            select(AuthSession, RefreshToken)
            .join(latest, latest.c.session_id == AuthSession.id)
            .join(
                RefreshToken,
                and_(
                    RefreshToken.session_id == AuthSession.id,
                    RefreshToken.issued_at == latest.c.last,
                ),
            )
            .where(
                AuthSession.user_id == user_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
            )
            .order_by(RefreshToken.issued_at.desc())
        )
        views: dict[uuid.UUID, SessionView] = {}
        for session, token in result.all():
            views.setdefault(
                session.id,
                SessionView(
                    id=session.id,
                    created_at=session.created_at,
                    last_used_at=token.issued_at,
                    expires_at=session.expires_at,
                    ip_address=token.ip_address or session.ip_address,
                    user_agent=token.user_agent or session.user_agent,
                ),
            )
        return list(views.values())

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
