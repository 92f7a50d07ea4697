"""Queries over the IP address + User-Agent pairs accounts signed in from."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from authgate.core.db import UTCDateTime
from authgate.models import AuthSession, SignInPair

# Bind names never equal a column name (an ON CONFLICT UPDATE would read them as SET clauses).
_USER = bindparam("b_user_id", type_=SignInPair.__table__.c.user_id.type)
_HASH = bindparam("b_pair_hash", type_=SignInPair.__table__.c.pair_hash.type)
_NOW = bindparam("b_now", type_=UTCDateTime())


def _record(
    insert: type[postgresql.Insert] | type[sqlite.Insert],
) -> ReturningInsert[datetime | None]:
    """Insert the pair, or move its ``last_seen_at`` to now keeping the old value in
    ``previous_seen_at``; either way RETURNING hands back ``previous_seen_at`` (NULL: never
    seen). SET expressions read the row as it was, on both databases."""
    statement = insert(SignInPair).values(
        user_id=_USER, pair_hash=_HASH, last_seen_at=_NOW, previous_seen_at=None
    )
    return statement.on_conflict_do_update(
        index_elements=[SignInPair.user_id, SignInPair.pair_hash],
        set_={
            "previous_seen_at": SignInPair.last_seen_at,
            "last_seen_at": statement.excluded.last_seen_at,
        },
    ).returning(SignInPair.previous_seen_at)


# Built once: the statement runs on every sign-in.
_RECORD = {"postgresql": _record(postgresql.Insert), "sqlite": _record(sqlite.Insert)}
_SEEN_IN_SESSIONS = (
    select(AuthSession.id)
    .where(
        AuthSession.user_id == bindparam("b_user_id"),
        AuthSession.id != bindparam("b_exclude"),
        AuthSession.created_at >= bindparam("b_since", type_=UTCDateTime()),
        AuthSession.ip_address.is_not_distinct_from(
            bindparam("b_ip", type_=AuthSession.ip_address.type)
        ),
        AuthSession.user_agent.is_not_distinct_from(
            bindparam("b_ua", type_=AuthSession.user_agent.type)
        ),
    )
    .limit(1)
)


class SignInPairRepository:
    async def record(
        self, db: AsyncSession, user_id: uuid.UUID, pair_hash: str, now: datetime
    ) -> datetime | None:
        """Note a sign-in from the pair ``pair_hash``; when the user last signed in from it
        before (None: never). One statement, an upsert on the primary key."""
        conn = await db.connection()
        params = {"b_user_id": user_id, "b_pair_hash": pair_hash, "b_now": now}
        return (await conn.execute(_RECORD[conn.dialect.name], params)).scalar_one()

    async def seen_in_sessions(
        self,
        db: AsyncSession,
        user_id: uuid.UUID,
        ip_address: str | None,
        user_agent: str | None,
        *,
        since: datetime,
        exclude: uuid.UUID,
    ) -> bool:
        """Whether a stored session of the user other than ``exclude``, opened since ``since``,
        came from this IP address and User-Agent (sign-ins older than the pair records)."""
        conn = await db.connection()
        found = await conn.execute(
            _SEEN_IN_SESSIONS,
            {
                "b_user_id": user_id,
                "b_exclude": exclude,
                "b_since": since,
                "b_ip": ip_address,
                "b_ua": user_agent,
            },
        )
        return found.first() is not None

    async def purge(self, db: AsyncSession, before: datetime) -> int:
        """Forget pairs not signed in from since ``before``."""
        result = await db.execute(delete(SignInPair).where(SignInPair.last_seen_at < before))
        return int(getattr(result, "rowcount", 0) or 0)
