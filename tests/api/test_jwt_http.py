"""Every forged or malformed access token is a 401 problem response at the API, never a 500."""

from __future__ import annotations

import warnings

import httpx
import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from authgate.runtime import Runtime
from tests.jwt_forgery import EXPIRED_CASES, forged_tokens, noncanonical_spelling
from tests.support.factories import Factory


async def test_every_forgery_is_a_401_problem(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await factory.account()
    cases = forged_tokens(account.access_token, runtime.ring, runtime.settings)
    assert len(cases) > 50
    for name, token in cases:
        if token.strip() == account.access_token:
            continue  # HTTP field values are trimmed (RFC 9110 §5.5): the same token
        # Non-ASCII forgeries travel as raw UTF-8 bytes, as a hostile client would send them.
        value = f"Bearer {token}".encode()
        response = await client.get("/api/v1/users/me", headers={b"Authorization": value})
        assert response.status_code == 401, (name, response.status_code, response.text)
        assert response.headers["content-type"] == "application/problem+json", name
        assert response.headers["www-authenticate"].startswith("Bearer"), name
        expected = {"token_expired"} if name in EXPIRED_CASES else {"invalid_token"}
        if not token.strip():
            expected = {"not_authenticated"}
        assert response.json()["code"] in expected, (name, response.json())
    # The genuine token still works: the rejections were about the forgeries.
    ok = await client.get("/api/v1/users/me", headers=account.auth)
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        "Bearer " + "a" * (8 * 1024 + 1),
        "Bearer " + "A" * 9000 + "." + "B" * 10 + "." + "C" * 10,
    ],
)
async def test_oversized_authorization_header_is_401(
    client: httpx.AsyncClient, header: str
) -> None:
    response = await client.get("/api/v1/users/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer a.b", "Bearer ..."],
)
async def test_missing_or_malformed_authorization_is_401(
    client: httpx.AsyncClient, header: str
) -> None:
    headers = {"Authorization": header} if header else {}
    response = await client.get("/api/v1/users/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["code"] in {"not_authenticated", "invalid_token"}


async def test_token_verifies_with_joserfc_through_the_jwks_url(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """An independent JOSE implementation, given only the JWKS URL, accepts our token."""
    account = await factory.account()
    config = (await client.get("/.well-known/openid-configuration")).json()
    assert config["issuer"] == runtime.settings.public_url
    jwks_path = config["jwks_uri"].removeprefix(runtime.settings.public_url)
    jwks = (await client.get(jwks_path)).json()
    for key in jwks["keys"]:
        assert "d" not in key and "p" not in key and "k" not in key  # public parts only
    keyset = KeySet.import_key_set(jwks)
    with warnings.catch_warnings():
        # joserfc flags the JOSE name "EdDSA" as deprecated (RFC 9864); the contract (docs/api.md §5) fixes that name.
        warnings.filterwarnings("ignore", message=".*EdDSA.*")
        token = jose_jwt.decode(account.access_token, keyset, algorithms=["EdDSA"])
    assert token.header["typ"] == "at+jwt"
    assert token.header["kid"] in {k["kid"] for k in jwks["keys"]}
    me = (await client.get("/api/v1/users/me", headers=account.auth)).json()
    claims = token.claims
    assert claims["sub"] == me["id"]
    assert claims["iss"] == runtime.settings.public_url
    assert claims["aud"] == runtime.settings.jwt_audience
    for claim in ("sid", "jti", "iat", "nbf", "exp", "scope"):
        assert claim in claims
    registry = jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": runtime.settings.public_url},
        aud={"essential": True, "value": runtime.settings.jwt_audience},
    )
    registry.validate(claims)


async def test_a_token_has_one_spelling(factory: Factory, client: httpx.AsyncClient) -> None:
    """Padding or set unused bits decode to the same signature bytes: still refused (issue 11)."""
    account = await factory.account()
    token = account.access_token
    head, payload, signature = token.split(".")
    spelled = noncanonical_spelling(signature)
    assert spelled is not None
    for variant in (f"{token}=", f"{token}==", f"{head}.{payload}.{spelled}"):
        response = await client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {variant}"}
        )
        assert response.status_code == 401, variant
        assert response.json()["code"] == "invalid_token"
    ok = await client.get("/api/v1/users/me", headers=account.auth)
    assert ok.status_code == 200
