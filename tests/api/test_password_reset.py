"""Forgot password and reset: single-use links that end every session and never sign in."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import httpx
import pytest

from authgate.core.time import shifted
from authgate.runtime import Runtime
from tests.support.api import assert_problem, bearer, me, shape
from tests.support.db import audit_count, authgate_logs, row_count, scan_columns, scan_logs
from tests.support.factories import Factory
from tests.support.flows import Account, Flows
from tests.support.mail import SmtpSink

API = "/api/v1"
NEW_PASSWORD = "a brand new and long passphrase"


async def forgot(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post(f"{API}/auth/password/forgot", json={"email": email})


async def reset(client: httpx.AsyncClient, token: str, new_password: str) -> httpx.Response:
    return await client.post(
        f"{API}/auth/password/reset", json={"token": token, "new_password": new_password}
    )


async def reset_tokens(
    sink: SmtpSink, address: str, count: int, timeout: float = 10.0
) -> list[str]:
    """The tokens of the reset links mailed to ``address``, oldest first, once ``count`` arrived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mails = [m for m in sink.to(address) if "/reset-password?token=" in m.text]
        if len(mails) >= count:
            return [m.token("/reset-password") for m in mails]
        await asyncio.sleep(0.02)
    raise AssertionError(f"{address} did not get {count} reset links")


async def request_reset(client: httpx.AsyncClient, sink: SmtpSink, email: str, nth: int = 1) -> str:
    response = await forgot(client, email)
    assert response.status_code == 202, response.text
    return (await reset_tokens(sink, email, nth))[nth - 1]


async def can_login(flows: Flows, email: str, password: str) -> bool:
    response = await flows.login(email, password)
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


async def test_reset_changes_the_password_ends_every_session_and_does_not_sign_in(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, smtp_sink: SmtpSink, runtime: Runtime
) -> None:
    account = await factory.account()
    uid = uuid.UUID((await me(client, account.access_token)).json()["id"])
    second = (await flows.login(account.email)).json()
    third = (await flows.login(account.email)).json()
    rotated = (
        await client.post(f"{API}/auth/refresh", json={"refresh_token": third["refresh_token"]})
    ).json()
    access_tokens = [account.access_token, second["access_token"], rotated["access_token"]]
    refresh_tokens = [account.refresh_token, second["refresh_token"], rotated["refresh_token"]]

    token = await request_reset(client, smtp_sink, account.email)
    assert token.startswith("agp_")
    response = await reset(client, token, NEW_PASSWORD)
    assert response.status_code == 204, response.text
    assert response.content == b""  # no tokens: a reset never signs in
    assert "set-cookie" not in response.headers

    for access in access_tokens:
        assert_problem(await me(client, access), 401, "invalid_token")
    for refresh in refresh_tokens:
        refused = await client.post(f"{API}/auth/refresh", json={"refresh_token": refresh})
        assert_problem(refused, 401, "invalid_token")
    assert not await can_login(flows, account.email, account.password)
    assert await can_login(flows, account.email, NEW_PASSWORD)
    assert await audit_count(runtime, "password_reset_completed", user_id=uid) == 1

    notice = await smtp_sink.wait_for(account.email, 1)
    deadline = time.monotonic() + 10
    while not any("password was changed" in m.subject for m in notice):
        assert time.monotonic() < deadline, [m.subject for m in notice]
        await asyncio.sleep(0.02)
        notice = smtp_sink.to(account.email)


