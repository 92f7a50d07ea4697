"""Emergency revocation (contract §13): ``POST /admin/sessions/revoke-all`` ends every session of
every user and refuses every access token issued before it, the caller's own included, while a
sign-in made right after — in the same second — works."""

from __future__ import annotations

import math
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from authgate.core.store import StoreUnavailable
from authgate.core.time import shifted, utc_now
from authgate.models import AuditEvent, AuthSession
from authgate.runtime import Runtime
from authgate.sessions.access import PrincipalCache
from authgate.sessions.repository import SessionRepository
from authgate.sessions.revocation import STORE_KEY, ServiceNotBefore
from tests.support.api import assert_problem, bearer, claims_of, me, refresh
from tests.support.factories import Factory

API = "/api/v1"


async def revoke_all(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.post(f"{API}/admin/sessions/revoke-all", headers=bearer(access_token))


async def test_every_session_ends_and_a_new_sign_in_works_at_once(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await factory.account(is_superuser=True)
    first = await factory.account()
    second = await factory.account()
    assert (await me(client, first.access_token)).status_code == 200  # a cached snapshot

    response = await revoke_all(client, admin.access_token)
    assert response.status_code == 204, response.text

    for account in (admin, first, second):
        assert_problem(await me(client, account.access_token), 401, "invalid_token")
        assert_problem(await refresh(client, account.refresh_token), 401, "invalid_token")
    # The caller's own token too: a second call needs a new sign-in.
    assert_problem(await revoke_all(client, admin.access_token), 401, "invalid_token")

    login = await client.post(
        f"{API}/auth/login", json={"email": first.email, "password": first.password}
    )
    assert login.status_code == 200, login.text
    pair = login.json()
    assert (await me(client, pair["access_token"])).status_code == 200
    assert (await refresh(client, pair["refresh_token"])).status_code == 200

    async with runtime.sessionmaker() as db:
        live = (
            await db.scalars(select(AuthSession.id).where(AuthSession.revoked_at.is_(None)))
        ).all()
        reasons = set(
            (
                await db.scalars(
                    select(AuthSession.revoked_reason).where(AuthSession.revoked_at.is_not(None))
                )
            ).all()
        )
        events = (
            await db.scalars(select(AuditEvent).where(AuditEvent.type == "sessions_revoked_all"))
        ).all()
    assert len(live) == 1 and reasons == {"revoked_all"}
    assert len(events) == 1
    assert events[0].detail is not None
    assert events[0].detail["by"] == "admin"
    assert events[0].detail["sessions_ended"] == 3


async def test_the_same_second_a_revoked_session_is_refused_and_a_new_one_works(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    """``iat`` has whole seconds: a token of the second of the revocation passes the not-before
    check, and its session decides."""
    admin = await factory.account(is_superuser=True)
    user = await factory.user()
    now = utc_now().timestamp()
    # Start 50 ms into a second: what follows takes far less than the 950 ms left.
    with shifted(timedelta(seconds=math.ceil(now) - now + 0.05)):
        before = await factory.session(user)
        assert (await me(client, before.access_token)).status_code == 200  # a cached snapshot
        assert (await revoke_all(client, admin.access_token)).status_code == 204
        after = await factory.session(user)
        assert claims_of(before.access_token)["iat"] == claims_of(after.access_token)["iat"]

        assert_problem(await me(client, before.access_token), 401, "invalid_token")
        assert (await me(client, after.access_token)).status_code == 200


async def test_only_a_superuser(factory: Factory, client: httpx.AsyncClient) -> None:
    account = await factory.account()
    assert_problem(await revoke_all(client, account.access_token), 403, "forbidden")
    assert (await me(client, account.access_token)).status_code == 200
    response = await client.post(f"{API}/admin/sessions/revoke-all")
    assert_problem(response, 401, "not_authenticated")


async def test_without_the_shared_store_nothing_changes(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await factory.account(is_superuser=True)
    account = await factory.account()
    set_float = runtime.store.set_float

    async def failing(key: str, value: float, ttl_seconds: float) -> None:
        if key == STORE_KEY:
            raise StoreUnavailable("store down")
        await set_float(key, value, ttl_seconds)

    monkeypatch.setattr(runtime.store, "set_float", failing)
    response = await revoke_all(client, admin.access_token)
    assert_problem(response, 503, "service_unavailable")
    for tokens in (admin, account):
        assert (await me(client, tokens.access_token)).status_code == 200
    async with runtime.sessionmaker() as db:
        revoked = (
            await db.scalars(select(AuthSession.id).where(AuthSession.revoked_at.is_not(None)))
        ).all()
        events = (
            await db.scalars(select(AuditEvent).where(AuditEvent.type == "sessions_revoked_all"))
        ).all()
        stored = await SessionRepository().service_not_before(db)
    assert (revoked, events, stored) == ([], [], None)


async def test_a_store_that_lost_the_instant_gets_it_back_from_the_database(
    runtime: Runtime,
) -> None:
    """What each process's task does with a shared store (Redis restarted empty): the row is
    read and put back, and a newer instant in the store is never replaced by the row's."""
    store = runtime.store
    not_before = ServiceNotBefore(store, runtime.sessionmaker, PrincipalCache(1.0), shared=True)
    at = utc_now() - timedelta(seconds=10)
    async with runtime.sessionmaker() as db, db.begin():
        await SessionRepository().set_service_not_before(db, at)

    await not_before.refresh()
    assert not_before.value == at.timestamp()
    assert await store.get_float(STORE_KEY) == at.timestamp()
    assert not not_before.admits(int(at.timestamp()) - 1)
    assert not_before.admits(int(at.timestamp()))

    newer = at.timestamp() + 5
    await store.set_float(STORE_KEY, newer, 60)
    await not_before.refresh()
    assert not_before.value == newer

    await store.delete(STORE_KEY)  # Redis restarted empty
    await not_before.refresh()
    assert await store.get_float(STORE_KEY) == at.timestamp()
    assert not_before.value == newer  # never moves back
    assert not await store.set_float_if_absent(STORE_KEY, 0.0, 60)
