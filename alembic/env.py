"""Alembic environment: async engine, URL from authgate's settings (never from alembic.ini).

Two callers: ``authgate migrate`` (``authgate.core.migrate``), which injects its ``Settings``
and an open connection through ``config.attributes``; and the ``alembic`` command line from
the repository root (alembic.ini), where the settings come from the environment
(``AUTHGATE_DATABASE_URL``, .env) as they do for the app.

In a wheel this directory is ``authgate/_migrations`` (pyproject.toml ``force-include``).
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from authgate.config import Settings
from authgate.core.db import make_engine
from authgate.core.migrate import ensure_sqlite_dir
from authgate.models import Base

config = context.config
target_metadata = Base.metadata

# The alembic command line reads its logging from alembic.ini; `authgate migrate` has no file.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _settings() -> Settings:
    settings = config.attributes.get("settings")
    return settings if isinstance(settings, Settings) else Settings()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    settings = _settings()
    ensure_sqlite_dir(settings)
    engine = make_engine(settings)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    asyncio.run(_run_async())


if context.is_offline_mode():
    context.configure(url=_settings().database_url, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
