"""Queries over sessions and their refresh tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Insert, Select, and_, bindparam, delete, func, insert, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.core.db import UTCDateTime
from authgate.core.time import as_utc
from authgate.models import AuditEvent, AuthSession, RefreshToken, ServiceRevocation, User

# The refresh hot path's statements, built once: no per-request construction or cache-key work.
_TOKENS = RefreshToken.__table__
_AUDIT = AuditEvent.__table__
_NOW = bindparam("now", type_=UTCDateTime())
# Bind names never equal a column name: an UPDATE would take such a parameter as a SET clause.
_IP = bindparam("client_ip", type_=_TOKENS.c.ip_address.type)
_UA = bindparam("client_ua", type_=_TOKENS.c.user_agent.type)
_IDLE_DEADLINE = bindparam("idle_deadline", type_=UTCDateTime())
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
_SUCCESSOR_COLUMNS = (
    "id",
    "session_id",
    "token_hash",
    "parent_id",
    "issued_at",
    "expires_at",
    "ip_address",
    "user_agent",
)
_AUDIT_COLUMNS = ("id", "created_at", "type", "user_id", "session_id", "ip_address", "user_agent")


def _rotate_postgresql() -> Select[uuid.UUID, uuid.UUID, datetime, str, list[str]]:
    """The whole rotation as one statement: data-modifying CTEs spend the token, insert its
    successor and the audit row, and the SELECT hands back what the response needs.

    All parts run on one snapshot in one statement: when the UPDATE spends nothing (a
    concurrent caller got there first, or the token or session is dead) both INSERTs select
    from an empty ``spent`` and write nothing, and the SELECT returns no row.
    """
    spent = (
        update(RefreshToken)
        .where(*_SPENDABLE, RefreshToken.session_id == AuthSession.id, *_LIVE)
        .values(used_at=_NOW)
        .returning(
            RefreshToken.id,
            RefreshToken.session_id,
            AuthSession.user_id,
            AuthSession.expires_at,
            AuthSession.amr,
            User.roles,
        )
        .cte("spent")
    )
    successor = (
        insert(RefreshToken)
        .from_select(
            _SUCCESSOR_COLUMNS,
            select(
                bindparam("successor_id", type_=_TOKENS.c.id.type),
                spent.c.session_id,
                bindparam("successor_hash", type_=_TOKENS.c.token_hash.type),
                spent.c.id,
                _NOW,
                func.least(_IDLE_DEADLINE, spent.c.expires_at),
                _IP,
                _UA,
            ),
        )
        .returning(RefreshToken.expires_at)
        .cte("successor")
    )
    audit = (
        insert(AuditEvent)
        .from_select(
            _AUDIT_COLUMNS,
            select(
                bindparam("audit_id", type_=_AUDIT.c.id.type),
                _NOW,
                bindparam("audit_type", type_=_AUDIT.c.type.type),
                spent.c.user_id,
                spent.c.session_id,
                _IP,
                _UA,
            ),
        )
        .cte("audit")
    )
    return (
        select(
            spent.c.user_id, spent.c.session_id, successor.c.expires_at, spent.c.amr, spent.c.roles
        )
        .select_from(spent.join(successor, true()))
        .add_cte(audit)
    )


_ROTATE_PG = _rotate_postgresql()

_SESSIONS = AuthSession.__table__
_SESSION_ID = bindparam("b_session_id", type_=_SESSIONS.c.id.type)


def _open_postgresql() -> Insert:
    """A new session and its first refresh token as one statement: the session's INSERT is a
    data-modifying CTE. The token's foreign key is checked at the end of the statement, when
    both rows are there."""
    session = (
        insert(AuthSession)
        .values(
            id=_SESSION_ID,
            user_id=bindparam("b_user_id", type_=_SESSIONS.c.user_id.type),
            created_at=_NOW,
            last_used_at=_NOW,
            expires_at=bindparam("session_end", type_=UTCDateTime()),
            ip_address=_IP,
            user_agent=_UA,
            auth_method=bindparam("b_auth_method", type_=_SESSIONS.c.auth_method.type),
            amr=bindparam("b_amr", type_=_SESSIONS.c.amr.type),
        )
        .cte("new_session")
    )
    return (
        insert(RefreshToken)
        .values(
            id=bindparam("b_token_id", type_=_TOKENS.c.id.type),
            session_id=_SESSION_ID,
            token_hash=bindparam("b_token_hash", type_=_TOKENS.c.token_hash.type),
            parent_id=None,
            issued_at=_NOW,
            expires_at=_IDLE_DEADLINE,
            ip_address=_IP,
            user_agent=_UA,
        )
        .add_cte(session)
    )


_OPEN_PG = _open_postgresql()
# SQLite has neither data-modifying CTEs nor other tables in RETURNING: four statements.
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
)
_SESSION_FACTS = (
    select(AuthSession.user_id, AuthSession.expires_at, AuthSession.amr, User.roles)
    .join(User, User.id == AuthSession.user_id)
    .where(AuthSession.id == bindparam("session_id"))
)
_INSERT_SESSION = insert(AuthSession)
_INSERT_TOKEN = insert(RefreshToken)
_INSERT_AUDIT = insert(AuditEvent)


@dataclass(frozen=True, slots=True)
class Rotated:
    """A refresh token was spent and its successor stored."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    #: The successor's idle deadline (never past the session's absolute end).
    expires_at: datetime
    #: The session's method references (``amr``), for the new access token.
    amr: tuple[str, ...]
    #: The user's roles as the spend read them, for the new access token.
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SessionView:
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    ip_address: str | None
    user_agent: str | None
    amr: tuple[str, ...]


