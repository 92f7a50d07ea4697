"""Test session: real PostgreSQL, a real SMTP sink, the app driven through ASGI.

Every database test runs twice, against SQLite and PostgreSQL (``db_backend``). The schema comes
from ``alembic upgrade head`` once per backend; each test starts from empty tables (truncated
after the test). Truncation rather than a rolled-back outer transaction because the concurrency
tests need real, separately committed transactions.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from authgate.app import create_app
from authgate.config import Settings
from authgate.core.db import make_engine
from authgate.core.migrate import upgrade_async
from authgate.models import Base
from authgate.runtime import Runtime
from tests.support.mail import SmtpSink
from tests.support.servers import PostgresServer, postgres_server

BACKENDS = [
    b.strip()
    for b in os.environ.get("AUTHGATE_TEST_BACKENDS", "sqlite,postgres").split(",")
    if b.strip()
]

TEST_PASSWORD = "correct horse battery staple"


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
    await upgrade_async(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    _migrated[backend] = url
    return url


@pytest.fixture
async def database_url(
    db_backend: str, request: pytest.FixtureRequest, tmp_root: Path
) -> AsyncIterator[str]:
    url = await _database_url(db_backend, request, tmp_root)
    yield url
    await truncate_all(url)


async def truncate_all(url: str) -> None:
    engine = make_engine(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
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


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "_env_file": None,
        "env": "test",
        "log_level": "WARNING",
        "hash_workers": 2,
        "rate_limits_enabled": False,
        "email_backend": "smtp",
        "email_poll_interval": 0.05,
        "email_retry_base_seconds": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


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


@dataclass
class Account:
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Flows:
    """Small end-to-end steps through the public API, reading mail from the SMTP sink."""

    def __init__(self, client: httpx.AsyncClient, sink: SmtpSink) -> None:
        self.client = client
        self.sink = sink
        self._n = 0

    def new_email(self) -> str:
        self._n += 1
        return f"user{self._n}@example.com"

    async def register(
        self, email: str, password: str = TEST_PASSWORD, name: str | None = None
    ) -> httpx.Response:
        body: dict[str, Any] = {"email": email, "password": password}
        if name is not None:
            body["name"] = name
        return await self.client.post("/api/v1/auth/register", json=body)

    async def verification_token(self, email: str, count: int = 1) -> str:
        mails = await self.sink.wait_for(email, count)
        verify = [m for m in mails if "/verify-email?token=" in m.text]
        assert verify, [m.subject for m in mails]
        return verify[-1].token("/verify-email")

    async def verify(self, email: str) -> None:
        token = await self.verification_token(email)
        response = await self.client.post("/api/v1/auth/verify-email", json={"token": token})
        assert response.status_code == 200, response.text

    async def login(self, email: str, password: str = TEST_PASSWORD) -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )

    async def signed_up(
        self, email: str | None = None, password: str = TEST_PASSWORD, name: str | None = None
    ) -> Account:
        email = email or self.new_email()
        response = await self.register(email, password, name)
        assert response.status_code == 202, response.text
        await self.verify(email)
        login = await self.login(email, password)
        assert login.status_code == 200, login.text
        body = login.json()
        return Account(email, password, body["access_token"], body["refresh_token"])


@pytest.fixture
def flows(client: httpx.AsyncClient, smtp_sink: SmtpSink) -> Flows:
    return Flows(client, smtp_sink)
