"""The browser sign-in against a real OpenID provider: the happy path and the one-time code."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from authgate.core.time import shifted, utc_now
from authgate.housekeeping import Housekeeper
from authgate.models import AuthSession, OAuthState
from authgate.runtime import Runtime
from tests.support.oauth import (
    REDIRECT_URL,
    Browser,
    OidcServer,
    base_overrides,
    counts,
    new_sub,
    query_of,
)


async def test_providers_are_listed(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/oauth/providers")
    assert response.status_code == 200
    assert response.json() == [
        {"name": "test", "kind": "oidc"},
        {"name": "post", "kind": "oidc"},
        {"name": "github", "kind": "github"},
    ]


async def test_authorize_redirects_with_pkce_state_nonce_and_binding_cookie(
    browser: Browser, runtime: Runtime, idp: OidcServer
) -> None:
    response = await browser.authorize()
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(idp.url + "/auth?")
    query = query_of(location)
    assert query["response_type"] == "code"
    assert query["client_id"] == "authgate"
    assert query["redirect_uri"] == "http://127.0.0.1:8000/api/v1/oauth/test/callback"
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert query["state"].startswith("ags_") and len(query["nonce"]) >= 43
    assert set(query["scope"].split()) == {"openid", "email", "profile"}

    cookie = response.headers["set-cookie"]
    assert cookie.startswith("ag_oauth_")
    lowered = cookie.lower()
    for attribute in ("httponly", "samesite=lax", "path=/api/v1/oauth", "max-age=600"):
        assert attribute in lowered, cookie
    assert "secure" not in lowered  # public_url is http in tests

    async with runtime.sessionmaker() as db:
        states = list((await db.execute(select(OAuthState))).scalars())
    assert len(states) == 1
    state = states[0]
    assert state.state_hash == runtime.opaque.hash(query["state"])
    assert query["state"] not in state.state_hash
    assert query["nonce"].encode() not in state.secrets_ct
    assert state.redirect_url == REDIRECT_URL and state.used_at is None
    assert timedelta(minutes=5) <= state.expires_at - state.created_at <= timedelta(minutes=10)


async def test_full_sign_in_creates_then_reuses_the_user(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer, runtime: Runtime
) -> None:
    sub = new_sub()
    idp.next_user(sub, "Ada@Example.com", email_verified=True)
    final = await browser.sign_in()
    location = final.headers["location"]
    assert location.startswith(REDIRECT_URL + "?code=ago_")
    # The binding cookie now carries the redemption binding, for the code's lifetime.
    redemption = final.headers["set-cookie"].lower()
    assert redemption.startswith("ag_oauth_") and "max-age=60" in redemption
    assert "httponly" in redemption and "path=/api/v1/oauth" in redemption

    code = query_of(location)["code"]
    response = await client.post("/api/v1/oauth/token", json={"code": code})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert "max-age=0" in response.headers["set-cookie"].lower()  # the redemption cookie goes
    pair = response.json()
    assert pair["token_type"] == "Bearer" and pair["refresh_token"].startswith("agr_")
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    assert me.status_code == 200
    user = me.json()
    assert user["email"] == "Ada@example.com"
    assert user["email_verified"] is True

    async with runtime.sessionmaker() as db:
        methods = (await db.execute(select(AuthSession.auth_method))).scalars().all()
    assert methods == ["oauth:test"]

    # The code is single use.
    again = await client.post("/api/v1/oauth/token", json={"code": code})
    assert again.status_code == 400 and again.json()["code"] == "invalid_token"

    # A second sign-in with the same provider account lands in the same user.
    second = await browser.tokens()
    me2 = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {second['access_token']}"}
    )
    assert me2.json()["id"] == user["id"]
    found = await counts(runtime)
    assert (found.users, found.identities, found.provider_tokens) == (1, 1, 1)


async def test_the_code_expires_after_its_ttl(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer
) -> None:
    idp.next_user(new_sub(), "late@example.com")
    code = await browser.code()
    with shifted(timedelta(seconds=61)):
        response = await client.post("/api/v1/oauth/token", json={"code": code})
    assert response.status_code == 400 and response.json()["code"] == "invalid_token"


async def test_a_code_just_inside_its_ttl_works(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer
) -> None:
    idp.next_user(new_sub(), "early@example.com")
    code = await browser.code()
    with shifted(timedelta(seconds=55)):
        response = await client.post("/api/v1/oauth/token", json={"code": code})
    assert response.status_code == 200


async def test_garbage_codes_are_refused(client: httpx.AsyncClient) -> None:
    for code in ("ago_nope", "agr_" + "a" * 43, ""):
        response = await client.post("/api/v1/oauth/token", json={"code": code})
        assert response.status_code == 400 and response.json()["code"] == "invalid_token"


async def test_an_id_token_with_a_matching_at_hash_signs_in(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer
) -> None:
    """at_hash is checked when present (the wrong one is refused in test_callback_failures)."""
    idp.next_user(new_sub(), "at-hash@example.com", tamper={"at_hash": "matching"})
    pair = await browser.tokens()
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    assert me.json()["email"] == "at-hash@example.com"


async def test_client_secret_post_provider_signs_in(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer
) -> None:
    idp.next_user(new_sub(), "post@example.com")
    pair = await browser.tokens("post")
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    assert me.json()["email"] == "post@example.com"


async def test_github_kind_provider_signs_in(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer, runtime: Runtime
) -> None:
    idp.next_user("4242", "octo@example.com", email_verified=True)
    pair = await browser.tokens("github")
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    assert me.json()["email"] == "octo@example.com" and me.json()["email_verified"] is True
    conns = await client.get(
        "/api/v1/oauth/connections", headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    assert [c["provider"] for c in conns.json()] == ["github"]


async def test_the_code_is_redeemable_only_by_the_browser_that_ran_the_flow(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer, runtime: Runtime
) -> None:
    """Issue 11: an ``ago_`` code that leaks (Referer, history, logs) is useless elsewhere, and
    is burnt: presented without its cookie it is spent, so the leak cannot be retried."""
    idp.next_user(new_sub(), "bound@example.com")
    code = await browser.code()
    jar = dict(client.cookies)
    client.cookies.clear()
    elsewhere = await client.post("/api/v1/oauth/token", json={"code": code})
    assert elsewhere.status_code == 400 and elsewhere.json()["code"] == "invalid_token"
    for name, value in jar.items():
        client.cookies.set(name, value)
    late = await client.post("/api/v1/oauth/token", json={"code": code})
    assert late.status_code == 400 and late.json()["code"] == "invalid_token"
    assert (await counts(runtime)).sessions == 0


async def test_another_flows_cookie_does_not_redeem_a_code(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer, runtime: Runtime
) -> None:
    """The attacker's own flow gives them a cookie; it does not fit the victim's code."""
    idp.next_user(new_sub(), "victim-code@example.com")
    victim_code = await browser.code()
    client.cookies.clear()
    idp.next_user(new_sub(), "attacker-code@example.com")
    await browser.code()  # the attacker's browser now holds its own redemption cookie
    stolen = await client.post("/api/v1/oauth/token", json={"code": victim_code})
    assert stolen.status_code == 400 and stolen.json()["code"] == "invalid_token"
    assert (await counts(runtime)).sessions == 0


class TestHttpsCookies:
    @pytest.fixture
    def settings_overrides(self, oidc_server: OidcServer) -> dict[str, Any]:
        return {**base_overrides(oidc_server.url), "public_url": "https://auth.app.test"}

    async def test_binding_cookie_is_host_prefixed_on_https(self, browser: Browser) -> None:
        response = await browser.authorize()
        assert response.status_code == 302, response.text
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("__Host-ag_oauth_"), cookie
        lowered = cookie.lower()
        assert "; secure" in lowered and "path=/;" in lowered and "domain" not in lowered


async def test_expired_states_are_purged_by_the_housekeeper(
    browser: Browser, runtime: Runtime
) -> None:
    assert (await browser.authorize()).status_code == 302
    assert await runtime.housekeeper.run_once() == 0  # still pending
    with shifted(timedelta(seconds=601)):
        assert (await browser.authorize()).status_code == 302
        assert await runtime.housekeeper.run_once() == 1
    async with runtime.sessionmaker() as db:
        assert len((await db.execute(select(OAuthState))).scalars().all()) == 1


async def test_the_housekeeper_loop_purges_periodically(browser: Browser, runtime: Runtime) -> None:
    """The loop ``serve`` (with the dispatcher) and ``authgate worker`` run in the background."""
    assert (await browser.authorize()).status_code == 302
    async with runtime.sessionmaker() as db:
        await db.execute(update(OAuthState).values(expires_at=utc_now() - timedelta(seconds=1)))
        await db.commit()
    housekeeper = Housekeeper(runtime.sessionmaker, interval=0.05)
    await housekeeper.start()
    try:
        for _ in range(100):
            async with runtime.sessionmaker() as db:
                if (await db.execute(select(OAuthState))).first() is None:
                    break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the expired state was not purged")
    finally:
        await housekeeper.stop()
