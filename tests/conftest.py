"""Test session: real PostgreSQL, a real SMTP sink, the app driven through ASGI.

Every database test runs twice, against SQLite and PostgreSQL (``db_backend``). The schema comes
from ``alembic upgrade head`` once per backend; each test starts from empty tables (truncated
after the test). Truncation rather than a rolled-back outer transaction because the concurrency
tests need real, separately committed transactions.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from authgate.app import create_app
from authgate.config import Settings
from authgate.core.migrate import upgrade_async
from authgate.runtime import Runtime
from tests.support.db import truncate_all
from tests.support.factories import Factory
from tests.support.flows import Flows
from tests.support.mail import SmtpSink
from tests.support.servers import PostgresServer, postgres_server
from tests.support.settings import BACKENDS, make_settings


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("db_backend") if callspec else None
        if backend == "sqlite" and item.get_closest_marker("postgres_only"):
            item.add_marker(pytest.mark.skip(reason="PostgreSQL only"))


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="authgate-tests-") as root:
        yield Path(root)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(scope="session")
def keys_dir(tmp_root: Path) -> Path:
    path = tmp_root / "keys"
    path.mkdir()
    return path


_migrated: dict[str, str] = {}


@pytest.fixture(scope="session", params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _database_url(backend: str, request: pytest.FixtureRequest, tmp_root: Path) -> str:
    if backend in _migrated:
        return _migrated[backend]
    if backend == "postgres":
        server: PostgresServer = request.getfixturevalue("pg_server")
        url = server.createdb("authgate_test")
    else:
        url = f"sqlite+aiosqlite:///{tmp_root / 'authgate_test.db'}"
    await upgrade_async(Settings(_env_file=None, database_url=url))
    _migrated[backend] = url
    return url


@pytest.fixture
async def database_url(
    db_backend: str, request: pytest.FixtureRequest, tmp_root: Path
) -> AsyncIterator[str]:
    url = await _database_url(db_backend, request, tmp_root)
    yield url
    await truncate_all(url)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module (or with indirect parametrisation) to change settings."""
    return {}


@pytest.fixture
def settings(
    database_url: str, keys_dir: Path, smtp_sink: SmtpSink, settings_overrides: dict[str, Any]
) -> Settings:
    return make_settings(
        database_url=database_url,
        keys_dir=keys_dir,
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
        **settings_overrides,
    )


@pytest.fixture
async def runtime(settings: Settings, smtp_sink: SmtpSink) -> AsyncIterator[Runtime]:
    smtp_sink.clear()
    rt = Runtime.build(settings)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.close()
        smtp_sink.clear()


@pytest.fixture
async def client(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, runtime=runtime)
    app.state.runtime = runtime
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 51234))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://127.0.0.1:8000",
        headers={"User-Agent": "pytest-agent/1.0"},
    ) as http:
        yield http


@pytest.fixture
def flows(client: httpx.AsyncClient, smtp_sink: SmtpSink) -> Flows:
    return Flows(client, smtp_sink)


@pytest.fixture
def factory(runtime: Runtime) -> Factory:
    return Factory(runtime)
