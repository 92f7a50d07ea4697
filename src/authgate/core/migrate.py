"""Run Alembic programmatically: ``authgate migrate`` and the test suite use this, nothing else.

The migrations live in ``alembic/`` at the repository root (with ``alembic.ini``, for the
``alembic`` command line). A wheel carries them as the package data ``authgate/_migrations``
(pyproject.toml ``force-include``); a source checkout or editable install has no such
directory in the package and uses the repository's ``alembic/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from authgate.config import Settings
from authgate.core.db import make_engine

#: src/authgate/core/migrate.py -> the repository root.
_REPOSITORY_MIGRATIONS = Path(__file__).resolve().parents[3] / "alembic"


def migrations_dir() -> Path:
    """The Alembic script directory: the installed package's ``_migrations`` (a wheel), else
    the repository's ``alembic/`` (a source checkout, an editable install)."""
    packaged = files("authgate") / "_migrations"
    if packaged.is_dir():
        return Path(str(packaged))
    if (_REPOSITORY_MIGRATIONS / "env.py").is_file():
        return _REPOSITORY_MIGRATIONS
    raise RuntimeError(
        "authgate's migrations are missing: neither authgate/_migrations in the installed"
        f" package nor {_REPOSITORY_MIGRATIONS} exists"
    )


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["settings"] = settings
    return cfg


def ensure_sqlite_dir(settings: Settings) -> None:
    """Create the directory of a SQLite file (``./var`` by default): SQLite makes the file,
    not its directory."""
    if settings.is_sqlite and ":///" in settings.database_url:
        path = settings.database_url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


async def run_async(settings: Settings, step: Callable[[Config], None]) -> None:
    """Run one Alembic command (``step(config)``, e.g. ``command.upgrade``) on a connection of
    the settings' database, in one transaction, from inside a running loop."""
    ensure_sqlite_dir(settings)
    cfg = alembic_config(settings)
    engine = make_engine(settings)

    def _step(connection: Connection) -> None:
        cfg.attributes["connection"] = connection
        step(cfg)

    try:
        async with engine.begin() as connection:
            await connection.run_sync(_step)
    finally:
        await engine.dispose()


async def upgrade_async(settings: Settings, revision: str = "head") -> None:
    """Upgrade from inside a running loop (tests, app start-up in development)."""
    await run_async(settings, lambda cfg: command.upgrade(cfg, revision))


def upgrade(settings: Settings, revision: str = "head") -> None:
    asyncio.run(upgrade_async(settings, revision))
