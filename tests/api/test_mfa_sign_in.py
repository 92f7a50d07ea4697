"""Signing in to an account with TOTP on: 403 ``mfa_required`` instead of tokens, then
``POST /auth/mfa/verify`` (docs/api.md §3.9)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from authgate.core.time import shifted
from authgate.models import ActionKind, AuthSession
from authgate.runtime import Runtime
from tests.support.api import API, amr_of, assert_problem, me
from tests.support.cookies import no_refresh_cookie, refresh_by_cookie, refresh_cookie
from tests.support.db import audit_count, authgate_logs, scan_logs
from tests.support.factories import Factory
from tests.support.flows import TEST_PASSWORD, Flows
from tests.support.mfa import enrol, mfa_token, status, totp_code, verify, wrong_code


async def test_mfa_required_names_the_token_and_the_methods(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await factory.user()
    await factory.totp(user)
    response = await client.post(
        f"{API}/auth/login", json={"email": user.email, "password": TEST_PASSWORD}
    )
    assert_problem(response, 403, "mfa_required")
    body = response.json()
    assert body["methods"] == ["totp", "recovery_code"]
    assert body["mfa_token"].startswith("agm_") and len(body["mfa_token"]) >= 47
    assert response.headers["cache-control"] == "no-store"
    async with runtime.sessionmaker() as db:
        assert (await db.scalars(select(AuthSession))).all() == []  # no token issued


async def test_the_check_order_is_password_then_verified_then_second_factor(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    user = await factory.user()
    await factory.totp(user)
    wrong = await client.post(
        f"{API}/auth/login", json={"email": user.email, "password": "not the password xxx"}
    )
    assert_problem(wrong, 401, "invalid_credentials")
    unverified = await factory.user(verified=False)
    await factory.totp(unverified)
    response = await client.post(
        f"{API}/auth/login", json={"email": unverified.email, "password": TEST_PASSWORD}
    )
    assert_problem(response, 403, "email_not_verified")
    assert "mfa_token" not in response.json()


async def test_a_recovery_code_works_once_whatever_its_spelling(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await factory.user()
    enrolled = await factory.totp(user)
    codes = enrolled.recovery_codes
    spellings = [
        codes[0].upper(),  # upper case, with the dash
        codes[1].replace("-", ""),  # without it
        " " + codes[2].replace("-", " ").upper() + " ",  # spaces instead
        *codes[3:],
    ]
    for i, spelling in enumerate(spellings):
        token = await mfa_token(client, user.email)
        response = await verify(client, token, spelling, "recovery_code")
        assert response.status_code == 200, (spelling, response.text)
        pair = response.json()
        left = await status(client, _account(user.email, pair))
        assert left["recovery_codes_left"] == 9 - i
        # Used: refused in any spelling.
        for again in (codes[i], codes[i].upper(), codes[i].replace("-", "")):
            assert_problem(
                await verify(client, token, again, "recovery_code"), 400, "invalid_token"
            )
            fresh = await mfa_token(client, user.email)
            assert_problem(await verify(client, fresh, again, "recovery_code"), 400, "invalid_code")
    assert (await status(client, _account(user.email, pair)))["recovery_codes_left"] == 0
    # A TOTP code is not a recovery code, nor the reverse.
    token = await mfa_token(client, user.email)
    assert_problem(
        await verify(client, token, totp_code(enrolled.secret), "recovery_code"),
        400,
        "invalid_code",
    )
    assert_problem(await verify(client, token, codes[0], "totp"), 400, "invalid_code")
    assert await audit_count(runtime, "login_succeeded", user_id=user.id) == 10


def _account(email: str, pair: dict[str, Any]) -> Any:
    from tests.support.flows import Account

    return Account(email, TEST_PASSWORD, pair["access_token"], pair["refresh_token"])


async def test_the_token_dies_after_five_wrong_codes(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await factory.user()
    enrolled = await factory.totp(user)
    token = await mfa_token(client, user.email)
    for _ in range(5):
        assert_problem(
            await verify(client, token, wrong_code(enrolled.secret)), 400, "invalid_code"
        )
    assert_problem(await verify(client, token, totp_code(enrolled.secret)), 400, "invalid_token")
    # Each wrong code was a failed sign-in, kept although its request failed.
    assert await audit_count(runtime, "login_failed", user_id=user.id) == 5
    # The right code still works on a new sign-in: it was never accepted.
    fresh = await mfa_token(client, user.email)
    assert (await verify(client, fresh, totp_code(enrolled.secret))).status_code == 200


async def test_the_token_dies_once_used(factory: Factory, client: httpx.AsyncClient) -> None:
    user = await factory.user()
    enrolled = await factory.totp(user)
    token = await mfa_token(client, user.email)
    assert (await verify(client, token, totp_code(enrolled.secret))).status_code == 200
    response = await verify(client, token, enrolled.recovery_codes[0], "recovery_code")
    assert_problem(response, 400, "invalid_token")


async def test_the_token_dies_after_its_ttl(factory: Factory, client: httpx.AsyncClient) -> None:
    user = await factory.user()
    enrolled = await factory.totp(user)
    token = await mfa_token(client, user.email)
    with shifted(timedelta(seconds=301)):  # AUTHGATE_MFA_TOKEN_TTL defaults to 300 s
        assert_problem(
            await verify(client, token, totp_code(enrolled.secret)), 400, "invalid_token"
        )
    with shifted(timedelta(seconds=299)):
        assert (await verify(client, token, totp_code(enrolled.secret))).status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"mfa_token_ttl": 1}], ids=["ttl1"])
async def test_the_token_lifetime_is_a_setting(
    factory: Factory, client: httpx.AsyncClient, settings_overrides: dict[str, Any]
) -> None:
    user = await factory.user()
    enrolled = await factory.totp(user)
    token = await mfa_token(client, user.email)
    with shifted(timedelta(seconds=2)):
        assert_problem(
            await verify(client, token, totp_code(enrolled.secret)), 400, "invalid_token"
        )


async def test_anything_but_a_live_agm_token_is_invalid_token(
    factory: Factory, flows: Flows, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    user = await factory.user()
    enrolled = await factory.totp(user)
    link = await factory.action_token(user, ActionKind.verify_email)
    code = totp_code(enrolled.secret)
    for token in (
        account.refresh_token,  # agr_
        link,  # agv_
        "agm_" + "A" * 43,  # the shape, not a token
        "garbage",
        "",
        "agm_\u00e9\u00e9",
    ):
        response = await verify(client, token, code)
        assert_problem(response, 400, "invalid_token")
    bad_method = await client.post(
        f"{API}/auth/mfa/verify", json={"mfa_token": "agm_x", "method": "sms", "code": code}
    )
    assert_problem(bad_method, 422, "validation_error")


async def test_the_password_grant_stops_at_mfa_required_too(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    user = await factory.user()
    enrolled = await factory.totp(user)
    response = await client.post(
        f"{API}/auth/token",
        data={"grant_type": "password", "username": user.email, "password": TEST_PASSWORD},
    )
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"error", "error_description", "mfa_token"}
    assert body["error"] == "mfa_required" and body["mfa_token"].startswith("agm_")
    signed_in = await verify(client, body["mfa_token"], totp_code(enrolled.secret))
    assert signed_in.status_code == 200, signed_in.text
    # A wrong password is still the RFC 6749 invalid_grant.
    wrong = await client.post(
        f"{API}/auth/token",
        data={"grant_type": "password", "username": user.email, "password": "nope nope nope"},
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"


async def test_one_code_on_two_challenges_at_once_signs_in_once(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    user = await factory.user()
    enrolled = await factory.totp(user)
    for step in range(4):  # a few rounds, each a time-step later (a fresh code)
        with shifted(timedelta(seconds=30 * step)):
            tokens = [await mfa_token(client, user.email) for _ in range(2)]
            code = totp_code(enrolled.secret)
            responses = await asyncio.gather(*(verify(client, token, code) for token in tokens))
        statuses = Counter(r.status_code for r in responses)
        assert statuses == {200: 1, 400: 1}, [r.text for r in responses]
        loser = next(r for r in responses if r.status_code == 400)
        assert loser.json()["code"] == "invalid_code"


async def test_the_secret_never_reaches_a_log_line(
    factory: Factory, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    account = await factory.account()
    with authgate_logs(caplog) as records:
        enrolled = await enrol(client, account)
        token = await mfa_token(client, account.email)
        assert_problem(
            await verify(client, token, wrong_code(enrolled.secret)), 400, "invalid_code"
        )
        signed_in = await verify(client, token, totp_code(enrolled.secret, 1))
        assert signed_in.status_code == 200
        recovery = await mfa_token(client, account.email)
        await verify(client, recovery, enrolled.recovery_codes[0], "recovery_code")
    assert records, "nothing was logged: the scan proves nothing"
    needles = [enrolled.secret, token, recovery, *enrolled.recovery_codes]
    needles += [code.replace("-", "") for code in enrolled.recovery_codes]
    assert scan_logs(records, needles) == []


async def test_a_disabled_account_cannot_complete_its_challenge(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await factory.user()
    enrolled = await factory.totp(user)
    token = await mfa_token(client, user.email)
    async with runtime.sessionmaker() as db, db.begin():
        found = await runtime.users_repo.by_id(db, user.id)
        assert found is not None
        await runtime.users_repo.update(db, found, is_active=False)
    assert_problem(await verify(client, token, totp_code(enrolled.secret)), 400, "invalid_token")


async def test_the_second_factor_is_in_the_amr_across_refreshes(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    """TOTP: ``["pwd", "otp", "mfa"]``; a recovery code: ``["pwd", "mfa"]`` (RFC 8176), in the
    access token, after a refresh and in ``/sessions``."""
    user = await factory.user()
    enrolled = await factory.totp(user)
    by_totp = (
        await verify(client, await mfa_token(client, user.email), totp_code(enrolled.secret))
    ).json()
    by_code = (
        await verify(
            client, await mfa_token(client, user.email), enrolled.recovery_codes[0], "recovery_code"
        )
    ).json()
    assert amr_of(by_totp["access_token"]) == ["pwd", "otp", "mfa"]
    assert amr_of(by_code["access_token"]) == ["pwd", "mfa"]
    refreshed = await client.post(
        f"{API}/auth/refresh", json={"refresh_token": by_totp["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert amr_of(refreshed.json()["access_token"]) == ["pwd", "otp", "mfa"]
    listed = await client.get(
        f"{API}/sessions", headers={"Authorization": f"Bearer {by_code['access_token']}"}
    )
    assert sorted(s["amr"] for s in listed.json()) == [["pwd", "mfa"], ["pwd", "otp", "mfa"]]


async def test_a_session_opened_by_the_second_factor_works(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await factory.user()
    enrolled = await factory.totp(user)
    token = await mfa_token(client, user.email)
    pair = (await verify(client, token, totp_code(enrolled.secret))).json()
    assert (await me(client, pair["access_token"])).status_code == 200
    async with runtime.sessionmaker() as db:
        (session,) = (await db.scalars(select(AuthSession))).all()
        refreshed_user = await runtime.users_repo.by_id(db, user.id)
    assert session.auth_method == "password"
    assert refreshed_user is not None and refreshed_user.last_login_at is not None


async def test_the_second_factor_in_cookie_mode_sets_the_refresh_cookie(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    """``refresh_token_transport: "cookie"`` on ``/auth/mfa/verify`` as on ``/auth/login``; the
    403 ``mfa_required`` before it sets no cookie."""
    user = await factory.user()
    enrolled = await factory.totp(user)
    refused = await client.post(
        f"{API}/auth/login",
        json={"email": user.email, "password": TEST_PASSWORD, "refresh_token_transport": "cookie"},
    )
    assert_problem(refused, 403, "mfa_required")
    assert no_refresh_cookie(refused)
    response = await client.post(
        f"{API}/auth/mfa/verify",
        json={
            "mfa_token": refused.json()["mfa_token"],
            "method": "totp",
            "code": totp_code(enrolled.secret),
            "refresh_token_transport": "cookie",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["refresh_token"] is None
    cookie = refresh_cookie(response)
    assert cookie.value.startswith("agr_")
    assert cookie.max_age == response.json()["refresh_token_expires_in"]
    assert (await refresh_by_cookie(client, cookie.value)).status_code == 200
