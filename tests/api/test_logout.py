"""Logout (one session) and logout-all (every session of the user)."""

from __future__ import annotations

import uuid

import httpx

from authgate.runtime import Runtime
from tests.support.api import assert_problem, bearer, me, refresh, several_sessions, shape
from tests.support.db import audit_count
from tests.support.factories import Factory
from tests.support.flows import Account, Flows

API = "/api/v1"
#: Headers that differ on every response whatever happened.


async def logout(
    client: httpx.AsyncClient, refresh_token: str, access_token: str | None = None
) -> httpx.Response:
    headers = bearer(access_token) if access_token else {}
    return await client.post(
        f"{API}/auth/logout", json={"refresh_token": refresh_token}, headers=headers
    )


async def another_session(flows: Flows, account: Account) -> dict[str, str]:
    response = await flows.login(account.email, account.password)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_logout_ends_the_session_and_its_access_tokens(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await factory.account()
    uid = uuid.UUID((await me(client, account.access_token)).json()["id"])
    other = await another_session(flows, account)

    response = await logout(client, account.refresh_token, account.access_token)
    assert response.status_code == 204
    assert response.content == b""

    assert_problem(await refresh(client, account.refresh_token), 401, "invalid_token")
    assert_problem(await me(client, account.access_token), 401, "invalid_token")
    assert await audit_count(runtime, "logout", user_id=uid) == 1
    # The user's other session is untouched.
    assert (await me(client, other["access_token"])).status_code == 200
    assert (await refresh(client, other["refresh_token"])).status_code == 200


async def test_logout_by_refresh_token_alone_ends_every_access_token_of_the_session(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    rotated = (await refresh(client, account.refresh_token)).json()
    assert (await me(client, rotated["access_token"])).status_code == 200

    assert (await logout(client, rotated["refresh_token"])).status_code == 204

    assert_problem(await me(client, account.access_token), 401, "invalid_token")
    assert_problem(await me(client, rotated["access_token"]), 401, "invalid_token")
    assert_problem(await refresh(client, rotated["refresh_token"]), 401, "invalid_token")


async def test_logout_by_access_token_ends_that_session(
    flows: Flows, factory: Factory, client: httpx.AsyncClient
) -> None:
    """The Bearer presented is ended even when the refresh token sent is not of its session."""
    account = await factory.account()
    other = await another_session(flows, account)
    response = await logout(client, "agr_" + "U" * 43, account.access_token)
    assert response.status_code == 204
    assert_problem(await me(client, account.access_token), 401, "invalid_token")
    assert_problem(await refresh(client, account.refresh_token), 401, "invalid_token")
    assert (await me(client, other["access_token"])).status_code == 200


async def test_logout_of_unknown_or_ended_sessions_looks_like_a_real_logout(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await factory.account()
    uid = uuid.UUID((await me(client, account.access_token)).json()["id"])
    real = await logout(client, account.refresh_token)
    assert real.status_code == 204

    again = await logout(client, account.refresh_token)
    unknown = await logout(client, "agr_" + "Z" * 43)
    not_ours = await logout(client, "not-a-refresh-token")
    stale_bearer = await logout(client, account.refresh_token, account.access_token)
    garbage_bearer = await logout(client, "agr_" + "Y" * 43, "not.a.jwt")

    for response in (again, unknown, not_ours, stale_bearer, garbage_bearer):
        assert shape(response) == shape(real)
    # Ending an ended session is not a second logout.
    assert await audit_count(runtime, "logout", user_id=uid) == 1


async def test_logout_all_ends_every_session_of_the_user(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await factory.account()
    bystander = await factory.account()
    uid = uuid.UUID((await me(client, account.access_token)).json()["id"])
    access_tokens, refresh_tokens = await several_sessions(flows, client, account)
    second = access_tokens[1]  # the second session's access token

    response = await client.post(f"{API}/auth/logout-all", headers=bearer(second))
    assert response.status_code == 204

    for token in access_tokens:
        assert_problem(await me(client, token), 401, "invalid_token")
    for token in refresh_tokens:
        assert_problem(await refresh(client, token), 401, "invalid_token")
    assert await audit_count(runtime, "logout_all", user_id=uid) == 1
    # Other users keep their sessions, and the user can sign in again.
    assert (await me(client, bystander.access_token)).status_code == 200
    fresh = await another_session(flows, account)
    assert (await me(client, fresh["access_token"])).status_code == 200

    # It needs a valid bearer: none, or one of the ended sessions, is refused.
    assert_problem(await client.post(f"{API}/auth/logout-all"), 401, "not_authenticated")
    ended = await client.post(f"{API}/auth/logout-all", headers=bearer(second))
    assert_problem(ended, 401, "invalid_token")
    assert (await me(client, fresh["access_token"])).status_code == 200
