"""Looking straight at the database (and the log) behind the API, for the acceptance tests.

The API tests drive the service over HTTP; these helpers check what it left behind: which rows
exist, how many audit events of a type were written, and that no raw secret (a refresh, reset or
email-change token) was stored in any column of any table or written to any log line.
``truncate_all`` empties the tables after each test.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from authgate.config import Settings
from authgate.core.db import make_engine
from authgate.core.logging import JsonFormatter, KeyValueFormatter
from authgate.models import AuditEvent, Base, RefreshToken
from authgate.runtime import Runtime


async def truncate_all(url: str) -> None:
    """Empty every table (the schema stays): what each database test leaves behind."""
    engine = make_engine(Settings(_env_file=None, database_url=url))
    try:
        async with engine.begin() as conn:
            tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
            if conn.dialect.name == "postgresql":
                await conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
            else:
                for table in tables:
                    await conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Leak:
    """Where a secret was found: a table column, or a log record."""

    where: str
    needle: str

    def __str__(self) -> str:
        return f"{self.needle[:8]}… in {self.where}"


def _table_names(conn: Any) -> list[str]:
    return sorted(inspect(conn).get_table_names())


async def all_tables(conn: AsyncConnection) -> list[str]:
    """Every table that exists in the database (reflected, so nothing a model forgot is missed)."""
    return await conn.run_sync(_table_names)


def _quote(conn: AsyncConnection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _contains(value: Any, needle: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return needle.encode() in raw or needle.encode().hex() in raw.hex()
    return needle in _as_text(value)


async def scan_columns(runtime: Runtime, needles: Iterable[str]) -> list[Leak]:
    """Every (table.column, needle) where a column of any row of any table contains a needle.

    Text, JSON and binary columns alike: the value is compared as stored (bytes for binary).
    """
    wanted = [n for n in needles if n]
    assert wanted, "nothing to look for"
    leaks: list[Leak] = []
    async with runtime.engine.connect() as conn:
        for table in await all_tables(conn):
            result = await conn.execute(text(f"SELECT * FROM {_quote(conn, table)}"))  # noqa: S608
            columns = list(result.keys())
            for row in result:
                for column, value in zip(columns, row, strict=True):
                    leaks.extend(
                        Leak(f"{table}.{column}", needle)
                        for needle in wanted
                        if _contains(value, needle)
                    )
    return leaks


async def row_count(runtime: Runtime, table: str, **where: Any) -> int:
    """Rows of ``table`` matching every ``column=value`` given."""
    model_table = Base.metadata.tables[table]
    unknown = set(where) - set(model_table.c.keys())
    assert not unknown, f"{table} has no column {unknown}"
    stmt = select(func.count()).select_from(model_table)
    for column, value in where.items():
        stmt = stmt.where(model_table.c[column] == value)
    async with runtime.engine.connect() as conn:
        return int((await conn.execute(stmt)).scalar_one())


async def audit_count(runtime: Runtime, type_: str, *, user_id: uuid.UUID | None = None) -> int:
    """Audit events of one type (for one user, if given)."""
    stmt = select(func.count()).select_from(AuditEvent).where(AuditEvent.type == type_)
    if user_id is not None:
        stmt = stmt.where(AuditEvent.user_id == user_id)
    async with runtime.engine.connect() as conn:
        return int((await conn.execute(stmt)).scalar_one())


async def refresh_token_row(runtime: Runtime, raw: str) -> dict[str, Any] | None:
    """The stored row of a raw refresh token, looked up the way the service does (keyed hash)."""
    stmt = select(RefreshToken.__table__).where(RefreshToken.token_hash == runtime.opaque.hash(raw))
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(stmt)).mappings().first()
    return None if row is None else dict(row)


async def successors_of(runtime: Runtime, raw: str) -> int:
    """How many refresh tokens were issued as the successor of this one."""
    row = await refresh_token_row(runtime, raw)
    assert row is not None, "unknown refresh token"
    stmt = select(func.count()).select_from(RefreshToken).where(RefreshToken.parent_id == row["id"])
    async with runtime.engine.connect() as conn:
        return int((await conn.execute(stmt)).scalar_one())


# -- log lines ---------------------------------------------------------------------------------


@contextmanager
def authgate_logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """Capture every record of the ``authgate`` logger tree at DEBUG.

    ``configure_logging`` sets ``propagate=False`` on "authgate" (so records never reach the root
    logger, where caplog listens) and the test settings set WARNING: the handler is attached to
    the "authgate" logger itself and the level lowered for the duration of the block.
    """
    logger = logging.getLogger("authgate")
    caplog.set_level(logging.DEBUG, logger="authgate")
    logger.addHandler(caplog.handler)
    try:
        yield caplog.records
    finally:
        logger.removeHandler(caplog.handler)


def scan_logs(records: Iterable[logging.LogRecord], needles: Iterable[str]) -> list[Leak]:
    """Secrets in any log line, as the service would write it (key=value and JSON) and raw."""
    wanted = [n for n in needles if n]
    formatters = [KeyValueFormatter(), JsonFormatter()]
    leaks: list[Leak] = []
    for record in records:
        lines = [repr(record.__dict__), *(f.format(record) for f in formatters)]
        for needle in wanted:
            if any(needle in line for line in lines):
                leaks.append(Leak(f"log {record.name}: {record.getMessage()}", needle))
    return leaks