async def test_a_reset_token_works_once_and_not_after_it_expired(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    account = await factory.account()
    token = await request_reset(client, smtp_sink, account.email)
    assert (await reset(client, token, NEW_PASSWORD)).status_code == 204
    assert_problem(await reset(client, token, "yet another long passphrase"), 400, "invalid_token")
    assert await can_login(flows, account.email, NEW_PASSWORD)

    late = await request_reset(client, smtp_sink, account.email, nth=2)
    with shifted(timedelta(seconds=1800 + 1)):
        assert_problem(
            await reset(client, late, "yet another long passphrase"), 400, "invalid_token"
        )
    assert await can_login(flows, account.email, NEW_PASSWORD)


async def test_a_newer_token_supersedes_the_older_one(
    factory: Factory, client: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    account = await factory.account()
    older = await request_reset(client, smtp_sink, account.email, nth=1)
    newer = await request_reset(client, smtp_sink, account.email, nth=2)
    assert older != newer
    assert_problem(await reset(client, older, NEW_PASSWORD), 400, "invalid_token")
    assert (await reset(client, newer, NEW_PASSWORD)).status_code == 204


async def test_a_password_change_kills_outstanding_reset_tokens(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    account = await factory.account()
    token = await request_reset(client, smtp_sink, account.email)
    changed = await client.post(
        f"{API}/users/me/password",
        json={"current_password": account.password, "new_password": NEW_PASSWORD},
        headers=bearer(account.access_token),
    )
    assert changed.status_code == 200, changed.text
    assert_problem(
        await reset(client, token, "an attacker chosen passphrase"), 400, "invalid_token"
    )
    assert await can_login(flows, account.email, NEW_PASSWORD)


async def test_a_token_of_one_user_never_changes_another_users_password(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    alice = await factory.account()
    bob = await factory.account()
    alice_token = await request_reset(client, smtp_sink, alice.email)
    bob_token = await request_reset(client, smtp_sink, bob.email)

    # Naming the other account is not even accepted.
    smuggled = await client.post(
        f"{API}/auth/password/reset",
        json={"token": alice_token, "new_password": NEW_PASSWORD, "email": bob.email},
    )
    assert_problem(smuggled, 422, "validation_error")

    assert (await reset(client, alice_token, NEW_PASSWORD)).status_code == 204
    assert await can_login(flows, alice.email, NEW_PASSWORD)
    assert await can_login(flows, bob.email, bob.password)
    assert not await can_login(flows, bob.email, NEW_PASSWORD)
    assert (await me(client, bob.access_token)).status_code == 200

    # Bob's own link is untouched by Alice's reset.
    assert (await reset(client, bob_token, "bob picks his own passphrase")).status_code == 204
    assert await can_login(flows, bob.email, "bob picks his own passphrase")
    assert await can_login(flows, alice.email, NEW_PASSWORD)


async def test_a_password_refused_by_the_policy_leaves_the_token_usable(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    account = await factory.account()
    token = await request_reset(client, smtp_sink, account.email)
    # Too short, the user's own address, a well-known password.
    for weak in ("short", account.email, "12345678901234567890"):
        refused = await reset(client, token, weak)
        assert refused.status_code == 422, f"{weak!r}: {refused.text}"
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert (await me(client, account.access_token)).status_code == 200  # nothing happened yet
    assert (await reset(client, token, NEW_PASSWORD)).status_code == 204
    assert await can_login(flows, account.email, NEW_PASSWORD)


async def test_bad_tokens_are_refused(
    flows: Flows, factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    for token in ("agp_" + "Q" * 43, "garbage", "agv_" + "Q" * 43, account.refresh_token, ""):
        assert_problem(await reset(client, token, NEW_PASSWORD), 400, "invalid_token")
    assert await can_login(flows, account.email, account.password)


async def test_forgot_password_answers_the_same_for_every_address(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await factory.account()
    existing = await forgot(client, account.email)
    unknown = await forgot(client, "nobody-here@example.com")
    shouting = await forgot(client, account.email.upper())
    malformed = await forgot(client, "not an address")
    assert existing.status_code == 202
    for response in (unknown, shouting, malformed):
        assert shape(response) == shape(existing)
    # The requests are queued as outbox jobs; the dispatcher issues the links after the answer.
    deadline = time.monotonic() + 10
    while await row_count(runtime, "email_outbox", template="password_reset") < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # the other two jobs are done by now too
    assert await row_count(runtime, "email_outbox", template="password_reset") == 2
    assert await row_count(runtime, "email_outbox", to_address="nobody-here@example.com") == 0


async def test_no_raw_reset_token_in_the_database_or_logs(
    factory: Factory,
    client: httpx.AsyncClient,
    smtp_sink: SmtpSink,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with authgate_logs(caplog) as records:
        account: Account = await factory.account()
        first = await request_reset(client, smtp_sink, account.email, nth=1)
        second = await request_reset(client, smtp_sink, account.email, nth=2)
        await reset(client, first, NEW_PASSWORD)  # superseded
        await reset(client, second, "short")  # refused by the policy
        assert (await reset(client, second, NEW_PASSWORD)).status_code == 204
        await reset(client, second, NEW_PASSWORD)  # spent
    assert records, "the authgate logger recorded nothing: the capture is broken"
    assert await scan_columns(runtime, [first, second]) == []
    assert scan_logs(records, [first, second]) == []


async def test_a_reset_proves_the_address_of_an_unverified_account(
    flows: Flows, client: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    """The reset link reached the mailbox: the account is verified by it, and the sign-up link
    of whoever registered the address before stops working."""
    email = flows.new_email()
    await flows.register(email, "someone else's password, long enough")
    signup_link = await flows.verification_token(email)
    token = await request_reset(client, smtp_sink, email)
    assert (await reset(client, token, NEW_PASSWORD)).status_code == 204
    assert await can_login(flows, email, NEW_PASSWORD)
    stale = await client.post(f"{API}/auth/verify-email", json={"token": signup_link})
    assert_problem(stale, 400, "invalid_token")
