"""Every way a callback can be wrong ends in an error redirect (or a 400 when the state is
unknown), with no user created and no tokens issued."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from authgate.models import AuditEvent, OAuthState
from authgate.oauth.service import state_associated_data
from authgate.runtime import Runtime
from tests.support.oauth import (
    APP_BASE,
    CLIENTS,
    REDIRECT_URL,
    Browser,
    Counts,
    OidcServer,
    base_overrides,
    counts,
    new_sub,
    query_of,
    start_oidc_server,
    stop_oidc_server,
)

NOTHING = Counts(users=0, identities=0, sessions=0, provider_tokens=0)


def error_of(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URL + "?error="), location
    query = query_of(location)
    assert "code" not in query
    return query["error"]


OPEN_REDIRECTS = [
    "https://app.test.evil.com",
    "https://app.test.evil.com/after-login",
    "https://app.test@evil.com",
    "https://app.test@evil.com/after-login",
    "//evil.com",
    "//app.test/after-login",
    "javascript:alert(1)",
    "https://app.test/after-login/../x",
    "https://app.test/after-login/",
    "https://app.test/after-login//",
    "https://app.test/after-login?next=https://evil.com",
    "https://app.test/after-login#x",
    "https://app.test/after-login%2F",
    "HTTPS://APP.TEST/after-login",
    "https://app.test:443/after-login",
    "https://app.test/after-login ",
    "https://app.test",
    "",
]


async def test_open_redirects_are_refused_before_any_redirect(
    browser: Browser, runtime: Runtime
) -> None:
    for redirect_url in OPEN_REDIRECTS:
        response = await browser.authorize(redirect_url=redirect_url)
        assert response.status_code == 400, (redirect_url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "invalid_redirect_url"
        assert "location" not in response.headers and "set-cookie" not in response.headers
    async with runtime.sessionmaker() as db:
        assert (await db.execute(select(OAuthState))).first() is None
    # The exact allowlisted value is accepted.
    assert (await browser.authorize(redirect_url=REDIRECT_URL)).status_code == 302


async def test_unknown_provider_is_404(browser: Browser) -> None:
    response = await browser.authorize("nope")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_provider"


async def test_unknown_state_is_a_400_problem(client: httpx.AsyncClient, runtime: Runtime) -> None:
    for state in (None, "", "ags_unknown", "ags_" + "A" * 43, "x" * 300):
        params = {"code": "whatever"}
        if state is not None:
            params["state"] = state
        response = await client.get("/api/v1/oauth/test/callback", params=params)
        assert response.status_code == 400, state
        assert response.json()["code"] == "invalid_state"
        assert "location" not in response.headers
    assert await counts(runtime) == NOTHING


async def test_replayed_state_is_refused(
    browser: Browser, idp: OidcServer, runtime: Runtime
) -> None:
    idp.next_user(new_sub(), "replay@example.com")
    url = await browser.provider_callback_url()
    first = await browser.callback(url)
    assert "code" in query_of(first.headers["location"])
    # The binding cookie was cleared by the first callback; put it back to test the state alone.
    before = await counts(runtime)
    response = await browser.callback(url)
    assert error_of(response) == "invalid_state"
    assert await counts(runtime) == before


async def test_replay_with_the_binding_cookie_is_still_refused(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer, runtime: Runtime
) -> None:
    idp.next_user(new_sub(), "replay2@example.com")
    start = await browser.authorize()
    saved = dict(client.cookies.items())
    url = await browser.at_provider(start.headers["location"])
    await browser.callback(url)
    for name, value in saved.items():
        client.cookies.set(name, value, domain="127.0.0.1", path="/api/v1/oauth")
    before = await counts(runtime)
    response = await browser.callback(url)
    assert error_of(response) == "invalid_state"
    assert await counts(runtime) == before


async def test_missing_binding_cookie_is_refused(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer, runtime: Runtime
) -> None:
    idp.next_user(new_sub(), "csrf@example.com")
    url = await browser.provider_callback_url()
    saved = dict(client.cookies.items())
    client.cookies.clear()
    response = await browser.callback(url)
    assert error_of(response) == "invalid_state"
    assert await counts(runtime) == NOTHING
    # A wrong cookie value is refused too.
    for name in saved:
        client.cookies.set(name, "not-the-binding", domain="127.0.0.1", path="/api/v1/oauth")
    response = await browser.callback(url)
    assert error_of(response) == "invalid_state"
    assert await counts(runtime) == NOTHING


async def test_state_of_another_provider_is_refused(
    browser: Browser, idp: OidcServer, runtime: Runtime
) -> None:
    idp.next_user(new_sub(), "mixup@example.com")
    url = await browser.provider_callback_url("test")
    response = await browser.callback(url.replace("/oauth/test/", "/oauth/post/"))
    assert error_of(response) == "invalid_state"
    assert await counts(runtime) == NOTHING


async def test_expired_state_is_refused(
    browser: Browser, idp: OidcServer, runtime: Runtime
) -> None:
    from datetime import timedelta

    from authgate.core.time import shifted

    idp.next_user(new_sub(), "slow@example.com")
    url = await browser.provider_callback_url()
    with shifted(timedelta(minutes=11)):
        response = await browser.callback(url)
    assert error_of(response) == "invalid_state"
    assert await counts(runtime) == NOTHING


async def test_access_denied_at_the_provider(
    browser: Browser, idp: OidcServer, runtime: Runtime
) -> None:
    idp.next_user(new_sub(), "no@example.com", deny=True)
    response = await browser.sign_in()
    assert error_of(response) == "access_denied"
    assert await counts(runtime) == NOTHING


async def test_tampered_stored_nonce_fails_id_token_validation(
    browser: Browser, idp: OidcServer, runtime: Runtime
) -> None:
    idp.next_user(new_sub(), "nonce@example.com")
    start = await browser.authorize()
    async with runtime.sessionmaker() as db:
        state = (await db.execute(select(OAuthState))).scalar_one()
        secrets = json.loads(
            runtime.encryption.decrypt(state.secrets_ct, state_associated_data(state.id))
        )
        secrets["nonce"] = "someone-elses-nonce"
        state.secrets_ct = runtime.encryption.encrypt(
            json.dumps(secrets).encode(), state_associated_data(state.id)
        )
        await db.commit()
    url = await browser.at_provider(start.headers["location"])
    response = await browser.callback(url)
    assert error_of(response) == "invalid_id_token"
    assert await counts(runtime) == NOTHING


async def failure_reason(runtime: Runtime) -> str:
    async with runtime.sessionmaker() as db:
        event = (
            await db.execute(select(AuditEvent).where(AuditEvent.type == "login_failed"))
        ).scalar_one()
    assert event.detail is not None
    return str(event.detail["reason"])


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        pytest.param({"iss": "https://evil.example"}, "issuer", id="other-issuer"),
        pytest.param({"aud": "someone-else"}, "audience", id="other-audience"),
        pytest.param({"aud": ["someone-else", "authgate"]}, "azp", id="multi-aud-without-azp"),
        pytest.param({"nonce": "forged"}, "nonce", id="wrong-nonce"),
        # The half hash of some other access token: the ID token was not issued with this one.
        pytest.param({"at_hash": "ungWv48Bz-pBQUDeXa4iIw"}, "at_hash", id="wrong-at-hash"),
        pytest.param({"exp_offset": -3600}, "expired", id="expired"),
        pytest.param({"bad_signature": True}, "signature", id="bad-signature"),
    ],
)
async def test_invalid_id_tokens_are_refused(
    browser: Browser, idp: OidcServer, runtime: Runtime, tamper: dict[str, object], reason: str
) -> None:
    idp.next_user(new_sub(), "idtoken@example.com", tamper=tamper)
    response = await browser.sign_in()
    assert error_of(response) == "invalid_id_token"
    assert await counts(runtime) == NOTHING
    assert await failure_reason(runtime) == f"ID token: {reason}"


async def test_id_token_for_another_client_of_the_same_issuer_is_refused(
    browser: Browser, idp: OidcServer, runtime: Runtime
) -> None:
    """The token endpoint of the 'post' client hands out ID tokens for 'authgate-post'; a 'test'
    flow fed such a token (audience substitution) is refused."""
    idp.next_user(new_sub(), "aud@example.com", tamper={"aud": "authgate-post"})
    response = await browser.sign_in("test")
    assert error_of(response) == "invalid_id_token"
    assert await counts(runtime) == NOTHING


async def test_provider_code_cannot_be_swapped_into_another_flow(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer, runtime: Runtime
) -> None:
    """A code obtained in one flow presented with another flow's state fails PKCE at the
    provider (the code_verifier belongs to the other flow)."""
    idp.next_user(new_sub(), "victim@example.com")
    attacker_url = await browser.provider_callback_url()
    attacker_code = query_of(attacker_url)["code"]
    client.cookies.clear()
    idp.next_user(new_sub(), "victim@example.com")
    victim_url = await browser.provider_callback_url()
    victim_state = query_of(victim_url)["state"]
    swapped = f"/api/v1/oauth/test/callback?code={attacker_code}&state={victim_state}&iss={query_of(victim_url)['iss']}"
    response = await client.get(swapped)
    assert error_of(response) == "provider_error"
    assert await counts(runtime) == NOTHING


@pytest.fixture(scope="session")
def other_server() -> Iterator[OidcServer]:
    """A second, independent provider (its own issuer and keys) that knows our client."""
    client_id, secret, method = CLIENTS["test"]
    server = start_oidc_server(
        {
            "clients": [
                {
                    "client_id": client_id,
                    "client_secret": secret,
                    "token_endpoint_auth_method": method,
                    "redirect_uris": [f"{APP_BASE}/api/v1/oauth/mixup/callback"],
                }
            ]
        }
    )
    try:
        yield server
    finally:
        stop_oidc_server(server)


class TestAnotherIssuer:
    """Provider 'mixup' is configured with the first provider's issuer, but its authorization
    and token endpoints belong to another server: the responses come from the wrong issuer."""

    @pytest.fixture
    def settings_overrides(
        self, oidc_server: OidcServer, other_server: OidcServer
    ) -> dict[str, Any]:
        overrides = base_overrides(oidc_server.url)
        client_id, secret, _ = CLIENTS["test"]
        overrides["oauth_providers"] = [
            *overrides["oauth_providers"],
            {
                "name": "mixup",
                "kind": "oidc",
                "issuer": oidc_server.url,
                "client_id": client_id,
                "client_secret": secret,
                "authorize_url": f"{other_server.url}/auth",
                "token_url": f"{other_server.url}/token",
            },
        ]
        return overrides

    async def test_responses_of_another_issuer_are_refused(
        self, browser: Browser, other_server: OidcServer, runtime: Runtime
    ) -> None:
        other_server.next_user(new_sub(), "mixup@example.com")
        url = await browser.provider_callback_url("mixup")
        assert query_of(url)["iss"] == other_server.url
        response = await browser.callback(url)
        assert error_of(response) == "invalid_request"
        assert await failure_reason(runtime) == "iss parameter mismatch"
        assert await counts(runtime) == NOTHING

        # Dropping the RFC 9207 parameter does not help: the configured issuer advertises it, so
        # its absence is refused too (an ID token of the wrong issuer: see the tamper tests).
        browser.client.cookies.clear()
        other_server.next_user(new_sub(), "mixup@example.com")
        url = await browser.provider_callback_url("mixup")
        stripped = url.split("&iss=")[0]
        response = await browser.callback(stripped)
        assert error_of(response) == "invalid_request"
        assert await counts(runtime) == NOTHING
