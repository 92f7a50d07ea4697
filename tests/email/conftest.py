"""Fixtures for the email tests: the root database fixtures with email settings, an SES
stand-in (moto) and the session's SMTP sink (``smtp_sink``).

``email_db`` is the root ``settings`` (the migrated test database of ``db_backend``, emptied
after each test) with ``email_overrides`` applied; a module may still override
``settings_overrides`` (the SES end-to-end tests do).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from authgate.config import Settings
from authgate.core.db import make_engine, make_sessionmaker
from authgate.core.email import EmailService
from tests.support.emails import AWS_ENV, email_overrides, make_service, verify_sender
from tests.support.servers import MotoServer, moto_server


@pytest.fixture(scope="session")
def aws_env() -> Iterator[None]:
    """Fake credentials for boto3 talking to moto (never the real AWS)."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in AWS_ENV.items():
            mp.setenv(key, value)
        yield


@pytest.fixture(scope="session")
def moto(aws_env: None) -> Iterator[MotoServer]:
    with moto_server() as server:
        verify_sender(server.url)
        yield server


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return email_overrides()


@pytest.fixture
def email_db(settings: Settings) -> Settings:
    """The root ``settings`` under the name these tests use."""
    return settings


@pytest.fixture
async def engine(email_db: Settings) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(email_db)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest.fixture
def service(email_db: Settings) -> EmailService:
    return make_service(email_db)
