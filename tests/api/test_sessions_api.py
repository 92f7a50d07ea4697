"""GET /sessions and DELETE /sessions/{id}: the signed-in user's own sessions."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from authgate.runtime import Runtime
from tests.support.api import assert_problem, bearer, me, refresh, sid_of
from tests.support.db import audit_count
from tests.support.factories import Factory
from tests.support.flows import Account

API = "/api/v1"
PEER_IP = "203.0.113.7"
UA = "pytest-agent/1.0"


async def login(
    client: httpx.AsyncClient, account: Account, user_agent: str = UA
) -> dict[str, str]:
    response = await client.post(
        f"{API}/auth/login",
        json={"email": account.email, "password": account.password},
        headers={"User-Agent": user_agent},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def sessions(client: httpx.AsyncClient, access_token: str) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/sessions", headers=bearer(access_token))
    assert response.status_code == 200, response.text
    return list(response.json())


async def end(client: httpx.AsyncClient, access_token: str, session_id: str) -> httpx.Response:
    return await client.delete(f"{API}/sessions/{session_id}", headers=bearer(access_token))


async def test_sessions_list_shows_client_and_marks_the_current_one(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    phone = await login(client, account, user_agent="phone-app/2.3")
    bystander = await factory.account()

    listed = await sessions(client, account.access_token)
    by_id = {s["id"]: s for s in listed}
    assert set(by_id) == {sid_of(account.access_token), sid_of(phone["access_token"])}
    assert [s["id"] for s in listed if s["current"] is True] == [sid_of(account.access_token)]
    assert by_id[sid_of(account.access_token)]["user_agent"] == UA
    assert by_id[sid_of(phone["access_token"])]["user_agent"] == "phone-app/2.3"
    for session in listed:
        assert session["ip_address"] == PEER_IP
        assert set(session) == {
            "id",
            "created_at",
            "last_used_at",
            "expires_at",
            "ip_address",
            "user_agent",
            "amr",
            "current",
        }
        assert session["amr"] == ["pwd"]
        assert session["expires_at"] > session["created_at"]

    # Seen from the other session, that one is current; another user's sessions never show.
    from_phone = await sessions(client, phone["access_token"])
    assert [s["id"] for s in from_phone if s["current"]] == [sid_of(phone["access_token"])]
    assert sid_of(bystander.access_token) not in {s["id"] for s in from_phone}

    # An ended session is no longer listed.
    await client.post(f"{API}/auth/logout", json={"refresh_token": phone["refresh_token"]})
    assert [s["id"] for s in await sessions(client, account.access_token)] == [
        sid_of(account.access_token)
    ]


async def test_deleting_a_session_ends_exactly_that_one(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await factory.account()
    uid = uuid.UUID((await me(client, account.access_token)).json()["id"])
    second = await login(client, account)
    third = await login(client, account)

    response = await end(client, account.access_token, sid_of(second["access_token"]))
    assert response.status_code == 204
    assert response.content == b""

    assert_problem(await me(client, second["access_token"]), 401, "invalid_token")
    assert_problem(await refresh(client, second["refresh_token"]), 401, "invalid_token")
    assert (await me(client, account.access_token)).status_code == 200
    assert (await me(client, third["access_token"])).status_code == 200
    assert (await refresh(client, third["refresh_token"])).status_code == 200
    assert {s["id"] for s in await sessions(client, account.access_token)} == {
        sid_of(account.access_token),
        sid_of(third["access_token"]),
    }
    assert await audit_count(runtime, "session_revoked", user_id=uid) == 1

    # Ending it again: it is gone.
    assert_problem(
        await end(client, account.access_token, sid_of(second["access_token"])), 404, "not_found"
    )


async def test_another_users_or_an_unknown_session_is_not_found(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    victim = await factory.account()

    assert_problem(
        await end(client, account.access_token, sid_of(victim.access_token)), 404, "not_found"
    )
    assert_problem(await end(client, account.access_token, str(uuid.uuid4())), 404, "not_found")
    # Both answers are the same: nothing tells whether the id exists.
    theirs = await end(client, account.access_token, sid_of(victim.access_token))
    unknown = await end(client, account.access_token, str(uuid.uuid4()))
    assert theirs.json() == unknown.json()
    assert_problem(await end(client, account.access_token, "not-a-uuid"), 422, "validation_error")

    assert_problem(await client.get(f"{API}/sessions"), 401, "not_authenticated")
    assert_problem(
        await client.delete(f"{API}/sessions/{sid_of(victim.access_token)}"),
        401,
        "not_authenticated",
    )

    # The victim's session survived every attempt.
    assert (await me(client, victim.access_token)).status_code == 200
    assert (await refresh(client, victim.refresh_token)).status_code == 200


async def test_deleting_the_current_session_is_a_logout(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    other = await login(client, account)
    response = await end(client, account.access_token, sid_of(account.access_token))
    assert response.status_code == 204
    assert_problem(await me(client, account.access_token), 401, "invalid_token")
    assert_problem(await refresh(client, account.refresh_token), 401, "invalid_token")
    assert_problem(
        await client.get(f"{API}/sessions", headers=bearer(account.access_token)),
        401,
        "invalid_token",
    )
    assert (await me(client, other["access_token"])).status_code == 200
