"""What callers' standard libraries assume (docs/api.md §6): RFC 6749 §5.2 errors from the token
endpoint, RFC 7662 §2.1 form introspection (through Authlib's OAuth 2 client), ``Allow`` on
every 405, and an ``/openapi.json`` that documents the answers of the layers below the routes."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client

from authgate.runtime import Runtime
from tests.support.factories import Factory

API = "/api/v1"
TOKEN = f"{API}/auth/token"
INTROSPECT = f"{API}/auth/introspect"
CLIENT_ID = "resource-server"
CLIENT_SECRET = "resource-server-secret-0123456789abcdef"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"introspection_clients": [f"{CLIENT_ID}:{CLIENT_SECRET}"]}


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({}, "invalid_request"),
        ({"username": "a@example.com", "password": "x"}, "invalid_request"),
        ({"grant_type": ""}, "invalid_request"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", "code": "x"}, "unsupported_grant_type"),
        ({"grant_type": "password"}, "invalid_request"),
        ({"grant_type": "password", "username": "a@example.com"}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
    ],
)
async def test_token_endpoint_errors_are_rfc6749_never_422(
    client: httpx.AsyncClient, form: dict[str, str], error: str
) -> None:
    response = await client.post(TOKEN, data=form, headers=FORM)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


async def test_token_endpoint_without_a_body_is_invalid_request(
    client: httpx.AsyncClient,
) -> None:
    for headers in ({}, {"Content-Type": "application/json"}):
        response = await client.post(TOKEN, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"


async def test_authlib_introspects_with_the_rfc7662_form(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    """What a resource server's library sends: a form body, HTTP Basic client auth."""
    account = await factory.account()
    uid = (await client.get(f"{API}/users/me", headers=account.auth)).json()["id"]
    assert isinstance(client._transport, httpx.ASGITransport)
    async with AsyncOAuth2Client(
        CLIENT_ID, CLIENT_SECRET, transport=client._transport, base_url=str(client.base_url)
    ) as oauth:
        response = await oauth.introspect_token(
            f"{client.base_url}{INTROSPECT}",
            token=account.access_token,
            token_type_hint="access_token",
        )
        assert response.status_code == 200, response.text
        assert response.request.headers["content-type"] == FORM["Content-Type"]
        body = response.json()
        assert body["active"] is True
        assert body["sub"] == uid

        inactive = await oauth.introspect_token(
            f"{client.base_url}{INTROSPECT}", token="not-a-token"
        )
        assert inactive.json() == {"active": False}


async def test_form_introspection_authenticates_the_client_first(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    form = {"token": account.access_token}
    for body in (form, {}, {"unexpected": "x"}):
        response = await client.post(INTROSPECT, data=body, headers=FORM)
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "invalid_client"
        assert response.headers["www-authenticate"].startswith("Basic")
    auth = {**FORM, **basic(CLIENT_ID, CLIENT_SECRET)}
    missing = await client.post(INTROSPECT, data={"token_type_hint": "x"}, headers=auth)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["loc"] == ["body", "token"]
    repeated = await client.post(INTROSPECT, content=b"token=a&token=b", headers=auth)
    assert repeated.status_code == 422
    # Unknown parameters are ignored (RFC 6749 §3.2).
    extra = await client.post(INTROSPECT, data={**form, "client_id": "x"}, headers=auth)
    assert extra.status_code == 200 and extra.json()["active"] is True


async def test_other_body_types_are_still_415_on_introspection(
    client: httpx.AsyncClient,
) -> None:
    for ctype in ("text/plain", "multipart/form-data; boundary=x"):
        response = await client.post(
            INTROSPECT,
            content=b"token=x",
            headers={"Content-Type": ctype, **basic(CLIENT_ID, CLIENT_SECRET)},
        )
        assert response.status_code == 415, (ctype, response.text)
    # The form is accepted on introspection only.
    login = await client.post(f"{API}/auth/login", data={"email": "a"}, headers=FORM)
    assert login.status_code == 415


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", f"{API}/users/me", {"GET", "HEAD", "PATCH", "DELETE"}),
        ("POST", f"{API}/users/me", {"GET", "HEAD", "PATCH", "DELETE"}),
        (
            "POST",
            f"{API}/admin/users/00000000-0000-0000-0000-000000000000",
            {"GET", "HEAD", "PATCH", "DELETE"},
        ),
        ("GET", f"{API}/auth/login", {"POST"}),
        ("DELETE", "/health/live", {"GET", "HEAD"}),
    ],
)
async def test_405_allow_lists_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


async def test_openapi_documents_the_answers_of_every_layer(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    spec = (await client.get("/openapi.json")).json()
    problem = "application/problem+json"
    for path, item in spec["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            if path.startswith("/api/") and method in {"post", "patch", "delete"}:
                for status in ("400", "413", "422"):
                    assert problem in responses[status]["content"], (method, path, status)
            for status, response in responses.items():
                headers = response.get("headers", {})
                if status == "401":
                    assert headers["WWW-Authenticate"]["required"] is True
                if status in {"429", "503"}:
                    assert headers["Retry-After"]["required"] is True
                if status == "302":
                    assert "Location" in headers
                if status == "422":
                    assert set(response["content"]) == {problem}
    login = spec["paths"][f"{API}/auth/login"]["post"]["responses"]
    assert {"400", "413", "415", "422", "429", "503"} <= set(login)
    token = spec["paths"][TOKEN]["post"]
    assert "422" not in token["responses"] or problem in token["responses"]["422"]["content"]
    oauth2_error = token["responses"]["400"]["content"]["application/json"]["schema"]
    assert "unsupported_grant_type" in oauth2_error["properties"]["error"]["enum"]
    introspect = spec["paths"][INTROSPECT]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-www-form-urlencoded"} <= set(introspect)
    assert "503" in spec["paths"]["/health/ready"]["get"]["responses"]
