"""Which account a provider sign-in lands in: identities by (provider, subject), the
pre-account-takeover defence, and linking by email (off by default)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from authgate.models import OAuthIdentity, User
from authgate.runtime import Runtime
from tests.conftest import TEST_PASSWORD, Flows
from tests.oauth.conftest import (
    REDIRECT_URL,
    Browser,
    OidcServer,
    base_overrides,
    counts,
    new_sub,
    query_of,
)


def bearer(pair: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access_token']}"}


async def test_identity_is_keyed_by_subject_not_email(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer, runtime: Runtime
) -> None:
    sub = new_sub()
    idp.next_user(sub, "first@example.com")
    first = await client.get("/api/v1/users/me", headers=bearer(await browser.tokens()))
    # Same subject, new address at the provider: still the same user.
    idp.next_user(sub, "renamed@example.com")
    second = await client.get("/api/v1/users/me", headers=bearer(await browser.tokens()))
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["email"] == "first@example.com"
    # Another subject claiming the first address does not get into that account.
    idp.next_user(new_sub(), "first@example.com")
    response = await browser.sign_in()
    assert query_of(response.headers["location"]) == {"error": "account_exists"}


async def test_unverified_provider_address_creates_an_unverified_user(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer
) -> None:
    idp.next_user(new_sub(), "maybe@example.com", email_verified=False)
    me = await client.get("/api/v1/users/me", headers=bearer(await browser.tokens()))
    assert me.json()["email_verified"] is False


async def test_pre_hijacked_unverified_account_is_replaced(
    browser: Browser, client: httpx.AsyncClient, flows: Flows, idp: OidcServer, runtime: Runtime
) -> None:
    """An attacker registers the victim's address (never verified); the victim then signs in
    with a provider that verifies it. The attacker's account, password and links are gone."""
    victim = "victim@example.com"
    assert (await flows.register(victim, password=TEST_PASSWORD)).status_code == 202
    attacker_link = await flows.verification_token(victim)
    async with runtime.sessionmaker() as db:
        squatter = (await db.execute(select(User))).scalar_one()
    assert squatter.password_hash is not None and not squatter.email_verified

    idp.next_user(new_sub(), victim, email_verified=True)
    pair = await browser.tokens()
    me = (await client.get("/api/v1/users/me", headers=bearer(pair))).json()
    assert me["email"] == victim and me["email_verified"] is True
    assert me["id"] != str(squatter.id)

    async with runtime.sessionmaker() as db:
        users = list((await db.execute(select(User))).scalars())
    assert len(users) == 1 and users[0].password_hash is None
    # The attacker's password and verification link no longer work.
    login = await flows.login(victim, TEST_PASSWORD)
    assert login.status_code == 401
    verify = await client.post("/api/v1/auth/verify-email", json={"token": attacker_link})
    assert verify.status_code == 400


async def test_unverified_provider_address_does_not_touch_an_unverified_account(
    browser: Browser, flows: Flows, idp: OidcServer, runtime: Runtime
) -> None:
    assert (await flows.register("squat@example.com")).status_code == 202
    idp.next_user(new_sub(), "squat@example.com", email_verified=False)
    response = await browser.sign_in()
    assert query_of(response.headers["location"]) == {"error": "account_exists"}
    found = await counts(runtime)
    assert (found.users, found.identities, found.provider_tokens) == (1, 0, 0)


async def test_verified_local_account_is_not_linked_by_default(
    browser: Browser, flows: Flows, idp: OidcServer, runtime: Runtime
) -> None:
    account = await flows.signed_up("owner@example.com")
    idp.next_user(new_sub(), "owner@example.com", email_verified=True)
    response = await browser.sign_in()
    assert response.headers["location"] == REDIRECT_URL + "?error=account_exists"
    found = await counts(runtime)
    assert (found.users, found.identities, found.provider_tokens) == (1, 0, 0)
    # The local account is untouched.
    assert (await flows.login(account.email)).status_code == 200


class TestLinkByEmail:
    @pytest.fixture
    def settings_overrides(self, oidc_server: OidcServer) -> dict[str, Any]:
        return {**base_overrides(oidc_server.url), "oauth_link_by_email": True}

    async def test_verified_address_links_to_the_verified_account(
        self, browser: Browser, client: httpx.AsyncClient, flows: Flows, idp: OidcServer
    ) -> None:
        account = await flows.signed_up("linked@example.com")
        local = (await client.get("/api/v1/users/me", headers=account.auth)).json()
        idp.next_user(new_sub(), "linked@example.com", email_verified=True)
        me = (await client.get("/api/v1/users/me", headers=bearer(await browser.tokens()))).json()
        assert me["id"] == local["id"]
        assert (await flows.login(account.email)).status_code == 200

    async def test_unverified_provider_address_is_not_linked(
        self, browser: Browser, flows: Flows, idp: OidcServer, runtime: Runtime
    ) -> None:
        await flows.signed_up("careful@example.com")
        idp.next_user(new_sub(), "careful@example.com", email_verified=False)
        response = await browser.sign_in()
        assert query_of(response.headers["location"]) == {"error": "account_exists"}
        async with runtime.sessionmaker() as db:
            assert (await db.execute(select(OAuthIdentity))).first() is None
