"""Refresh-token rotation, reuse detection, the grace window, session lifetimes, /auth/token."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from authgate.core.time import shifted
from authgate.models import User
from authgate.runtime import Runtime
from tests.support.api import assert_problem, mail_with_subject, refresh, user_id
from tests.support.db import (
    audit_count,
    authgate_logs,
    row_count,
    scan_columns,
    scan_logs,
    successors_of,
)
from tests.support.factories import Factory
from tests.support.flows import Flows
from tests.support.mail import SmtpSink

API = "/api/v1"
GRACE = {"refresh_reuse_grace": 5}
LIFETIMES = {"refresh_token_ttl": 10 * 86400, "refresh_token_idle_ttl": 2 * 86400}


def assert_no_store(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


async def me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {access_token}"})


# -- rotation and reuse -------------------------------------------------------------------------


async def test_refresh_rotates_the_pair(
    flows: Flows, factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    login = await flows.login(account.email)
    assert login.status_code == 200, login.text
    assert_no_store(login)
    response = await refresh(client, account.refresh_token)
    assert response.status_code == 200, response.text
    assert_no_store(response)
    pair = response.json()
    assert pair["token_type"] == "Bearer"
    assert pair["refresh_token"].startswith("agr_")
    assert pair["refresh_token"] != account.refresh_token
    assert pair["access_token"] != account.access_token
    assert pair["expires_in"] > 0
    assert pair["refresh_token_expires_in"] > 0
    assert (await me(client, pair["access_token"])).status_code == 200

    # The successor rotates in turn; the chain goes on.
    again = await refresh(client, pair["refresh_token"])
    assert again.status_code == 200, again.text
    assert again.json()["refresh_token"] not in (pair["refresh_token"], account.refresh_token)


async def test_replaying_a_rotated_token_revokes_the_session(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    account = await factory.account()
    uid = await user_id(client, account)
    other = (await flows.login(account.email)).json()  # a second, unrelated session

    rotated = await refresh(client, account.refresh_token)
    assert rotated.status_code == 200, rotated.text
    rt2, at2 = rotated.json()["refresh_token"], rotated.json()["access_token"]

    replay = await refresh(client, account.refresh_token)
    assert_problem(replay, 401, "invalid_token")

    # The whole family is dead: the successor and every access token of the session.
    assert_problem(await refresh(client, rt2), 401, "invalid_token")
    assert_problem(await me(client, at2), 401, "invalid_token")
    assert_problem(await me(client, account.access_token), 401, "invalid_token")
    # ... and only that session.
    assert (await me(client, other["access_token"])).status_code == 200
    assert (await refresh(client, other["refresh_token"])).status_code == 200

    assert await audit_count(runtime, "refresh_reuse_detected", user_id=uid) == 1
    assert (
        await row_count(runtime, "email_outbox", user_id=uid, template="session_reuse_revoked") == 1
    )
    notice = await mail_with_subject(smtp_sink, account.email, "signed out for your safety")
    assert "203.0.113.7" in notice.text
    assert "pytest-agent/1.0" in notice.text

    # A further replay of either token is refused without a second incident.
    assert_problem(await refresh(client, account.refresh_token), 401, "invalid_token")
    assert await audit_count(runtime, "refresh_reuse_detected", user_id=uid) == 1


async def test_unknown_refresh_tokens_are_refused(client: httpx.AsyncClient) -> None:
    for token in [
        "agr_" + "A" * 43,  # well-formed, unknown
        "garbage",
        "agp_" + "A" * 43,  # another kind of token
        "agr_" + "x" * 200,  # too long to be ours
    ]:
        assert_problem(await refresh(client, token), 401, "invalid_token")


async def test_a_disabled_account_cannot_refresh(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """An operator disabling the account (is_active=false) stops its sessions from refreshing."""
    account = await factory.account()
    uid = await user_id(client, account)
    async with runtime.sessionmaker() as db:
        await db.execute(update(User).where(User.id == uid).values(is_active=False))
        await db.commit()
    assert_problem(await refresh(client, account.refresh_token), 401, "invalid_token")
    # A change made behind the service's back (raw SQL) reaches read-only access checks within
    # AUTHGATE_ACCESS_CACHE_TTL (1 s); changes made through the service apply at once.
    deadline = asyncio.get_running_loop().time() + runtime.settings.access_cache_ttl + 0.5
    while (response := await me(client, account.access_token)).status_code == 200:
        assert asyncio.get_running_loop().time() < deadline, "still admitted after the cache TTL"
        await asyncio.sleep(0.05)
    assert_problem(response, 401, "invalid_token")


# -- the OAuth2 token endpoint ------------------------------------------------------------------


async def token_endpoint(client: httpx.AsyncClient, **form: str) -> httpx.Response:
    return await client.post(f"{API}/auth/token", data=form)


def assert_oauth_error(response: httpx.Response, error: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error
    assert set(body) <= {"error", "error_description", "error_uri"}
    assert_no_store(response)


async def test_token_endpoint_refresh_grant(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await factory.account()
    uid = await user_id(client, account)
    response = await token_endpoint(
        client, grant_type="refresh_token", refresh_token=account.refresh_token
    )
    assert response.status_code == 200, response.text
    assert_no_store(response)
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] > 0
    assert body["refresh_token"] != account.refresh_token
    assert (await me(client, body["access_token"])).status_code == 200

    # A replay through the token endpoint is reuse too, reported the RFC 6749 way.
    replay = await token_endpoint(
        client, grant_type="refresh_token", refresh_token=account.refresh_token
    )
    assert_oauth_error(replay, "invalid_grant")
    assert await audit_count(runtime, "refresh_reuse_detected", user_id=uid) == 1
    assert_problem(await me(client, body["access_token"]), 401, "invalid_token")

    assert_oauth_error(
        await token_endpoint(client, grant_type="refresh_token", refresh_token="agr_nope"),
        "invalid_grant",
    )
    assert_oauth_error(await token_endpoint(client, grant_type="refresh_token"), "invalid_request")
    assert_oauth_error(
        await token_endpoint(client, grant_type="client_credentials"), "unsupported_grant_type"
    )


async def test_token_endpoint_password_grant(factory: Factory, client: httpx.AsyncClient) -> None:
    account = await factory.account()
    response = await token_endpoint(
        client, grant_type="password", username=account.email, password=account.password
    )
    assert response.status_code == 200, response.text
    assert_no_store(response)
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["refresh_token"].startswith("agr_")
    assert (await me(client, body["access_token"])).status_code == 200

    wrong = await token_endpoint(
        client, grant_type="password", username=account.email, password="not the password at all"
    )
    unknown = await token_endpoint(
        client, grant_type="password", username="nobody@example.com", password=account.password
    )
    assert_oauth_error(wrong, "invalid_grant")
    assert_oauth_error(unknown, "invalid_grant")
    assert wrong.json() == unknown.json()
    assert_oauth_error(
        await token_endpoint(client, grant_type="password", username=account.email),
        "invalid_request",
    )


# -- the grace window ---------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [GRACE], ids=["grace5"])
async def test_replay_inside_the_grace_window_returns_the_same_pair(
    factory: Factory,
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings_overrides: dict[str, Any],
) -> None:
    account = await factory.account()
    uid = await user_id(client, account)
    first = await refresh(client, account.refresh_token)
    assert first.status_code == 200, first.text
    with shifted(timedelta(seconds=3)):
        replay = await refresh(client, account.refresh_token)
    assert replay.status_code == 200, replay.text
    assert_no_store(replay)
    assert replay.json()["refresh_token"] == first.json()["refresh_token"]
    assert replay.json()["access_token"] == first.json()["access_token"]
    assert await successors_of(runtime, account.refresh_token) == 1
    assert await audit_count(runtime, "refresh_reuse_detected", user_id=uid) == 0

    # The session is intact: the successor works and rotates normally.
    assert (await me(client, first.json()["access_token"])).status_code == 200
    assert (await refresh(client, first.json()["refresh_token"])).status_code == 200


@pytest.mark.parametrize("settings_overrides", [GRACE], ids=["grace5"])
async def test_replay_after_the_successor_was_used_is_reuse(
    factory: Factory,
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings_overrides: dict[str, Any],
) -> None:
    account = await factory.account()
    uid = await user_id(client, account)
    rt2 = (await refresh(client, account.refresh_token)).json()["refresh_token"]
    third = await refresh(client, rt2)
    assert third.status_code == 200, third.text

    assert_problem(await refresh(client, account.refresh_token), 401, "invalid_token")
    assert await audit_count(runtime, "refresh_reuse_detected", user_id=uid) == 1
    assert_problem(await refresh(client, third.json()["refresh_token"]), 401, "invalid_token")
    assert_problem(await me(client, third.json()["access_token"]), 401, "invalid_token")


@pytest.mark.parametrize("settings_overrides", [GRACE], ids=["grace5"])
async def test_replay_after_the_grace_window_is_reuse(
    factory: Factory,
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings_overrides: dict[str, Any],
) -> None:
    account = await factory.account()
    uid = await user_id(client, account)
    second = (await refresh(client, account.refresh_token)).json()
    with shifted(timedelta(seconds=6)):
        assert_problem(await refresh(client, account.refresh_token), 401, "invalid_token")
        assert await audit_count(runtime, "refresh_reuse_detected", user_id=uid) == 1
        assert_problem(await refresh(client, second["refresh_token"]), 401, "invalid_token")
        assert_problem(await me(client, second["access_token"]), 401, "invalid_token")


# -- session lifetimes --------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [LIFETIMES], ids=["10d-2d"])
async def test_absolute_lifetime_ends_a_session_refreshed_every_day(
    factory: Factory, client: httpx.AsyncClient, settings_overrides: dict[str, Any]
) -> None:
    account = await factory.account()
    token = account.refresh_token
    with ExitStack() as stack:
        for day in range(1, 10):
            stack.enter_context(shifted(timedelta(days=1)))
            response = await refresh(client, token)
            assert response.status_code == 200, f"day {day}: {response.text}"
            pair = response.json()
            # A refresh never extends the session: what is left shrinks day by day.
            assert pair["refresh_token_expires_in"] <= (10 - day) * 86400
            assert (await me(client, pair["access_token"])).status_code == 200
            token = pair["refresh_token"]
        stack.enter_context(shifted(timedelta(days=1)))
        assert_problem(await refresh(client, token), 401, "invalid_token")


@pytest.mark.parametrize("settings_overrides", [LIFETIMES], ids=["10d-2d"])
async def test_idle_session_expires(
    factory: Factory, client: httpx.AsyncClient, settings_overrides: dict[str, Any]
) -> None:
    account = await factory.account()
    with shifted(timedelta(days=2) - timedelta(minutes=1)):
        response = await refresh(client, account.refresh_token)
        assert response.status_code == 200, response.text
        token = response.json()["refresh_token"]
        with shifted(timedelta(days=2, seconds=1)):
            assert_problem(await refresh(client, token), 401, "invalid_token")


# -- secrets at rest and in logs ----------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{}, GRACE], ids=["grace0", "grace5"])
async def test_no_raw_refresh_token_in_the_database_or_logs(
    flows: Flows,
    factory: Factory,
    client: httpx.AsyncClient,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
    settings_overrides: dict[str, Any],
) -> None:
    seen: list[str] = []
    with authgate_logs(caplog) as records:
        account = await factory.account()
        seen.append(account.refresh_token)
        second = (await refresh(client, account.refresh_token)).json()["refresh_token"]
        seen.append(second)
        replay = await refresh(client, account.refresh_token)  # grace replay or reuse
        if replay.status_code == 200:
            seen.append(replay.json()["refresh_token"])
        other = (await flows.login(account.email)).json()["refresh_token"]
        seen.append(other)
        form = await token_endpoint(client, grant_type="refresh_token", refresh_token=other)
        seen.append(form.json()["refresh_token"])
        await client.post(
            f"{API}/auth/logout", json={"refresh_token": form.json()["refresh_token"]}
        )
    assert records, "the authgate logger recorded nothing: the capture is broken"
    assert await scan_columns(runtime, seen) == []
    assert scan_logs(records, seen) == []
