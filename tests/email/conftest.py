"""Fixtures for the email tests: fresh migrated databases, an SES stand-in (moto), an SMTP sink.

``email_pg`` / ``email_smtp`` are the session's shared ``pg_server`` / ``smtp_sink`` (from
``tests/conftest.py``), under the names these tests use.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from authgate.config import Settings
from authgate.core.db import make_engine, make_sessionmaker
from authgate.core.email import EmailService, OutgoingEmail
from authgate.core.migrate import upgrade_async
from authgate.core.security.crypto import EncryptionService, new_key_spec, parse_key_ring
from tests.support.mail import SmtpSink
from tests.support.servers import MotoServer, PostgresServer, moto_server

SENDER = "no-reply@authgate.test"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


@pytest.fixture(scope="session")
def email_pg(pg_server: PostgresServer) -> PostgresServer:
    return pg_server


@pytest.fixture(scope="session")
def email_smtp(smtp_sink: SmtpSink) -> SmtpSink:
    return smtp_sink


@pytest.fixture(scope="session")
def aws_env() -> Iterator[None]:
    """Fake credentials for boto3 talking to moto (never the real AWS)."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in AWS_ENV.items():
            mp.setenv(key, value)
        yield


def verify_sender(endpoint_url: str, address: str = SENDER) -> None:
    """moto refuses mail from unverified identities, like SES in the sandbox."""
    client = boto3.client("sesv2", region_name="us-east-1", endpoint_url=endpoint_url)
    client.create_email_identity(EmailIdentity=address)
    client.close()


@pytest.fixture(scope="session")
def moto(aws_env: None) -> Iterator[MotoServer]:
    with moto_server() as server:
        verify_sender(server.url)
        yield server


async def moto_messages(endpoint_url: str) -> list[dict[str, Any]]:
    """Every message moto's SES accepted: ``{id, source, subject, body, destinations}``.

    SESv2 ``SendEmail`` with Simple content is stored by moto's SES v1 backend, keeping the
    HTML body when there is one (else the text body).
    """
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{endpoint_url}/moto-api/data.json")
        response.raise_for_status()
    data = response.json()
    return list(data.get("ses", {}).get("Message", []))


def base_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "encryption_keys": new_key_spec("test1"),
        "email_from": SENDER,
        "frontend_url": "https://app.authgate.test",
        "email_backend": "console",
        "email_retry_base_seconds": 0.001,
        "email_poll_interval": 0.05,
        "email_max_attempts": 5,
        **overrides,
    }
    return Settings(_env_file=None, **values)


#: Same switch as the root conftest: ``AUTHGATE_TEST_BACKENDS=sqlite`` runs one backend only.
BACKENDS = [
    b.strip()
    for b in os.environ.get("AUTHGATE_TEST_BACKENDS", "sqlite,postgres").split(",")
    if b.strip()
]


@pytest.fixture(params=BACKENDS)
async def email_db(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """A fresh migrated database (SQLite file or PostgreSQL database) per test."""
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("email_pg")
        url = server.createdb(f"email_{uuid.uuid4().hex[:12]}")
    else:
        if request.node.get_closest_marker("postgres_only"):
            pytest.skip("needs PostgreSQL")
        url = f"sqlite+aiosqlite:///{tmp_path / 'authgate.db'}"
    settings = base_settings(url)
    await upgrade_async(settings)
    return settings


@pytest.fixture
async def engine(email_db: Settings) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(email_db)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


def make_service(settings: Settings) -> EmailService:
    assert settings.encryption_keys is not None
    keys = parse_key_ring(settings.encryption_keys.get_secret_value())
    return EmailService(settings, EncryptionService(keys))


@pytest.fixture
def service(email_db: Settings) -> EmailService:
    return make_service(email_db)


class RecordingBackend:
    """An in-memory backend counting deliveries per outbox id (for concurrency tests)."""

    name = "recording"

    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []
        self.counts: Counter[uuid.UUID] = Counter()

    async def send(self, message: OutgoingEmail) -> str | None:
        self.sent.append(message)
        self.counts[message.outbox_id] += 1
        return f"rec-{message.outbox_id}"

    async def close(self) -> None:
        return None


def unique_address(domain: str = "example.com") -> str:
    return f"user-{uuid.uuid4().hex[:12]}@{domain}"
