"""Client authentication of service clients (deps.client_auth) on both endpoints that use it:
401 before the body is looked at, one kind of client never accepted by the other, and failures
limited per address (client_auth_ip), docs/api.md §6."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import pytest

API = "/api/v1"
INTROSPECT = f"{API}/auth/introspect"
PROVIDER_TOKEN = f"{API}/oauth/internal/provider-token"
INTROSPECTION_CLIENT = ("svc", "svc-secret-0123456789abcdef0123456789")
TOKEN_CLIENT = ("product-api", "product-api-secret-0123456789abcdefgh")
ENDPOINTS = {INTROSPECT: INTROSPECTION_CLIENT, PROVIDER_TOKEN: TOKEN_CLIENT}
FAILURES_ADMITTED = 3


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "introspection_clients": [":".join(INTROSPECTION_CLIENT)],
        "provider_token_clients": [":".join(TOKEN_CLIENT) + ":test"],
        "rate_limits_enabled": True,
        "rate_limits": {"client_auth_ip": f"{FAILURES_ADMITTED}/minute"},
        "trusted_proxies": ["203.0.113.7/32"],  # the test client's peer
    }


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def from_address(ip: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    return {**(headers or {}), "X-Forwarded-For": ip}


def assert_invalid_client(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


#: (body, Content-Type): invalid JSON, no body, JSON of the wrong shape.
BAD_BODIES = [
    (b"{not json", "application/json"),
    (b"", "application/json"),
    (b'{"unexpected": true}', "application/json"),
]


@pytest.mark.parametrize("url", list(ENDPOINTS))
async def test_no_credentials_is_401_whatever_the_body(client: httpx.AsyncClient, url: str) -> None:
    for i, (content, content_type) in enumerate(BAD_BODIES):
        headers = from_address(f"203.0.113.{i + 10}", {"Content-Type": content_type})
        assert_invalid_client(await client.post(url, content=content, headers=headers))
        # the same body with the client's credentials is the usual 422
        headers |= basic(*ENDPOINTS[url])
        response = await client.post(url, content=content, headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_error"


async def test_a_malformed_body_gets_the_same_422_as_before(client: httpx.AsyncClient) -> None:
    response = await client.post(
        INTROSPECT,
        content=b'{"token": ',
        headers={"Content-Type": "application/json", **basic(*INTROSPECTION_CLIENT)},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "json_invalid"
    assert response.json()["errors"][0]["loc"][0] == "body"
    response = await client.post(INTROSPECT, json={}, headers=basic(*INTROSPECTION_CLIENT))
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"loc": ["body", "token"], "msg": "Field required", "type": "missing"}
    ]
    response = await client.post(
        PROVIDER_TOKEN,
        json={"user_id": "not-a-uuid", "provider": "test"},
        headers=basic(*TOKEN_CLIENT),
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "user_id"]


async def test_one_kind_of_client_is_never_accepted_by_the_other(
    client: httpx.AsyncClient,
) -> None:
    body = {"user_id": str(uuid.uuid4()), "provider": "test"}
    assert_invalid_client(
        await client.post(PROVIDER_TOKEN, json=body, headers=basic(*INTROSPECTION_CLIENT))
    )
    assert_invalid_client(
        await client.post(
            INTROSPECT,
            json={"token": "x"},
            headers=from_address("203.0.113.2", basic(*TOKEN_CLIENT)),
        )
    )


@pytest.mark.parametrize("url", list(ENDPOINTS))
async def test_repeated_failures_from_one_address_are_refused(
    client: httpx.AsyncClient, url: str
) -> None:
    client_id, secret = ENDPOINTS[url]
    attacker = "198.51.100.7"
    body: dict[str, Any] = (
        {"token": "x"} if url == INTROSPECT else {"user_id": str(uuid.uuid4()), "provider": "x"}
    )
    for i in range(FAILURES_ADMITTED):
        guess = basic(client_id, f"guess-{i}")
        assert_invalid_client(
            await client.post(url, json=body, headers=from_address(attacker, guess))
        )
    refused = await client.post(
        url, json=body, headers=from_address(attacker, basic(client_id, "guess-x"))
    )
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    # While the address is spent even the right secret is refused: guesses learn nothing.
    right = await client.post(
        url, json=body, headers=from_address(attacker, basic(client_id, secret))
    )
    assert right.status_code == 429
    # Without credentials at all, too.
    assert (await client.post(url, json=body, headers=from_address(attacker))).status_code == 429
    # Another address is not affected; successes do not spend client_auth_ip.
    other = "198.51.100.8"
    for _ in range(FAILURES_ADMITTED + 2):
        response = await client.post(
            url, json=body, headers=from_address(other, basic(client_id, secret))
        )
        assert response.status_code not in (401, 429), response.text
