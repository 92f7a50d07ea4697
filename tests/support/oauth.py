"""A real OpenID provider (oidc-provider on Node) and a browser that signs in through it.

``start_oidc_server`` runs the provider on a free loopback port (its npm dependencies are
installed with ``npm ci`` if ``node_modules`` is missing). Which account the next sign-in uses (or
a denial, or a tampered ID token) is chosen through its ``/test/*`` endpoints (``OidcServer``).
The fixtures are in ``tests/oauth/conftest.py``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from authgate.models import AuthSession, OAuthIdentity, ProviderToken, User
from authgate.runtime import Runtime
from tests.support.servers import free_port, wait_for_port

#: One TLS context for the test browser (the provider is plain http; httpx builds one anyway).
TLS = httpx.create_ssl_context()
OIDC_DIR = Path(__file__).resolve().parent / "oidc"
APP_BASE = "http://127.0.0.1:8000"
REDIRECT_URL = "https://app.test/after-login"
INTERNAL_CLIENT = ("backend", "backend-secret-0123456789abcdef")
#: A provider-token client (AUTHGATE_PROVIDER_TOKEN_CLIENTS) that may read "test" tokens only.
TOKEN_CLIENT = ("product-api", "product-api-secret-0123456789abcdefgh")
CLIENTS = {
    "test": ("authgate", "authgate-client-secret-0123456789", "client_secret_basic"),
    "post": ("authgate-post", "authgate-post-secret-0123456789", "client_secret_post"),
    "github": ("authgate-gh", "authgate-gh-secret-0123456789", "client_secret_post"),
}


@dataclass
class OidcServer:
    url: str
    process: subprocess.Popen[bytes]

    def _post(self, path: str, body: dict[str, Any] | None = None) -> None:
        response = httpx.post(self.url + path, json=body or {}, timeout=5, verify=TLS)
        response.raise_for_status()

    def next_user(
        self,
        sub: str,
        email: str | None,
        *,
        email_verified: bool = True,
        deny: bool = False,
        tamper: dict[str, Any] | None = None,
    ) -> None:
        body: dict[str, Any] = {"sub": sub, "email": email, "email_verified": email_verified}
        if deny:
            body["deny"] = True
        if tamper:
            body["tamper"] = tamper
        self._post("/test/next-user", body)

    def reset(self) -> None:
        self._post("/test/reset")

    def stats(self) -> dict[str, int]:
        response = httpx.get(self.url + "/test/stats", timeout=5, verify=TLS)
        response.raise_for_status()
        result: dict[str, int] = response.json()
        return result


def _ensure_node_modules() -> None:
    if (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to install the test OpenID provider (tests/support/oidc)")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=OIDC_DIR, check=True, timeout=300)


def start_oidc_server(config: dict[str, Any]) -> OidcServer:
    _ensure_node_modules()
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed to run the test OpenID provider")
    port = free_port()
    env = {**os.environ, "PORT": str(port), "OIDC_CONFIG": json.dumps(config)}
    process = subprocess.Popen(
        [node, "server.js"],
        cwd=OIDC_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=20)
    except RuntimeError:
        process.kill()
        raise
    return OidcServer(f"http://127.0.0.1:{port}", process)


def stop_oidc_server(server: OidcServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(5)


def provider_configs(server_url: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "test",
            "kind": "oidc",
            "issuer": server_url,
            "client_id": CLIENTS["test"][0],
            "client_secret": CLIENTS["test"][1],
        },
        {
            "name": "post",
            "kind": "oidc",
            "issuer": server_url,
            "client_id": CLIENTS["post"][0],
            "client_secret": CLIENTS["post"][1],
        },
        {
            # GitHub-shaped plain OAuth 2.0, served by the same test provider.
            "name": "github",
            "kind": "github",
            "client_id": CLIENTS["github"][0],
            "client_secret": CLIENTS["github"][1],
            "scopes": ["email"],
            "authorize_url": f"{server_url}/auth",
            "token_url": f"{server_url}/token",
            "userinfo_url": f"{server_url}/test/github/user",
            "revocation_url": f"{server_url}/token/revocation",
        },
    ]


def base_overrides(server_url: str) -> dict[str, Any]:
    return {
        "oauth_providers": provider_configs(server_url),
        "allowed_redirect_urls": [REDIRECT_URL, "https://app.test/settings?tab=connections"],
        "introspection_clients": [":".join(INTERNAL_CLIENT)],
        "provider_token_clients": [":".join(TOKEN_CLIENT) + ":test"],
    }


def basic_auth(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


class Browser:
    """Drives the browser part of a sign-in: our API through the ASGI client (its cookie jar
    holds the binding cookie), the provider through a real HTTP client with its own cookies."""

    def __init__(self, client: httpx.AsyncClient, idp: OidcServer) -> None:
        self.client = client
        self.idp = idp

    async def authorize(
        self, provider: str = "test", redirect_url: str = REDIRECT_URL
    ) -> httpx.Response:
        return await self.client.get(
            f"/api/v1/oauth/{provider}/authorize", params={"redirect_url": redirect_url}
        )

    async def at_provider(self, location: str) -> str:
        """Follow the provider's redirects until it sends the browser back to us."""
        async with httpx.AsyncClient(timeout=10, verify=TLS) as browser:
            for _ in range(10):
                if location.startswith(APP_BASE + "/"):
                    return location
                response = await browser.get(location)
                assert response.status_code in (302, 303), (
                    response.status_code,
                    response.text[:300],
                )
                location = urljoin(str(response.url), response.headers["location"])
        raise AssertionError("the provider did not redirect back")

    async def callback(self, url: str) -> httpx.Response:
        assert url.startswith(APP_BASE + "/")
        return await self.client.get(url[len(APP_BASE) :])

    async def provider_callback_url(
        self, provider: str = "test", redirect_url: str = REDIRECT_URL
    ) -> str:
        response = await self.authorize(provider, redirect_url)
        assert response.status_code == 302, response.text
        return await self.at_provider(response.headers["location"])

    async def sign_in(
        self, provider: str = "test", redirect_url: str = REDIRECT_URL
    ) -> httpx.Response:
        """Authorize, provider login, callback: our final redirect (to the front end)."""
        response = await self.callback(await self.provider_callback_url(provider, redirect_url))
        assert response.status_code == 302, response.text
        return response

    async def code(self, provider: str = "test") -> str:
        response = await self.sign_in(provider)
        query = query_of(response.headers["location"])
        assert "code" in query, response.headers["location"]
        return query["code"]

    async def tokens(self, provider: str = "test") -> dict[str, Any]:
        code = await self.code(provider)
        response = await self.client.post("/api/v1/oauth/token", json={"code": code})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@dataclass
class Counts:
    users: int
    identities: int
    sessions: int
    provider_tokens: int


async def counts(runtime: Runtime) -> Counts:
    async with runtime.sessionmaker() as db:

        async def n(model: Any) -> int:
            return int((await db.execute(select(func.count()).select_from(model))).scalar_one())

        return Counts(
            await n(User), await n(OAuthIdentity), await n(AuthSession), await n(ProviderToken)
        )


def new_sub() -> str:
    return f"sub-{uuid.uuid4().hex[:12]}"
