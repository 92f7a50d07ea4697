"""Which account a provider sign-in lands in: identities by (provider, subject), the
pre-account-takeover defences (unverified provider addresses, unproven identities), and linking by
email (off by default)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from authgate.models import OAuthIdentity, User
from authgate.oauth.repository import OAuthRepository
from authgate.runtime import Runtime
from tests.support.api import mail_with_subject
from tests.support.factories import Factory
from tests.support.flows import TEST_PASSWORD, Flows
from tests.support.oauth import (
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


@pytest.mark.parametrize("provider", ["test", "github"])
async def test_unverified_provider_address_creates_nothing(
    browser: Browser, idp: OidcServer, runtime: Runtime, provider: str
) -> None:
    """OIDC ``email_verified: false`` or a GitHub address with ``verified: false``: no user, no
    identity, no code, no session."""
    idp.next_user(
        "4243" if provider == "github" else new_sub(), "maybe@example.com", email_verified=False
    )
    response = await browser.sign_in(provider)
    assert response.headers["location"] == REDIRECT_URL + "?error=email_not_verified"
    found = await counts(runtime)
    assert (found.users, found.identities, found.sessions, found.provider_tokens) == (0, 0, 0, 0)


async def test_pre_account_takeover_through_an_unverified_provider_address_fails(
    browser: Browser, client: httpx.AsyncClient, factory: Factory, idp: OidcServer, runtime: Runtime
) -> None:
    """Issue 11: the attacker's GitHub account claims the victim's address without verifying it.
    Before the fix this created an account (and a session) that the victim later registered and
    verified, and the attacker's GitHub then signed in to the victim's verified account."""
    victim = "prey@example.com"
    attacker_sub = "31337"
    idp.next_user(attacker_sub, victim, email_verified=False)
    first = await browser.sign_in("github")
    assert query_of(first.headers["location"]) == {"error": "email_not_verified"}
    assert (await counts(runtime)).users == 0

    client.cookies.clear()
    account = await factory.account(victim)
    idp.next_user(attacker_sub, victim, email_verified=False)
    again = await browser.sign_in("github")
    assert query_of(again.headers["location"]) == {"error": "email_not_verified"}
    assert (await client.get("/api/v1/oauth/connections", headers=account.auth)).json() == []
    found = await counts(runtime)
    assert (found.users, found.identities, found.provider_tokens) == (1, 0, 0)


async def _identity_of(runtime: Runtime, email: str) -> OAuthIdentity:
    async with runtime.sessionmaker() as db:
        user_id = (await db.execute(select(User.id).where(User.email == email))).scalar_one()
        return (
            await db.execute(select(OAuthIdentity).where(OAuthIdentity.user_id == user_id))
        ).scalar_one()


async def test_a_known_identity_whose_user_changed_address_no_longer_signs_in(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer, runtime: Runtime
) -> None:
    sub = new_sub()
    idp.next_user(sub, "moved@example.com")
    await browser.tokens()
    async with runtime.sessionmaker() as db:
        await db.execute(
            update(User)
            .where(User.email == "moved@example.com")
            .values(email="elsewhere@example.com", email_key="elsewhere@example.com")
        )
        await db.commit()
    client.cookies.clear()
    idp.next_user(sub, "moved@example.com")
    response = await browser.sign_in()
    assert query_of(response.headers["location"]) == {"error": "email_not_verified"}
    assert (await counts(runtime)).sessions == 1  # only the first sign-in's


async def test_a_known_identity_of_an_unverified_user_no_longer_signs_in(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer, runtime: Runtime
) -> None:
    """A row from before the fix: an identity that never proved its address, or whose user is
    not verified, signs in nowhere."""
    sub = new_sub()
    idp.next_user(sub, "legacy@example.com")
    await browser.tokens()
    identity = await _identity_of(runtime, "legacy@example.com")
    async with runtime.sessionmaker() as db:
        await db.execute(
            update(OAuthIdentity)
            .where(OAuthIdentity.id == identity.id)
            .values(email_verified=False)
        )
        await db.commit()
    client.cookies.clear()
    idp.next_user(sub, "legacy@example.com")
    refused = await browser.sign_in()
    assert query_of(refused.headers["location"]) == {"error": "email_not_verified"}

    async with runtime.sessionmaker() as db:
        await db.execute(
            update(OAuthIdentity).where(OAuthIdentity.id == identity.id).values(email_verified=True)
        )
        await db.execute(
            update(User).where(User.id == identity.user_id).values(email_verified=False)
        )
        await db.commit()
    client.cookies.clear()
    idp.next_user(sub, "legacy@example.com")
    refused = await browser.sign_in()
    assert query_of(refused.headers["location"]) == {"error": "email_not_verified"}
    assert (await counts(runtime)).sessions == 1


async def test_an_identity_of_a_disabled_user_is_refused(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer, runtime: Runtime
) -> None:
    sub = new_sub()
    idp.next_user(sub, "off@example.com")
    await browser.tokens()
    async with runtime.sessionmaker() as db:
        await db.execute(update(User).values(is_active=False))
        await db.commit()
    client.cookies.clear()
    idp.next_user(sub, "off@example.com")
    response = await browser.sign_in()
    assert query_of(response.headers["location"]) == {"error": "account_disabled"}


async def test_a_disabled_unverified_account_is_never_replaced(
    browser: Browser, flows: Flows, idp: OidcServer, runtime: Runtime
) -> None:
    assert (await flows.register("frozen@example.com")).status_code == 202
    async with runtime.sessionmaker() as db:
        await db.execute(update(User).values(is_active=False))
        await db.commit()
        before = (await db.execute(select(User.id))).scalar_one()
    idp.next_user(new_sub(), "frozen@example.com", email_verified=True)
    response = await browser.sign_in()
    assert query_of(response.headers["location"]) == {"error": "account_disabled"}
    async with runtime.sessionmaker() as db:
        assert (await db.execute(select(User.id))).scalars().all() == [before]
    found = await counts(runtime)
    assert (found.identities, found.sessions, found.provider_tokens) == (0, 0, 0)


async def test_delete_unproven_identities_keeps_proving_and_owner_linked_ones(
    runtime: Runtime,
) -> None:
    repo = OAuthRepository()
    async with runtime.sessionmaker() as db:
        user = User(email="Mix@Example.com", email_key="mix@example.com", email_verified=True)
        db.add(user)
        await db.flush()

        def identity(subject: str, email: str | None, verified: bool, owner: bool) -> None:
            db.add(
                OAuthIdentity(
                    user_id=user.id,
                    provider=subject,
                    subject=subject,
                    email=email,
                    email_verified=verified,
                    linked_by_owner=owner,
                )
            )

        identity("proves", "mix@EXAMPLE.com", True, False)  # same address, case-insensitive
        identity("owner", "other@example.com", False, True)  # connected by the owner
        identity("unverified", "mix@example.com", False, False)
        identity("other", "other@example.com", True, False)
        identity("none", None, True, False)
        await db.flush()
        assert await repo.delete_unproven_identities(db, user.id, "mix@example.com") == 3
        left = {i.provider for i in await repo.identities_of_user(db, user.id)}
        assert left == {"proves", "owner"}
        assert await repo.delete_unproven_identities(db, user.id, "mix@example.com") == 0
        # Against another address only the owner-linked identity proves anything.
        assert await repo.delete_unproven_identities(db, user.id, "new@example.com") == 1
        assert [i.provider for i in await repo.identities_of_user(db, user.id)] == ["owner"]
        await db.rollback()


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
    assert query_of(response.headers["location"]) == {"error": "email_not_verified"}
    found = await counts(runtime)
    assert (found.users, found.identities, found.provider_tokens) == (1, 0, 0)


async def test_verified_local_account_is_not_linked_by_default(
    browser: Browser, flows: Flows, factory: Factory, idp: OidcServer, runtime: Runtime
) -> None:
    account = await factory.account("owner@example.com")
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
        assert query_of(response.headers["location"]) == {"error": "email_not_verified"}
        async with runtime.sessionmaker() as db:
            assert (await db.execute(select(OAuthIdentity))).first() is None


async def test_proving_the_address_removes_a_planted_unproven_identity(
    client: httpx.AsyncClient, flows: Flows, runtime: Runtime
) -> None:
    """Data from before the fix: an account made by a provider sign-in with an address the
    provider had not verified, the attacker's identity on it. The mailbox's owner signs up,
    follows the link, and the attacker's identity is gone with it."""
    victim = "planted@example.com"
    async with runtime.sessionmaker() as db, db.begin():
        user = User(email=victim, email_key=victim, email_verified=False, password_hash=None)
        db.add(user)
        await db.flush()
        db.add(
            OAuthIdentity(
                user_id=user.id,
                provider="github",
                subject="attacker",
                email=victim,
                email_verified=False,
                linked_by_owner=False,
            )
        )
    assert (await flows.register(victim, password=TEST_PASSWORD)).status_code == 202
    mails = await flows.sink.wait_for(victim, 1)
    link = mails[-1].token("/verify-email")
    verified = await client.post("/api/v1/auth/verify-email", json={"token": link})
    assert verified.status_code == 200, verified.text
    found = await counts(runtime)
    assert found.identities == 0
    assert (await flows.login(victim)).status_code == 200


async def test_the_password_changed_mail_lists_the_connected_providers(
    client: httpx.AsyncClient, flows: Flows, factory: Factory, runtime: Runtime
) -> None:
    """A provider connection is a way in that survives a password change: the owner sees it."""
    account = await factory.account()
    async with runtime.sessionmaker() as db, db.begin():
        user = (await db.execute(select(User).where(User.email == account.email))).scalar_one()
        db.add(
            OAuthIdentity(
                user_id=user.id,
                provider="github",
                subject="someone",
                email=account.email,
                email_verified=True,
                linked_by_owner=True,
            )
        )
    changed = await client.post(
        "/api/v1/users/me/password",
        json={"current_password": TEST_PASSWORD, "new_password": "a brand new long passphrase"},
        headers=account.auth,
    )
    assert changed.status_code == 200, changed.text
    mail = await mail_with_subject(flows.sink, account.email, "password")
    assert "- github" in mail.text
    assert "github" in mail.html
