"""Email through the public API with the SES backend against the local SES stand-in (moto)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from tests.support.emails import SENDER, moto_messages, verify_sender
from tests.support.flows import TEST_PASSWORD
from tests.support.servers import MotoServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:botocore.*")


@pytest.fixture
def settings_overrides(moto: MotoServer) -> dict[str, Any]:
    return {
        "email_backend": "ses",
        "ses_endpoint_url": moto.url,
        "email_from": SENDER,
        "email_retry_base_seconds": 0.2,
        "email_max_attempts": 20,
    }


def _to(messages: list[dict[str, Any]], address: str) -> list[dict[str, Any]]:
    return [m for m in messages if address in m["destinations"]["ToAddresses"]]


async def _wait(
    moto: MotoServer, address: str, count: int, timeout: float = 20.0
) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = _to(await moto_messages(moto.url), address)
        if len(found) >= count or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.1)


async def test_register_verification_mail_arrives_through_ses(
    client: httpx.AsyncClient, moto: MotoServer
) -> None:
    email = "ses-e2e@example.com"
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 202
    (message,) = await _wait(moto, email, 1)
    match = re.search(r"/verify-email\?token=(agv_[A-Za-z0-9_-]+)", message["body"])
    assert match, message["body"]
    verified = await client.post("/api/v1/auth/verify-email", json={"token": match.group(1)})
    assert verified.status_code == 200
    assert verified.json()["email_verified"] is True


@pytest.mark.slow
async def test_ses_outage_loses_nothing_and_changes_no_response(
    client: httpx.AsyncClient, moto: MotoServer
) -> None:
    """SES down while 20 people register: every response is the normal 202; after recovery
    exactly 20 verification emails arrive, none twice."""
    reference = await client.post(
        "/api/v1/auth/register",
        json={"email": "before-outage@example.com", "password": TEST_PASSWORD},
    )
    await _wait(moto, "before-outage@example.com", 1)
    moto.stop()
    try:
        addresses = [f"outage{i}@example.com" for i in range(20)]
        for address in addresses:
            response = await client.post(
                "/api/v1/auth/register", json={"email": address, "password": TEST_PASSWORD}
            )
            assert response.status_code == reference.status_code == 202
            assert response.content == reference.content
        await asyncio.sleep(0.5)  # the dispatcher meets the outage and schedules retries
    finally:
        moto.start()
        verify_sender(moto.url)
    delivered: list[dict[str, Any]] = []
    for address in addresses:
        found = await _wait(moto, address, 1, timeout=30)
        assert len(found) == 1, (address, len(found))
        delivered.extend(found)
    await asyncio.sleep(1.0)  # nothing more trickles in
    for address in addresses:
        assert len(_to(await moto_messages(moto.url), address)) == 1
    assert len(delivered) == 20
