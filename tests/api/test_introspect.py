"""RFC 7662 token introspection for trusted services (HTTP Basic of an introspection client)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from authgate.core.time import shifted
from tests.support.factories import Factory

API = "/api/v1"
CLIENT_ID = "svc"
CLIENT_SECRET = "s3cret-value-123"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"introspection_clients": [f"{CLIENT_ID}:{CLIENT_SECRET}"]}


def basic(client_id: str, secret: str) -> dict[str, str]:
    value = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {value}"}


SERVICE = basic(CLIENT_ID, CLIENT_SECRET)


def claims_of(access_token: str) -> dict[str, Any]:
    payload = access_token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def introspect(
    client: httpx.AsyncClient, token: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(
        f"{API}/auth/introspect",
        json={"token": token},
        headers=SERVICE if headers is None else headers,
    )


async def inactive(client: httpx.AsyncClient, token: str) -> None:
    response = await introspect(client, token)
    assert response.status_code == 200, response.text
    assert response.json() == {"active": False}


async def test_introspection_needs_client_credentials(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    for headers in (
        {},
        basic(CLIENT_ID, "wrong-secret-value"),
        basic("other", CLIENT_SECRET),
        basic(CLIENT_ID, ""),
        {"Authorization": "Basic not-base64!"},
        account.auth,  # a user's bearer token is not a client credential
    ):
        response = await introspect(client, account.access_token, headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "invalid_client"
        assert "www-authenticate" in response.headers
        assert "active" not in response.json()


async def test_a_valid_access_token_is_active(factory: Factory, client: httpx.AsyncClient) -> None:
    account = await factory.account()
    uid = (await client.get(f"{API}/users/me", headers=account.auth)).json()["id"]
    claims = claims_of(account.access_token)

    response = await introspect(client, account.access_token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["active"] is True
    assert body["sub"] == uid
    assert body["sid"] == claims["sid"]
    uuid.UUID(body["sid"])
    assert body["exp"] == claims["exp"]
    assert body["iat"] == claims["iat"]
    assert body["exp"] - body["iat"] == 900
    assert body["token_type"] == "Bearer"
    assert body["amr"] == claims["amr"] == ["pwd"]


async def test_anything_but_a_currently_valid_access_token_is_inactive(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    other = await factory.account()

    for junk in ("garbage", "", "a.b.c", account.refresh_token, account.access_token + "x"):
        await inactive(client, junk)

    # Expired (past its lifetime and the 30 s leeway).
    with shifted(timedelta(seconds=900 + 31)):
        await inactive(client, account.access_token)
    assert (await introspect(client, account.access_token)).json()["active"] is True

    # Revoked: its session ended.
    await client.post(
        f"{API}/auth/logout",
        json={"refresh_token": account.refresh_token},
        headers=account.auth,
    )
    await inactive(client, account.access_token)

    # Revoked by logout-all.
    assert (await introspect(client, other.access_token)).json()["active"] is True
    await client.post(f"{API}/auth/logout-all", headers=other.auth)
    await inactive(client, other.access_token)
