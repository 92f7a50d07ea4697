"""Helpers for the email tests: the SES stand-in (moto), settings, an in-memory backend."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from typing import Any

import boto3
import httpx

from authgate.config import Settings
from authgate.core.email import EmailService, OutgoingEmail
from authgate.core.security.crypto import EncryptionService, new_key_spec, parse_key_ring

SENDER = "no-reply@authgate.test"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def verify_sender(endpoint_url: str, address: str = SENDER) -> None:
    """moto refuses mail from unverified identities, like SES in the sandbox."""
    client = boto3.client("sesv2", region_name="us-east-1", endpoint_url=endpoint_url)
    client.create_email_identity(EmailIdentity=address)
    client.close()


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


def email_overrides(**overrides: Any) -> dict[str, Any]:
    """What the email tests set on top of the test settings: a key ring for the outbox payload,
    a verified sender, the console backend and fast retries."""
    return {
        "encryption_keys": new_key_spec("test1"),
        "email_from": SENDER,
        "frontend_url": "https://app.authgate.test",
        "email_backend": "console",
        "email_retry_base_seconds": 0.001,
        "email_poll_interval": 0.05,
        "email_max_attempts": 5,
        **overrides,
    }


def base_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for the email tests that need no database fixture (backends, templates)."""
    values = email_overrides(database_url=database_url, **overrides)
    return Settings(_env_file=None, **values)


def make_service(settings: Settings) -> EmailService:
    assert settings.encryption_keys is not None
    keys = parse_key_ring(settings.encryption_keys.get_secret_value())
    return EmailService(settings, EncryptionService(keys))


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
