"""Concurrent refreshes of one token: real parallel requests, each with its own DB connection.

``asyncio.gather`` over the ASGI client runs the requests interleaved on one loop; every request
opens its own unit of work (its own pooled connection), so the database sees truly concurrent
transactions. On PostgreSQL they race on the refresh token's row; SQLite serialises writers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from authgate.runtime import Runtime
from tests.support.db import audit_count, row_count, successors_of
from tests.support.factories import Factory
from tests.support.flows import Flows
from tests.support.mail import SmtpSink

API = "/api/v1"
N = 50


async def storm(client: httpx.AsyncClient, token: str, n: int = N) -> list[httpx.Response]:
    return list(
        await asyncio.gather(
            *(client.post(f"{API}/auth/refresh", json={"refresh_token": token}) for _ in range(n))
        )
    )


async def user_id(client: httpx.AsyncClient, access_token: str) -> uuid.UUID:
    response = await client.get(
        f"{API}/users/me", headers={"Authorization": f"Bearer {access_token}"}
    )
    assert response.status_code == 200, response.text
    return uuid.UUID(response.json()["id"])


async def test_concurrent_refresh_without_grace_has_exactly_one_winner(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await factory.account()
    uid = await user_id(client, account.access_token)

    responses = await storm(client, account.refresh_token)

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 401: N - 1}, statuses
    for response in responses:
        if response.status_code == 401:
            assert response.json()["code"] == "invalid_token"
            assert response.headers["www-authenticate"].startswith("Bearer")
    # Nothing half-written: one successor, and the racing replays count as one reuse incident
    # (the session is revoked once, the user is told once).
    assert await successors_of(runtime, account.refresh_token) == 1
    assert await audit_count(runtime, "refresh_reuse_detected", user_id=uid) == 1
    assert await audit_count(runtime, "refresh", user_id=uid) == 1
    assert (
        await row_count(runtime, "email_outbox", user_id=uid, template="session_reuse_revoked") == 1
    )
    # Without a grace window the losers are replays of a spent token: the session is over.
    winner = next(r for r in responses if r.status_code == 200).json()
    again = await client.post(
        f"{API}/auth/refresh", json={"refresh_token": winner["refresh_token"]}
    )
    assert again.status_code == 401


@pytest.mark.postgres_only
@pytest.mark.parametrize("settings_overrides", [{"refresh_reuse_grace": 5}], ids=["grace5"])
async def test_concurrent_refresh_inside_the_grace_window_all_get_the_same_pair(
    factory: Factory,
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings_overrides: dict[str, Any],
) -> None:
    account = await factory.account()
    uid = await user_id(client, account.access_token)

    responses = await storm(client, account.refresh_token)

    assert [r.status_code for r in responses] == [200] * N, [
        r.text for r in responses if r.status_code != 200
    ]
    refresh_tokens = {r.json()["refresh_token"] for r in responses}
    access_tokens = {r.json()["access_token"] for r in responses}
    assert len(refresh_tokens) == 1
    assert len(access_tokens) == 1  # EdDSA signatures are deterministic
    assert refresh_tokens != {account.refresh_token}
    assert await successors_of(runtime, account.refresh_token) == 1
    assert await row_count(runtime, "refresh_tokens") == 2
    assert await audit_count(runtime, "refresh_reuse_detected", user_id=uid) == 0

    (pair,) = {(r.json()["access_token"], r.json()["refresh_token"]) for r in responses}
    assert (await user_id(client, pair[0])) == uid
    onward = await client.post(f"{API}/auth/refresh", json={"refresh_token": pair[1]})
    assert onward.status_code == 200, onward.text


async def test_concurrent_use_of_one_reset_token_changes_the_password_once(
    flows: Flows, client: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    account = await flows.signed_up()
    assert (
        await client.post(f"{API}/auth/password/forgot", json={"email": account.email})
    ).status_code == 202
    mails = await smtp_sink.wait_for(account.email, 3)  # verify, welcome, reset
    token = next(m for m in mails if "/reset-password?token=" in m.text).token("/reset-password")

    passwords = [f"racing passphrase number {i:02d}" for i in range(10)]
    responses = await asyncio.gather(
        *(
            client.post(
                f"{API}/auth/password/reset", json={"token": token, "new_password": password}
            )
            for password in passwords
        )
    )

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {204: 1, 400: len(passwords) - 1}, statuses
    winner = passwords[[r.status_code for r in responses].index(204)]
    for password in passwords:
        login = await flows.login(account.email, password)
        assert login.status_code == (200 if password == winner else 401), password


async def test_two_accounts_confirming_a_change_to_the_same_address_at_once(
    factory: Factory, client: httpx.AsyncClient, smtp_sink: SmtpSink, runtime: Runtime
) -> None:
    """Uniqueness holds under a race: one confirmation wins, the other is a clean 400."""
    target = "wanted-by-two@example.com"
    first, second = await factory.account(), await factory.account()
    for account in (first, second):
        response = await client.post(
            f"{API}/users/me/email",
            json={"new_email": target, "password": account.password},
            headers=account.auth,
        )
        assert response.status_code == 202, response.text
    links = await smtp_sink.wait_for(target, 2)
    tokens = [m.token("/verify-email") for m in links]
    assert len(set(tokens)) == 2

    responses = await asyncio.gather(
        *(client.post(f"{API}/auth/verify-email", json={"token": t}) for t in tokens)
    )

    assert sorted(r.status_code for r in responses) == [200, 400], [r.text for r in responses]
    loser = next(r for r in responses if r.status_code == 400)
    assert loser.json()["code"] == "invalid_token"
    assert await row_count(runtime, "users", email_key=target) == 1
    emails = {
        (await client.get(f"{API}/users/me", headers=a.auth)).json()["email"]
        for a in (first, second)
    }
    assert emails in ({target, first.email}, {target, second.email})
