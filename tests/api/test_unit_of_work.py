"""The unit of work: a request's writes commit when it succeeds and vanish when it fails, except
the few security writes (``core.db.security_write``), committed before the error is raised.

The store outage is the shared revocation list failing (``revoked-sid:`` flags): the step that
comes right after a reuse revocation, and after a password change's writes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from authgate.audit import AuditType
from authgate.core.db import security_write
from authgate.core.store import Store, StoreUnavailable
from authgate.deps import get_db
from authgate.models import AuditEvent, AuthSession
from authgate.runtime import Runtime
from tests.support.api import assert_problem, bearer, refresh, sid_of, user_id
from tests.support.db import audit_count, row_count
from tests.support.flows import Flows

API = "/api/v1"
NEW_PASSWORD = "a brand new and long passphrase"


def take_the_revocation_list_down(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on the store refuses to publish session revocations (as Redis down would)."""
    store: Store = runtime.store
    set_flag = store.set_flag

    async def failing(key: str, ttl_seconds: float) -> None:
        if key.startswith("revoked-sid:"):
            raise StoreUnavailable("store down")
        await set_flag(key, ttl_seconds)

    monkeypatch.setattr(store, "set_flag", failing)


async def session_row(runtime: Runtime, session_id: str) -> AuthSession:
    async with runtime.sessionmaker() as db:
        row = await db.get(AuthSession, uuid.UUID(session_id))
    assert row is not None
    return row


async def replay(client: httpx.AsyncClient, endpoint: str, token: str) -> httpx.Response:
    if endpoint == "refresh":
        return await refresh(client, token)
    return await client.post(
        f"{API}/auth/token", data={"grant_type": "refresh_token", "refresh_token": token}
    )


# -- security writes survive the failure ----------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["refresh", "token"])
async def test_a_reuse_revocation_survives_the_store_failing_right_after_it(
    flows: Flows,
    client: httpx.AsyncClient,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    endpoint: str,
) -> None:
    account = await flows.signed_up()
    uid = await user_id(client, account)
    sid = sid_of(account.access_token)
    rotated = await refresh(client, account.refresh_token)
    assert rotated.status_code == 200, rotated.text
    successor = rotated.json()["refresh_token"]

    take_the_revocation_list_down(runtime, monkeypatch)
    response = await replay(client, endpoint, account.refresh_token)
    assert_problem(response, 503, "service_unavailable")
    monkeypatch.undo()

    # The request failed, yet the revocation, its audit row and its mail were committed.
    session = await session_row(runtime, sid)
    assert session.revoked_at is not None
    assert session.revoked_reason == "reuse_detected"
    assert await audit_count(runtime, "refresh_reuse_detected", user_id=uid) == 1
    assert (
        await row_count(runtime, "email_outbox", user_id=uid, template="session_reuse_revoked") == 1
    )
    # The family is dead once the store is back, and the incident is not reported twice.
    assert_problem(await refresh(client, successor), 401, "invalid_token")
    assert_problem(await refresh(client, account.refresh_token), 401, "invalid_token")
    assert await audit_count(runtime, "refresh_reuse_detected", user_id=uid) == 1


async def test_a_failed_sign_in_keeps_its_audit_row(
    flows: Flows, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await flows.signed_up()
    uid = await user_id(client, account)

    wrong = await flows.login(account.email, "not the password at all")
    assert_problem(wrong, 401, "invalid_credentials")
    assert await audit_count(runtime, AuditType.login_failed, user_id=uid) == 1

    # Through the OAuth2 token endpoint: the RFC 6749 error, and the row all the same.
    form = {"grant_type": "password", "username": account.email, "password": "wrong again"}
    token = await client.post(f"{API}/auth/token", data=form)
    assert token.status_code == 400, token.text
    assert token.json() == {
        "error": "invalid_grant",
        "error_description": "The credentials or refresh token are invalid.",
    }
    assert token.headers["cache-control"] == "no-store"
    assert await audit_count(runtime, AuditType.login_failed, user_id=uid) == 2
    # An unknown address is audited too (no user to name).
    unknown = await flows.login("nobody@example.com", "whatever it is")
    assert_problem(unknown, 401, "invalid_credentials")
    assert await audit_count(runtime, AuditType.login_failed) == 3


# -- an ordinary failure leaves nothing behind ----------------------------------------------------


async def test_a_password_change_that_fails_after_its_writes_leaves_nothing(
    flows: Flows, client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changing the password writes the new hash, cancels pending email changes and ends the
    sessions, then fails publishing the revocations: none of those writes may stay."""
    account = await flows.signed_up()
    uid = await user_id(client, account)
    sid = sid_of(account.access_token)
    take_the_revocation_list_down(runtime, monkeypatch)

    response = await client.post(
        f"{API}/users/me/password",
        json={"current_password": account.password, "new_password": NEW_PASSWORD},
        headers=bearer(account.access_token),
    )
    assert_problem(response, 503, "service_unavailable")
    monkeypatch.undo()

    assert (await session_row(runtime, sid)).revoked_at is None
    assert await row_count(runtime, "auth_sessions", user_id=uid) == 1
    assert await audit_count(runtime, AuditType.password_changed, user_id=uid) == 0
    assert await row_count(runtime, "email_outbox", user_id=uid, template="password_changed") == 0
    assert (await flows.login(account.email, NEW_PASSWORD)).status_code == 401
    assert (await flows.login(account.email, account.password)).status_code == 200
    assert (await refresh(client, account.refresh_token)).status_code == 200


# -- the mechanism itself -------------------------------------------------------------------------


def _request(runtime: Runtime) -> Request:
    return Request({"type": "http", "app": SimpleNamespace(state=SimpleNamespace(runtime=runtime))})


async def _audit_types(runtime: Runtime) -> list[str]:
    async with runtime.engine.connect() as conn:
        return sorted((await conn.execute(select(AuditEvent.type))).scalars())


async def _record(type_: AuditType, tx: Any) -> None:
    tx.add(AuditEvent(type=type_.value))


async def test_a_security_write_commits_alone_and_the_request_must_fail(runtime: Runtime) -> None:
    """What the request wrote before is dropped, the security write is committed at once, and
    the unit of work refuses to commit a request that carries on after one."""
    units = cast(AsyncGenerator[AsyncSession, None], get_db(_request(runtime)))
    db = await anext(units)
    db.add(AuditEvent(type=AuditType.register.value))
    await db.flush()  # the request holds SQLite's write lock now
    await security_write(db, lambda tx: _record(AuditType.login_failed, tx))
    assert await _audit_types(runtime) == ["login_failed"]  # visible to everyone, committed

    db.add(AuditEvent(type=AuditType.logout.value))
    with pytest.raises(RuntimeError, match="security write"):
        await anext(units)  # the handler returned normally
    assert await _audit_types(runtime) == ["login_failed"]


async def test_a_failed_unit_of_work_keeps_only_its_security_write(runtime: Runtime) -> None:
    units = cast(AsyncGenerator[AsyncSession, None], get_db(_request(runtime)))
    db = await anext(units)
    await security_write(db, lambda tx: _record(AuditType.login_failed, tx))
    db.add(AuditEvent(type=AuditType.logout.value))
    await db.flush()
    with pytest.raises(LookupError):
        await units.athrow(LookupError("the handler failed"))
    assert await _audit_types(runtime) == ["login_failed"]
