"""The vault for the providers' tokens: encrypted at rest, bound to their row, re-encryptable
under a new key, refreshed once under concurrency, and handed to trusted services only."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from authgate.audit import AuditService
from authgate.config import Settings
from authgate.core.security.crypto import DecryptionError, EncryptionService, parse_key_ring
from authgate.core.time import utc_now
from authgate.models import AuditEvent, Base, ProviderToken, User
from authgate.oauth.errors import ProviderTokenUnavailable
from authgate.oauth.vault import ProviderTokenVault, associated_data, reencrypt_provider_tokens
from authgate.runtime import Runtime
from tests.support.oauth import (
    INTERNAL_CLIENT,
    TOKEN_CLIENT,
    Browser,
    OidcServer,
    base_overrides,
    basic_auth,
    new_sub,
)

TOKEN_URL = "/api/v1/oauth/internal/provider-token"
OLD_KEY = "old:" + base64.b64encode(os.urandom(32)).decode()
NEW_KEY = "new:" + base64.b64encode(os.urandom(32)).decode()


async def signed_in_user(
    browser: Browser, idp: OidcServer, runtime: Runtime, email: str
) -> uuid.UUID:
    idp.next_user(new_sub(), email)
    await browser.tokens()
    async with runtime.sessionmaker() as db:
        return (await db.execute(select(User.id).where(User.email == email))).scalar_one()


async def stored(runtime: Runtime, user_id: uuid.UUID) -> ProviderToken:
    async with runtime.sessionmaker() as db:
        return (
            await db.execute(select(ProviderToken).where(ProviderToken.user_id == user_id))
        ).scalar_one()


def plaintexts(encryption: EncryptionService, row: ProviderToken) -> tuple[str, str]:
    assert row.refresh_token_ct is not None
    access = encryption.decrypt(
        row.access_token_ct, associated_data(row.user_id, row.provider, "access_token")
    ).decode()
    refresh = encryption.decrypt(
        row.refresh_token_ct, associated_data(row.user_id, row.provider, "refresh_token")
    ).decode()
    return access, refresh


async def test_tokens_are_stored_as_ciphertexts_only(
    browser: Browser, idp: OidcServer, runtime: Runtime
) -> None:
    user_id = await signed_in_user(browser, idp, runtime, "vault@example.com")
    row = await stored(runtime, user_id)
    access, refresh = plaintexts(runtime.encryption, row)
    assert row.key_id == runtime.encryption.current_kid
    assert row.expires_at is not None and row.expires_at > utc_now()
    info = await runtime.provider_tokens.token_info_of(user_id, "test") if False else None
    assert info is None
    # No raw token in any column of any table.
    async with runtime.sessionmaker() as db:
        for table in Base.metadata.sorted_tables:
            for record in (await db.execute(select(table))).all():
                for value in record:
                    blob = value if isinstance(value, bytes) else str(value).encode()
                    assert access.encode() not in blob, table.name
                    assert refresh.encode() not in blob, table.name


async def test_token_info_does_not_decrypt(
    browser: Browser, idp: OidcServer, runtime: Runtime
) -> None:
    user_id = await signed_in_user(browser, idp, runtime, "info@example.com")
    broken = ProviderTokenVault(
        runtime.sessionmaker,
        EncryptionService(parse_key_ring(NEW_KEY)),
        AuditService(),
        runtime.oauth.providers,
    )
    async with runtime.sessionmaker() as db:
        info = await broken.token_info(db, user_id, "test")
    assert info is not None
    assert info.key_id == runtime.encryption.current_kid
    assert info.has_refresh_token is True and info.version == 1
    assert info.scope is not None and "openid" in info.scope


async def test_a_ciphertext_moved_to_another_row_does_not_decrypt(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer, runtime: Runtime
) -> None:
    alice = await signed_in_user(browser, idp, runtime, "alice@example.com")
    client.cookies.clear()
    mallory = await signed_in_user(browser, idp, runtime, "mallory@example.com")
    alice_row = await stored(runtime, alice)
    with pytest.raises(DecryptionError):
        runtime.encryption.decrypt(
            alice_row.access_token_ct, associated_data(mallory, "test", "access_token")
        )
    with pytest.raises(DecryptionError):  # nor into another column of the same row
        runtime.encryption.decrypt(
            alice_row.access_token_ct, associated_data(alice, "test", "refresh_token")
        )
    async with runtime.sessionmaker() as db:
        await db.execute(
            update(ProviderToken)
            .where(ProviderToken.user_id == mallory)
            .values(access_token_ct=alice_row.access_token_ct)
        )
        await db.commit()
    async with runtime.sessionmaker() as db:
        with pytest.raises(ProviderTokenUnavailable):
            await runtime.provider_tokens.get_valid_access_token(db, mallory, "test")
        # Alice's own token still works.
        assert await runtime.provider_tokens.get_valid_access_token(db, alice, "test")


class TestKeyRotation:
    @pytest.fixture
    def settings_overrides(self, oidc_server: OidcServer) -> dict[str, Any]:
        return {**base_overrides(oidc_server.url), "encryption_keys": OLD_KEY}

    async def test_reencrypt_then_drop_the_old_key(
        self, browser: Browser, idp: OidcServer, runtime: Runtime
    ) -> None:
        user_id = await signed_in_user(browser, idp, runtime, "rotate@example.com")
        before = await stored(runtime, user_id)
        assert before.key_id == "old"
        access, refresh = plaintexts(runtime.encryption, before)

        both = EncryptionService(parse_key_ring(f"{NEW_KEY},{OLD_KEY}"))
        async with runtime.sessionmaker() as db:
            assert await reencrypt_provider_tokens(db, both) == 1
            await db.commit()
        async with runtime.sessionmaker() as db:  # idempotent
            assert await reencrypt_provider_tokens(db, both) == 0

        new_only = EncryptionService(parse_key_ring(NEW_KEY))
        after = await stored(runtime, user_id)
        assert after.key_id == "new"
        assert new_only.key_id_of(after.access_token_ct) == "new"
        assert plaintexts(new_only, after) == (access, refresh)
        vault = ProviderTokenVault(
            runtime.sessionmaker, new_only, AuditService(), runtime.oauth.providers
        )
        async with runtime.sessionmaker() as db:
            assert await vault.get_valid_access_token(db, user_id, "test") == access
            info = await vault.token_info(db, user_id, "test")
        assert info is not None and info.key_id == "new"


async def expire(runtime: Runtime, user_id: uuid.UUID) -> None:
    async with runtime.sessionmaker() as db:
        await db.execute(
            update(ProviderToken)
            .where(ProviderToken.user_id == user_id)
            .values(expires_at=utc_now() + timedelta(seconds=30))  # inside the 60 s margin
        )
        await db.commit()


async def test_concurrent_callers_cause_exactly_one_refresh(
    browser: Browser, idp: OidcServer, runtime: Runtime
) -> None:
    user_id = await signed_in_user(browser, idp, runtime, "busy@example.com")
    old_access, old_refresh = plaintexts(runtime.encryption, await stored(runtime, user_id))
    await expire(runtime, user_id)
    assert idp.stats()["refreshes"] == 0

    async def call() -> str:
        async with runtime.sessionmaker() as db:
            token = await runtime.provider_tokens.get_valid_access_token(db, user_id, "test")
            await db.commit()
            return token

    results = await asyncio.gather(*(call() for _ in range(10)))
    assert idp.stats()["refreshes"] == 1
    assert len(set(results)) == 1 and results[0] != old_access
    row = await stored(runtime, user_id)
    assert row.version == 2 and row.expires_at is not None
    assert row.expires_at - utc_now() > timedelta(minutes=5)
    new_access, new_refresh = plaintexts(runtime.encryption, row)
    assert new_access == results[0]
    assert new_refresh != old_refresh  # the provider rotates refresh tokens

    # The rotated refresh token is the one used next time.
    await expire(runtime, user_id)
    assert await call() not in (old_access, new_access)
    assert idp.stats()["refreshes"] == 2
    async with runtime.sessionmaker() as db:
        types = (await db.execute(select(AuditEvent.type))).scalars().all()
    assert types.count("provider_token_refreshed") == 2
    assert types.count("provider_token_accessed") == 11


async def test_a_refused_refresh_reports_the_token_unavailable(
    browser: Browser, idp: OidcServer, runtime: Runtime
) -> None:
    user_id = await signed_in_user(browser, idp, runtime, "revoked@example.com")
    row = await stored(runtime, user_id)
    # Replace the refresh token by one the provider never issued.
    async with runtime.sessionmaker() as db:
        await db.execute(
            update(ProviderToken)
            .where(ProviderToken.id == row.id)
            .values(
                refresh_token_ct=runtime.encryption.encrypt(
                    b"not-a-refresh-token", associated_data(user_id, "test", "refresh_token")
                ),
                expires_at=utc_now() - timedelta(seconds=1),
            )
        )
        await db.commit()
    async with runtime.sessionmaker() as db:
        with pytest.raises(ProviderTokenUnavailable):
            await runtime.provider_tokens.get_valid_access_token(db, user_id, "test")


async def test_internal_endpoint_requires_a_provider_token_client(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer, runtime: Runtime
) -> None:
    user_id = await signed_in_user(browser, idp, runtime, "svc@example.com")
    body = {"user_id": str(user_id), "provider": "test"}
    for headers in (
        {},
        basic_auth(TOKEN_CLIENT[0], "wrong"),
        basic_auth(TOKEN_CLIENT[0], TOKEN_CLIENT[1][:-1]),
        basic_auth("nobody", "x"),
        # Issue 11: an introspection client no longer reads provider tokens.
        basic_auth(*INTERNAL_CLIENT),
        {"Authorization": "Bearer x"},
    ):
        response = await client.post(TOKEN_URL, json=body, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["code"] == "invalid_client"
        assert response.headers["www-authenticate"].startswith("Basic")
        assert "access_token" not in response.text

    response = await client.post(TOKEN_URL, json=body, headers=basic_auth(*TOKEN_CLIENT))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    access, _ = plaintexts(runtime.encryption, await stored(runtime, user_id))
    assert response.json()["access_token"] == access
    assert response.json()["token_type"].lower() == "bearer"

    unknown = {"user_id": str(uuid.uuid4()), "provider": "test"}
    response = await client.post(TOKEN_URL, json=unknown, headers=basic_auth(*TOKEN_CLIENT))
    assert response.status_code == 409
    assert response.json()["code"] == "provider_token_unavailable"
    response = await client.post(
        TOKEN_URL, json={**body, "provider": "nope"}, headers=basic_auth(*TOKEN_CLIENT)
    )
    assert response.status_code == 404

    async with runtime.sessionmaker() as db:
        events = (
            (
                await db.execute(
                    select(AuditEvent).where(AuditEvent.type == "provider_token_accessed")
                )
            )
            .scalars()
            .all()
        )
    assert [e.detail for e in events] == [{"provider": "test", "caller": "product-api"}]


async def test_a_client_reads_only_its_listed_providers(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer, runtime: Runtime
) -> None:
    idp.next_user("9001", "gh-user@example.com")
    await browser.tokens("github")
    async with runtime.sessionmaker() as db:
        user_id = (
            await db.execute(select(User.id).where(User.email == "gh-user@example.com"))
        ).scalar_one()
    body = {"user_id": str(user_id), "provider": "github"}
    response = await client.post(TOKEN_URL, json=body, headers=basic_auth(*TOKEN_CLIENT))
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "forbidden"
    assert "access_token" not in response.text
    async with runtime.sessionmaker() as db:
        read = await db.execute(
            select(AuditEvent).where(AuditEvent.type == "provider_token_accessed")
        )
        assert read.first() is None


class TestOffByDefault:
    @pytest.fixture
    def settings_overrides(self, oidc_server: OidcServer) -> dict[str, Any]:
        return {**base_overrides(oidc_server.url), "provider_token_clients": []}

    async def test_the_endpoint_is_404_without_clients(
        self, browser: Browser, client: httpx.AsyncClient, idp: OidcServer, runtime: Runtime
    ) -> None:
        user_id = await signed_in_user(browser, idp, runtime, "off@example.com")
        body = {"user_id": str(user_id), "provider": "test"}
        for headers in ({}, basic_auth(*INTERNAL_CLIENT), basic_auth(*TOKEN_CLIENT)):
            response = await client.post(TOKEN_URL, json=body, headers=headers)
            assert response.status_code == 404, response.text
            assert "access_token" not in response.text


def test_provider_token_clients_settings() -> None:
    settings = Settings(
        _env_file=None,
        provider_token_clients='["a:s3cr:et:test|github", "b:other:test"]',
    )
    [a, _b] = settings.provider_token_clients
    assert (a.client_id, a.secret.get_secret_value(), a.providers) == (
        "a",
        "s3cr:et",
        frozenset({"test", "github"}),
    )
    assert "s3cr" not in repr(settings)
    comma = Settings(_env_file=None, provider_token_clients="a:s:test, b:t:x|y")
    assert [c.client_id for c in comma.provider_token_clients] == ["a", "b"]
    for bad in ("a:secret", "a::test", ":s:test", "a:s:", "a:s:test,a:t:test"):
        with pytest.raises(ValidationError) as caught:
            Settings(_env_file=None, provider_token_clients=bad)
        assert "secret" not in str(caught.value).replace("client_id:secret", "")
    short = Settings(_env_file=None, env="production", provider_token_clients="a:short:test")
    assert any("PROVIDER_TOKEN_CLIENTS" in p for p in short.production_problems())
    long = Settings(
        _env_file=None,
        env="production",
        provider_token_clients="a:" + "x" * 32 + ":test",
    )
    assert not any("PROVIDER_TOKEN_CLIENTS" in p for p in long.production_problems())


async def test_no_secret_reaches_the_logs(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer, runtime: Runtime
) -> None:
    import logging

    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    # Our loggers at DEBUG, and httpx's request lines (the app's calls to the provider).
    handler = Collect(level=logging.DEBUG)
    loggers = [logging.getLogger("authgate"), logging.getLogger("httpx")]
    levels = [lg.level for lg in loggers]
    for lg, level in zip(loggers, (logging.DEBUG, logging.INFO), strict=True):
        lg.addHandler(handler)
        lg.setLevel(level)
    try:
        idp.next_user(new_sub(), "quiet@example.com")
        url = await browser.provider_callback_url()
        final = await browser.callback(url)
        ago = final.headers["location"].split("code=")[1]
        pair = (await client.post("/api/v1/oauth/token", json={"code": ago})).json()
        user_id = (
            await client.get(
                "/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
            )
        ).json()["id"]
        await expire(runtime, uuid.UUID(user_id))
        async with runtime.sessionmaker() as db:
            await runtime.provider_tokens.get_valid_access_token(db, uuid.UUID(user_id), "test")
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
    row = await stored(runtime, uuid.UUID(user_id))
    secrets = [*plaintexts(runtime.encryption, row), ago, url.split("code=")[1].split("&")[0]]
    lines = [
        f"{r.getMessage()} {r.__dict__}"
        for r in records
        if not r.name.startswith("httpx") or "127.0.0.1:8000" not in r.getMessage()
    ]
    assert lines  # something was logged
    for line in lines:
        for secret in secrets:
            assert secret not in line
