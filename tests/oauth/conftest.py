"""Fixtures for the OAuth tests: the test OpenID provider (once per session), reset before each
test, settings that register it as three providers, and a ``Browser`` to sign in through it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.oauth import (
    APP_BASE,
    CLIENTS,
    Browser,
    OidcServer,
    base_overrides,
    start_oidc_server,
    stop_oidc_server,
)


@pytest.fixture(scope="session")
def oidc_server() -> Iterator[OidcServer]:
    clients = [
        {
            "client_id": client_id,
            "client_secret": secret,
            "token_endpoint_auth_method": method,
            "redirect_uris": [f"{APP_BASE}/api/v1/oauth/{name}/callback"],
        }
        for name, (client_id, secret, method) in CLIENTS.items()
    ]
    server = start_oidc_server({"clients": clients, "access_token_ttl": 600})
    try:
        yield server
    finally:
        stop_oidc_server(server)


@pytest.fixture
def idp(oidc_server: OidcServer) -> OidcServer:
    oidc_server.reset()
    return oidc_server


@pytest.fixture
def settings_overrides(oidc_server: OidcServer) -> dict[str, Any]:
    return base_overrides(oidc_server.url)


@pytest.fixture
def browser(client: httpx.AsyncClient, idp: OidcServer) -> Browser:
    return Browser(client, idp)
