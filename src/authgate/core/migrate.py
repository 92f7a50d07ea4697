"""Run Alembic programmatically: ``authgate migrate`` and the test suite use this, nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from authgate.config import Settings
from authgate.core.db import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["settings"] = settings
    return cfg


def _ensure_sqlite_dir(settings: Settings) -> None:
    if settings.is_sqlite and ":///" in settings.database_url:
        path = settings.database_url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


async def run_async(settings: Settings, step: Callable[[Config], None]) -> None:
    """Run one Alembic command (``step(config)``, e.g. ``command.upgrade``) on a connection of
    the settings' database, in one transaction, from inside a running loop."""
    _ensure_sqlite_dir(settings)
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
