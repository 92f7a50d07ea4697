"""Behind a trusted proxy that writes ``ip:port`` hops, each client keeps its own address."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.factories import Factory


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"trusted_proxies": ["203.0.113.0/24"]}  # the test client's peer is 203.0.113.7


@pytest.mark.parametrize(
    ("hop", "expected"),
    [("198.51.100.9:5678", "198.51.100.9"), ("[2001:db8::1]:443", "2001:db8::1")],
)
async def test_session_records_the_client_behind_the_proxy(
    factory: Factory, client: httpx.AsyncClient, hop: str, expected: str
) -> None:
    account = await factory.account()
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": account.email, "password": account.password},
        headers={"X-Forwarded-For": f"192.0.2.1, {hop}"},
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    sessions = await client.get("/api/v1/sessions", headers={"Authorization": f"Bearer {token}"})
    current = [s for s in sessions.json() if s["current"]]
    assert current[0]["ip_address"] == expected
