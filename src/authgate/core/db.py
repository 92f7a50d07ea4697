"""Engine, sessions and the declarative base shared by every model."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy import JSON, DateTime, MetaData, TypeDecorator, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from authgate.config import Settings
from authgate.core.metrics import DB_POOLS
from authgate.core.time import as_utc, utc_now

T = TypeVar("T")

#: ``AsyncSession.info`` key set by ``security_write``: the session's unit of work was abandoned
#: and only the security write was committed.
SECURITY_WRITE = "authgate.security_write"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware on the way in and out, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class UUIDPrimaryKey:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)


def make_engine(settings: Settings) -> AsyncEngine:
    """The engine; ``hide_parameters`` keeps bound values (addresses, hashes) out of every
    DBAPI error message, so no log line or traceback can quote them."""
    url = settings.database_url
    if settings.is_sqlite:
        engine = create_async_engine(
            url,
            connect_args={"timeout": 30},
            hide_parameters=True,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_pool_size,
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    else:
        engine = create_async_engine(
            url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_pool_size,
            # No pre-ping round trip per checkout (it cost ~12 % of a request): a connection
            # broken by a database restart fails its request once with a 503 (problems.py) and
            # is dropped.
            pool_recycle=1800,
            hide_parameters=True,
        )
    DB_POOLS.track(engine.sync_engine, capacity=2 * settings.database_pool_size)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def security_write(db: AsyncSession, write: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Commit ``write`` although the request is about to fail: the one way to keep a write
    past a failure (a session revoked on refresh-token reuse, the audit row of a failed sign-in,
    a one-time code burnt because it came without its browser, a spent email-change link).

    Only for a request that fails right after it (the caller raises): everything the unit of
    work wrote so far is rolled back first — the request fails, so none of it may stay — then
    ``write`` runs in a fresh transaction on the same connection and is committed at once,
    before the error is raised and before anything else (the shared store, a provider) can
    fail. The same connection, and no transaction of the request still open, on both
    databases: SQLite has one writer, so a second connection would wait on the request's own
    write lock until ``busy_timeout``; PostgreSQL would wait forever on row locks the request
    holds (the spent token, a session row). The rollback expires every loaded row, so pass
    ``write`` plain values, not ORM objects, and read none afterwards.

    The unit of work (``deps.get_db``) refuses to commit after a security
    write: a request that carried on would silently lose its earlier writes."""
    await db.rollback()
    db.info[SECURITY_WRITE] = True
    try:
        result = await write(db)
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return result


def _refuse_after_security_write(session: AsyncSession) -> None:
    if session.info.get(SECURITY_WRITE):
        raise RuntimeError("a unit of work carried on after a security write; it must fail")


async def commit_unit_of_work(session: AsyncSession) -> None:
    """Commit a unit of work that ended normally (never one that made a security write)."""
    _refuse_after_security_write(session)
    await session.commit()
