"""The second factor and the per-account sign-in throttle (limits on, in-process store): wrong
codes are failed sign-ins, a right password does not clear the count while the second factor
is pending, and the password re-confirmations of the MFA routes count like logins."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.api import API, assert_problem
from tests.support.factories import Factory
from tests.support.flows import TEST_PASSWORD
from tests.support.mfa import enrol, mfa_token, totp_code, verify, wrong_code


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # Only the throttle's delays refuse here (from the 6th consecutive failure on).
    generous = "1000/minute"
    return {
        "rate_limits_enabled": True,
        "rate_limits": {
            "login_ip": generous,
            "login_account": generous,
            "mfa_verify_ip": generous,
            "email_recipient": generous,
        },
    }


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(f"{API}/auth/login", json={"email": email, "password": password})


async def test_wrong_codes_are_failed_sign_ins_that_a_right_password_does_not_clear(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    user = await factory.user()
    enrolled = await factory.totp(user)
    for i in range(5):  # free failures
        assert_problem(
            await login(client, user.email, f"guess {i} xxxxxxxx"), 401, "invalid_credentials"
        )
    # The right password: 403, and the five failures stay counted ...
    token = await mfa_token(client, user.email)
    # ... so one wrong code is the 6th consecutive failure, which starts a delay.
    assert_problem(await verify(client, token, wrong_code(enrolled.secret)), 400, "invalid_code")
    refused = await login(client, user.email, TEST_PASSWORD)
    assert_problem(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1
    assert_problem(await verify(client, token, totp_code(enrolled.secret)), 429, "rate_limited")


async def test_a_right_second_factor_clears_the_count(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    user = await factory.user()
    enrolled = await factory.totp(user)
    for i in range(4):
        assert_problem(
            await login(client, user.email, f"guess {i} xxxxxxxx"), 401, "invalid_credentials"
        )
    token = await mfa_token(client, user.email)
    assert (await verify(client, token, totp_code(enrolled.secret))).status_code == 200
    # Counted from zero again: five more failures are free.
    for i in range(5):
        assert_problem(
            await login(client, user.email, f"again {i} xxxxxxxx"), 401, "invalid_credentials"
        )


async def test_wrong_passwords_and_codes_of_the_mfa_routes_count_in_the_throttle(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    enrolled = await enrol(client, account)
    code = totp_code(enrolled.secret, 1)

    async def disable(password: str, code: str) -> httpx.Response:
        return await client.request(
            "DELETE",
            f"{API}/users/me/mfa/totp",
            json={"password": password, "code": code},
            headers=account.auth,
        )

    for i in range(3):
        assert_problem(await disable(f"guess {i} xxxxxxxx", code), 400, "invalid_password")
    for _ in range(2):  # the right password with a wrong code fails the attempt too
        assert_problem(
            await disable(account.password, wrong_code(enrolled.secret)), 400, "invalid_code"
        )
    regenerate = await client.post(
        f"{API}/users/me/mfa/recovery-codes",
        json={"password": "guess 6 xxxxxxxx", "code": code},
        headers=account.auth,
    )
    assert_problem(regenerate, 400, "invalid_password")  # the 6th: a delay starts
    assert_problem(await disable(account.password, code), 429, "rate_limited")
    assert_problem(await login(client, account.email, account.password), 429, "rate_limited")
