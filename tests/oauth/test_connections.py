"""Connecting a provider to a signed-in account, listing and removing connections."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from authgate.core.time import shifted
from authgate.models import AuditEvent, OAuthState, ProviderToken, User
from authgate.runtime import Runtime
from tests.support.factories import Factory
from tests.support.flows import Flows
from tests.support.oauth import (
    Browser,
    OidcServer,
    base_overrides,
    counts,
    new_sub,
    query_of,
)

SETTINGS_URL = "https://app.test/settings?tab=connections"


def bearer(pair: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access_token']}"}


async def link(
    browser: Browser,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    provider: str,
    body: dict[str, Any] | None = None,
    *,
    password: str | None = None,
) -> httpx.Response:
    payload = {**(body or {}), **({"password": password} if password is not None else {})}
    response = await client.post(f"/api/v1/oauth/{provider}/link", headers=auth, json=payload)
    assert response.status_code == 200, response.text
    assert response.headers["set-cookie"].startswith("ag_oauth_")
    url = response.json()["authorization_url"]
    return await browser.callback(await browser.at_provider(url))


async def test_link_list_and_unlink(
    browser: Browser, client: httpx.AsyncClient, factory: Factory, idp: OidcServer, runtime: Runtime
) -> None:
    account = await factory.account("local@example.com")
    # The provider's address differs from the local one: linking never looks at addresses.
    idp.next_user(new_sub(), "elsewhere@example.com")
    done = await link(
        browser,
        client,
        account.auth,
        "test",
        {"redirect_url": SETTINGS_URL},
        password=account.password,
    )
    assert done.headers["location"] == SETTINGS_URL + "&linked=test"
    async with runtime.sessionmaker() as db:
        state = (await db.execute(select(OAuthState))).scalar_one()
    assert state.link_user_id is not None and state.used_at is not None

    listed = await client.get("/api/v1/oauth/connections", headers=account.auth)
    assert listed.status_code == 200
    [connection] = listed.json()
    assert connection["provider"] == "test" and connection["email"] == "elsewhere@example.com"

    # The account has a password, so the connection may go; its tokens are revoked (RFC 7009).
    revoked_before = idp.stats()["revocations"]

    removed = await client.delete("/api/v1/oauth/connections/test", headers=account.auth)
    assert removed.status_code == 204
    assert idp.stats()["revocations"] > revoked_before
    assert (await client.get("/api/v1/oauth/connections", headers=account.auth)).json() == []
    async with runtime.sessionmaker() as db:
        assert (await db.execute(select(ProviderToken))).first() is None
        events = (
            (await db.execute(select(AuditEvent).where(AuditEvent.type.like("%oauth%"))))
            .scalars()
            .all()
        )
        revoked = (
            await db.execute(select(AuditEvent).where(AuditEvent.type == "provider_token_revoked"))
        ).scalar_one()
    assert {e.type for e in events} >= {"oauth_linked", "oauth_unlinked"}
    assert revoked.detail == {"provider": "test", "outcome": "revoked"}
    missing = await client.delete("/api/v1/oauth/connections/test", headers=account.auth)
    assert missing.status_code == 404


async def test_linked_identity_signs_in_to_the_linking_account(
    browser: Browser, client: httpx.AsyncClient, factory: Factory, idp: OidcServer
) -> None:
    account = await factory.account("owner2@example.com")
    sub = new_sub()
    idp.next_user(sub, "owner2@example.com")
    await link(browser, client, account.auth, "test", password=account.password)
    client.cookies.clear()
    idp.next_user(sub, "owner2@example.com")
    pair = await browser.tokens()
    me = (await client.get("/api/v1/users/me", headers=bearer(pair))).json()
    local = (await client.get("/api/v1/users/me", headers=account.auth)).json()
    assert me["id"] == local["id"]


async def test_an_identity_of_another_user_cannot_be_linked(
    browser: Browser, client: httpx.AsyncClient, factory: Factory, idp: OidcServer, runtime: Runtime
) -> None:
    sub = new_sub()
    idp.next_user(sub, "taken@example.com")
    await browser.tokens()
    client.cookies.clear()
    account = await factory.account("other@example.com")
    idp.next_user(sub, "taken@example.com")
    done = await link(browser, client, account.auth, "test", password=account.password)
    assert query_of(done.headers["location"]) == {"error": "already_linked"}
    assert (await client.get("/api/v1/oauth/connections", headers=account.auth)).json() == []


async def test_the_last_way_to_sign_in_cannot_be_removed(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer, runtime: Runtime
) -> None:
    idp.next_user(new_sub(), "only@example.com")
    pair = await browser.tokens()
    response = await client.delete("/api/v1/oauth/connections/test", headers=bearer(pair))
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert (await counts(runtime)).identities == 1

    # With a second connection, one of them can go.
    client.cookies.clear()
    idp.next_user("777", "only@example.com")
    done = await link(browser, client, bearer(pair), "github")
    assert query_of(done.headers["location"]) == {"linked": "github"}
    response = await client.delete("/api/v1/oauth/connections/test", headers=bearer(pair))
    assert response.status_code == 204
    response = await client.delete("/api/v1/oauth/connections/github", headers=bearer(pair))
    assert response.status_code == 409


async def test_link_requires_a_bearer_and_an_allowed_redirect(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    assert (await client.post("/api/v1/oauth/test/link")).status_code == 401
    assert (await client.get("/api/v1/oauth/connections")).status_code == 401
    account = await factory.account()
    response = await client.post(
        "/api/v1/oauth/test/link", headers=account.auth, json={"redirect_url": "https://evil.com"}
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid_redirect_url"


async def _revoked_events(runtime: Runtime) -> list[dict[str, Any] | None]:
    async with runtime.sessionmaker() as db:
        rows = await db.execute(
            select(AuditEvent.detail).where(AuditEvent.type == "provider_token_revoked")
        )
        return list(rows.scalars())


async def test_deleting_the_account_revokes_its_provider_tokens(
    browser: Browser, client: httpx.AsyncClient, factory: Factory, idp: OidcServer, runtime: Runtime
) -> None:
    account = await factory.account("leaving@example.com")
    idp.next_user(new_sub(), "leaving-at-idp@example.com")
    await link(browser, client, account.auth, "test", password=account.password)
    revoked_before = idp.stats()["revocations"]

    deleted = await client.request(
        "DELETE", "/api/v1/users/me", json={"password": account.password}, headers=account.auth
    )
    assert deleted.status_code == 204, deleted.text
    # The refresh token and the access token, revoked at the provider (RFC 7009).
    assert idp.stats()["revocations"] >= revoked_before + 2
    async with runtime.sessionmaker() as db:
        assert (await db.execute(select(ProviderToken))).first() is None
    assert await _revoked_events(runtime) == [{"provider": "test", "outcome": "revoked"}]


async def test_an_admin_deleting_a_user_revokes_its_provider_tokens(
    browser: Browser, client: httpx.AsyncClient, factory: Factory, idp: OidcServer, runtime: Runtime
) -> None:
    admin = await factory.account("root@example.com")
    async with runtime.sessionmaker() as db:
        await db.execute(
            update(User).where(User.email_key == "root@example.com").values(is_superuser=True)
        )
        await db.commit()
    account = await factory.account("removed@example.com")
    idp.next_user(new_sub(), "removed-at-idp@example.com")
    await link(browser, client, account.auth, "test", password=account.password)
    me = await client.get("/api/v1/users/me", headers=account.auth)
    revoked_before = idp.stats()["revocations"]

    deleted = await client.delete(f"/api/v1/admin/users/{me.json()['id']}", headers=admin.auth)
    assert deleted.status_code == 204, deleted.text
    assert idp.stats()["revocations"] >= revoked_before + 2
    async with runtime.sessionmaker() as db:
        assert (await db.execute(select(ProviderToken))).first() is None
    assert await _revoked_events(runtime) == [{"provider": "test", "outcome": "revoked"}]


LINK_URL = "/api/v1/oauth/test/link"


async def test_a_bearer_token_alone_does_not_link_a_provider(
    client: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    """Issue 11: a stolen access token must not become a permanent backdoor."""
    account = await factory.account("guarded@example.com")
    for body in ({}, {"password": "not the password at all"}):
        response = await client.post(LINK_URL, headers=account.auth, json=body)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "invalid_password"
        assert "set-cookie" not in response.headers
    async with runtime.sessionmaker() as db:
        assert (await db.execute(select(OAuthState))).first() is None


async def test_linking_emails_the_owner_when_started_and_when_done(
    browser: Browser, client: httpx.AsyncClient, flows: Flows, factory: Factory, idp: OidcServer
) -> None:
    account = await factory.account("told@example.com")
    before = len(flows.sink.to(account.email))
    idp.next_user(new_sub(), "other-address@example.com")
    done = await link(browser, client, account.auth, "test", password=account.password)
    assert query_of(done.headers["location"]) == {"linked": "test"}
    mails = await flows.sink.wait_for(account.email, before + 2)
    subjects = [m.subject for m in mails[before:]]
    assert any("Connecting test" in s for s in subjects), subjects
    assert any("test was connected" in s for s in subjects), subjects

    # An identity the owner linked signs in although its address is not the account's.
    client.cookies.clear()
    sub_pair = await browser.tokens()
    me = (await client.get("/api/v1/users/me", headers=bearer(sub_pair))).json()
    assert me["email"] == account.email


async def test_an_account_without_password_needs_a_fresh_sign_in_to_link(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer, runtime: Runtime
) -> None:
    idp.next_user(new_sub(), "oauth-only@example.com")
    pair = await browser.tokens()
    with shifted(timedelta(minutes=6)):
        # Refreshing keeps the sign-in time: the session is as old as its sign-in.
        refreshed = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        response = await client.post(LINK_URL, headers=bearer(refreshed.json()), json={})
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "reauthentication_required"
    async with runtime.sessionmaker() as db:
        assert (
            await db.execute(select(OAuthState).where(OAuthState.link_user_id.is_not(None)))
        ).first() is None
    fresh = await client.post(LINK_URL, headers=bearer(pair), json={})
    assert fresh.status_code == 200, fresh.text


class TestThrottle:
    @pytest.fixture
    def settings_overrides(self, oidc_server: OidcServer) -> dict[str, Any]:
        return {**base_overrides(oidc_server.url), "rate_limits_enabled": True}

    async def test_wrong_link_passwords_count_in_the_login_throttle(
        self, client: httpx.AsyncClient, flows: Flows
    ) -> None:
        account = await flows.signed_up("throttled@example.com")
        statuses = []
        for _ in range(12):
            response = await client.post(
                LINK_URL, headers=account.auth, json={"password": "wrong-password-guess"}
            )
            statuses.append(response.status_code)
        assert 429 in statuses, statuses
        # The same account's password login is throttled too: one per-account budget.
        assert (await flows.login(account.email, "another-wrong-guess")).status_code == 429
