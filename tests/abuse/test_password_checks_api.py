"""Issue 11 through the HTTP API (Redis store, limits on): password re-confirmations count in the
sign-in throttle; strangers' guesses never lock the owner out of a known device or after a
reset; email change cannot be used as a mail relay."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from authgate.runtime import Runtime
from tests.support.api import assert_problem, bearer, mail_with_subject
from tests.support.factories import Factory
from tests.support.flows import TEST_PASSWORD, Account, Flows
from tests.support.mail import SmtpSink
from tests.support.servers import RedisServer

API = "/api/v1"
OWNER_UA = (
    "pytest-agent/1.0"  # the test client's User-Agent: every flows.signed_up signs in with it
)
NEW_PASSWORD = "a brand new and long passphrase"


@pytest.fixture
def settings_overrides(redis_srv: RedisServer, request: pytest.FixtureRequest) -> dict[str, Any]:
    limits = {
        # Below the 6 failures that start the first delay: whatever refuses here is the window,
        # which does not expire while a test runs (delays of a second could).
        "login_account": "6/15minutes",
        "login_ip": "1000/minute",
        "register_ip": "1000/minute",
        "forgot_password_ip": "1000/minute",
        "forgot_password_email": "1000/minute",
        "token_consume_ip": "1000/minute",
        "change_password_account": "1000/minute",
        "email_change_user": "5/hour",
        "email_change_recipient": "3/hour",
        "email_recipient": "1000/hour",
    }
    limits.update(getattr(request, "param", {}))
    return {
        "redis_url": redis_srv.url,
        "rate_limits_enabled": True,
        "rate_limits": limits,
        # The test client's peer: its X-Forwarded-For is believed, so guesses can rotate IPs.
        "trusted_proxies": ["203.0.113.7/32"],
    }


def stranger(i: int, agent: str = "guesser/1.0") -> dict[str, str]:
    return {"X-Forwarded-For": f"198.51.100.{i % 250 + 1}", "User-Agent": agent}


async def login(
    client: httpx.AsyncClient, email: str, password: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(
        f"{API}/auth/login", json={"email": email, "password": password}, headers=headers
    )


async def change_email(
    client: httpx.AsyncClient,
    account: Account,
    new_email: str,
    password: str,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.post(
        f"{API}/users/me/email",
        json={"new_email": new_email, "password": password},
        headers={**bearer(account.access_token), **(headers or {})},
    )


async def delete_me(
    client: httpx.AsyncClient, account: Account, password: str, headers: dict[str, str]
) -> httpx.Response:
    return await client.request(
        "DELETE",
        f"{API}/users/me",
        json={"password": password},
        headers={**bearer(account.access_token), **headers},
    )


def assert_rate_limited(response: httpx.Response) -> None:
    assert_problem(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) >= 1


# -- A: re-confirmations of the password ---------------------------------------------------------


async def test_password_guesses_through_change_email_and_delete_are_throttled(
    flows: Flows, client: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    """The attack: a stolen access token used from elsewhere to guess the password through the
    two endpoints that re-confirm it, 25 + 25 times, hoping for 400s to the end."""
    account = await flows.signed_up()
    thief = stranger(1, "thief/1.0")
    statuses = []
    for i in range(25):
        response = await change_email(
            client, account, "t@example.net", f"guess {i:02d} xxxx", thief
        )
        statuses.append(response.status_code)
    for i in range(25):
        response = await delete_me(client, account, f"guess {i + 25:02d} xxxx", thief)
        statuses.append(response.status_code)
    # login_account = 6, one of them used by the sign-in
    assert statuses[:5] == [400] * 5, statuses
    assert set(statuses[5:]) == {429}, statuses
    assert_rate_limited(await delete_me(client, account, "one more guess xxxx", thief))

    # The right password does not get through either while throttled: no mail, no deletion.
    right = await change_email(client, account, "t@example.net", account.password, thief)
    assert_rate_limited(right)
    assert_rate_limited(await delete_me(client, account, account.password, thief))
    # It is the account's sign-in throttle: a login from there is refused as well ...
    assert_rate_limited(await login(client, account.email, account.password, thief))
    # ... and the owner, on the device they signed in with, is not.
    assert (await login(client, account.email, account.password)).status_code == 200
    await asyncio.sleep(0.3)
    assert smtp_sink.to("t@example.net") == []


async def test_login_guesses_throttle_the_re_confirmations_too(
    flows: Flows, client: httpx.AsyncClient
) -> None:
    account = await flows.signed_up()
    for i in range(5):
        guess = await login(client, account.email, f"guess {i:02d} xxxx", stranger(i))
        assert guess.status_code == 401
    thief = stranger(99, "thief/1.0")
    assert_rate_limited(await change_email(client, account, "t@example.net", "x" * 20, thief))
    assert_rate_limited(await delete_me(client, account, "x" * 20, thief))
    changed = await client.post(
        f"{API}/users/me/password",
        json={"current_password": "x" * 20, "new_password": NEW_PASSWORD},
        headers={**bearer(account.access_token), **thief},
    )
    assert_rate_limited(changed)


async def test_the_current_address_is_refused_before_the_password_is_checked(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    account = await factory.account()
    for password in (account.password, "not my password xxxx"):
        for spelling in (account.email, account.email.upper()):
            response = await change_email(client, account, spelling, password, stranger(1))
            assert_problem(response, 422, "validation_error")
            assert response.json()["errors"][0]["loc"] == ["body", "new_email"]
    # No password was evaluated: the throttle saw nothing (5 wrong ones still answer 400).
    for i in range(5):
        wrong = await change_email(
            client, account, "x@example.net", f"guess {i} xxxxx", stranger(1)
        )
        assert_problem(wrong, 400, "invalid_password")
    await asyncio.sleep(0.3)
    assert [m.subject for m in smtp_sink.to(account.email) if "being changed" in m.subject] == []


# -- B: targeted lockout -------------------------------------------------------------------------


async def test_strangers_guesses_never_lock_the_owner_out_of_a_known_device(
    flows: Flows, client: httpx.AsyncClient
) -> None:
    account = await flows.signed_up()  # signs in from 203.0.113.7 with OWNER_UA
    statuses = [
        (await login(client, account.email, f"guess {i:02d} xxxx", stranger(i))).status_code
        for i in range(30)
    ]
    assert statuses.count(401) == 5 and statuses[5:] == [429] * 25, statuses
    # Guesses keep being refused from anywhere else, whatever they send ...
    for headers in (
        stranger(200),  # another IP and agent
        stranger(201, OWNER_UA),  # the owner's agent from another IP
        {"User-Agent": "guesser/1.0"},  # the owner's IP with another agent
    ):
        assert_rate_limited(await login(client, account.email, account.password, headers))
    # ... while the owner's right password from its known device works, again and again.
    for _ in range(3):
        assert (await login(client, account.email, account.password)).status_code == 200
        for i in range(3):
            await login(client, account.email, f"more {i} xxxxxxxx", stranger(i))

    # The known device's own failures throttle it like any bucket (3 of its 6 used above).
    own = [(await login(client, account.email, f"mine {i:02d} xxxx")).status_code for i in range(5)]
    assert own == [401, 401, 401, 429, 429], own


async def test_a_completed_reset_lifts_the_account_throttle(
    factory: Factory, client: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    account = await factory.account()
    for i in range(12):
        await login(client, account.email, f"guess {i:02d} xxxx", stranger(i))
    laptop = stranger(150, "Mozilla/5.0 (laptop, never signed in)")
    assert_rate_limited(await login(client, account.email, account.password, laptop))

    phone = stranger(160, "Mozilla/5.0 (phone)")
    forgot = await client.post(
        f"{API}/auth/password/forgot", json={"email": account.email}, headers=phone
    )
    assert forgot.status_code == 202
    token = (await mail_with_subject(smtp_sink, account.email, "Reset")).token("/reset-password")
    reset = await client.post(
        f"{API}/auth/password/reset",
        json={"token": token, "new_password": NEW_PASSWORD},
        headers=phone,
    )
    assert reset.status_code == 204, reset.text
    assert (await login(client, account.email, NEW_PASSWORD, laptop)).status_code == 200

    # The attacker starts again: the browser that completed the reset still gets in.
    for i in range(12):
        await login(client, account.email, f"again {i:02d} xxxx", stranger(i))
    assert (await login(client, account.email, NEW_PASSWORD, phone)).status_code == 200


# -- D: email change as a mail relay -------------------------------------------------------------


async def test_email_change_is_limited_per_user_and_per_recipient(
    factory: Factory, client: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    spammer = await factory.account()
    helper = await factory.account()
    target = "target@example.org"
    statuses = [
        (await change_email(client, spammer, target, spammer.password)).status_code
        for _ in range(4)
    ]
    assert statuses == [202, 202, 202, 429], statuses  # email_change_recipient = 3/hour
    assert_rate_limited(await change_email(client, helper, target, helper.password))
    others = [
        (await change_email(client, spammer, f"t{i}@example.org", spammer.password)).status_code
        for i in range(3)
    ]
    assert others == [202, 429, 429], others  # email_change_user = 5/hour (4 + 1)
    await asyncio.sleep(0.3)
    assert len(smtp_sink.to(target)) == 3


@pytest.mark.parametrize(
    "settings_overrides",
    [{"email_recipient": "2/hour", "email_change_recipient": "100/hour"}],
    indirect=True,
)
async def test_the_outbox_limits_mail_per_recipient_but_never_drops_a_security_notice(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    spammer = await factory.account()
    target = "target@example.org"
    for _ in range(5):
        assert (await change_email(client, spammer, target, spammer.password)).status_code == 202
    # Every request told the owner (security notices are never limited) ...
    deadline = asyncio.get_running_loop().time() + 10
    while len([m for m in smtp_sink.to(spammer.email) if "being changed" in m.subject]) < 5:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    # ... while the target got two links and no more.
    await smtp_sink.wait_for(target, 2)
    await asyncio.sleep(0.3)
    assert len(smtp_sink.to(target)) == 2
    # Sign-up mail counts too: registering the target address now sends it nothing.
    assert (await flows.register(target, TEST_PASSWORD)).status_code == 202
    await asyncio.sleep(0.3)
    assert len(smtp_sink.to(target)) == 2