def split_amr(stored: str) -> tuple[str, ...]:
    """The ``amr`` column (space-separated method references) as the claim's values."""
    return tuple(stored.split())


class SessionRepository:
    async def add_session(
        self,
        db: AsyncSession,
        *,
        user_id: uuid.UUID,
        auth_method: str,
        amr: str,
        now: datetime,
        expires_at: datetime,
        token_hash: str,
        token_expires_at: datetime,
        ip_address: str | None,
        user_agent: str | None,
    ) -> uuid.UUID:
        """Insert a session (ending at ``expires_at``) and its first refresh token (idle
        deadline ``token_expires_at``); the new session's id.

        Core INSERTs on the unit of work's connection, without ORM objects: a login writes
        these rows and never reads them back (one statement on PostgreSQL, two on SQLite). Pending ORM changes are flushed first, so a row
        the session refers to (a user created in the same unit of work) is there before it.
        """
        session_id = uuid.uuid4()
        await db.flush()
        conn = await db.connection()
        if conn.dialect.name == "postgresql":
            await conn.execute(
                _OPEN_PG,
                {
                    "b_session_id": session_id,
                    "b_user_id": user_id,
                    "now": now,
                    "session_end": expires_at,
                    "client_ip": ip_address,
                    "client_ua": user_agent,
                    "b_auth_method": auth_method,
                    "b_amr": amr,
                    "b_token_id": uuid.uuid4(),
                    "b_token_hash": token_hash,
                    "idle_deadline": token_expires_at,
                },
            )
            return session_id
        await conn.execute(
            _INSERT_SESSION,
            {
                "id": session_id,
                "user_id": user_id,
                "created_at": now,
                "last_used_at": now,
                "expires_at": expires_at,
                "ip_address": ip_address,
                "user_agent": user_agent,
                "auth_method": auth_method,
                "amr": amr,
            },
        )
        await conn.execute(
            _INSERT_TOKEN,
            {
                "id": uuid.uuid4(),
                "session_id": session_id,
                "token_hash": token_hash,
                "parent_id": None,
                "issued_at": now,
                "expires_at": token_expires_at,
                "ip_address": ip_address,
                "user_agent": user_agent,
            },
        )
        return session_id

    async def rotate_refresh_token(
        self,
        db: AsyncSession,
        *,
        token_hash: str,
        successor_hash: str,
        now: datetime,
        idle_deadline: datetime,
        ip_address: str | None,
        user_agent: str | None,
        audit_type: str,
    ) -> Rotated | None:
        """Spend an unused, unexpired token of a live session of an active user, store its
        successor (idle deadline ``min(idle_deadline, session end)``) and the audit row; None
        when the token could not be spent.

        The user's roles come with the row that decides the spend (the user is joined for
        ``is_active`` anyway), so a role change reaches the next refresh without a query more.

        The spend is one conditional ``UPDATE``: of any number of concurrent callers exactly
        one gets the row; the others see ``used_at`` already set. On PostgreSQL the whole
        rotation is that one statement (see ``_rotate_postgresql``); on SQLite it is four.
        """
        conn = await db.connection()
        params: dict[str, object] = {
            "b_token_hash": token_hash,
            "now": now,
            "idle_deadline": idle_deadline,
            "successor_id": uuid.uuid4(),
            "successor_hash": successor_hash,
            "client_ip": ip_address,
            "client_ua": user_agent,
            "audit_id": uuid.uuid4(),
            "audit_type": audit_type,
        }
        if conn.dialect.name == "postgresql":
            row = (await conn.execute(_ROTATE_PG, params)).first()
            if row is None:
                return None
            return Rotated(row[0], row[1], as_utc(row[2]), split_amr(row[3]), tuple(row[4]))
        spent = (
            await conn.execute(_SPEND_SQLITE, {"b_token_hash": token_hash, "now": now})
        ).first()
        if spent is None:
            return None
        token_id, session_id = spent
        user_id, session_end, amr, roles = (
            await conn.execute(_SESSION_FACTS, {"session_id": session_id})
        ).one()
        expires_at = min(idle_deadline, as_utc(session_end))
        await conn.execute(
            _INSERT_TOKEN,
            {
                "id": params["successor_id"],
                "session_id": session_id,
                "token_hash": successor_hash,
                "parent_id": token_id,
                "issued_at": now,
                "expires_at": expires_at,
                "ip_address": ip_address,
                "user_agent": user_agent,
            },
        )
        await conn.execute(
            _INSERT_AUDIT,
            {
                "id": params["audit_id"],
                "created_at": now,
                "type": audit_type,
                "user_id": user_id,
                "session_id": session_id,
                "ip_address": ip_address,
                "user_agent": user_agent,
            },
        )
        return Rotated(user_id, session_id, expires_at, split_amr(amr), tuple(roles))

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
                    amr=split_amr(session.amr),
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
        self,
        db: AsyncSession,
        user_id: uuid.UUID,
        now: datetime,
        reason: str,
        *,
        keep: uuid.UUID | None = None,
    ) -> list[uuid.UUID]:
        """Revoke every live session of the user (but ``keep``); their ids."""
        stmt = update(AuthSession).where(
            AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
        )
        if keep is not None:
            stmt = stmt.where(AuthSession.id != keep)
        result = await db.execute(
            stmt.values(revoked_at=now, revoked_reason=reason)
            .returning(AuthSession.id)
            .execution_options(synchronize_session=False)
        )
        return [row[0] for row in result]

    async def revoke_all_sessions(self, db: AsyncSession, now: datetime, reason: str) -> int:
        """Revoke every live session of every user (one UPDATE); how many."""
        result = await db.execute(
            update(AuthSession)
            .where(AuthSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def service_not_before(self, db: AsyncSession) -> datetime | None:
        """The instant of the last revoke-all (None: never)."""
        result = await db.execute(select(ServiceRevocation.not_before))
        return result.scalar_one_or_none()

    async def set_service_not_before(self, db: AsyncSession, at: datetime) -> None:
        """Store the instant of a revoke-all in the one row (made by migration 0009; made here
        again if someone emptied the table)."""
        result = await db.execute(
            update(ServiceRevocation)
            .where(ServiceRevocation.id == 1)
            .values(not_before=at)
            .execution_options(synchronize_session=False)
        )
        if not getattr(result, "rowcount", 0):
            await db.execute(insert(ServiceRevocation).values(id=1, not_before=at))

    async def purge_ended(self, db: AsyncSession, now: datetime) -> int:
        """Delete ended sessions (expired or revoked); their tokens go by ON DELETE CASCADE."""
        result = await db.execute(
            delete(AuthSession).where(
                (AuthSession.expires_at < now) | AuthSession.revoked_at.is_not(None)
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

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
