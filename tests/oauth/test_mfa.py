"""A provider sign-in of an account with TOTP on stops at ``mfa_required`` like a password one,
and the second factor opens the provider sign-in's session."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select

from authgate.models import AuditEvent, AuthSession, User
from authgate.runtime import Runtime
from tests.support.api import API, amr_of, assert_problem, me
from tests.support.db import audit_count
from tests.support.factories import Factory
from tests.support.mfa import totp_code, verify
from tests.support.oauth import Browser, OidcServer, new_sub


async def test_a_provider_sign_in_needs_the_second_factor(
    browser: Browser,
    client: httpx.AsyncClient,
    idp: OidcServer,
    runtime: Runtime,
    factory: Factory,
) -> None:
    sub = new_sub()
    idp.next_user(sub, "totp-user@example.com")
    await browser.tokens()  # the account, made by a first sign-in
    async with runtime.sessionmaker() as db:
        user = (await db.scalars(select(User).where(User.email == "totp-user@example.com"))).one()
    enrolled = await factory.totp(user)

    idp.next_user(sub, "totp-user@example.com")
    code = await browser.code()
    response = await client.post(f"{API}/oauth/token", json={"code": code})
    assert_problem(response, 403, "mfa_required")
    body = response.json()
    assert body["methods"] == ["totp", "recovery_code"]
    token = body["mfa_token"]
    # The one-time code stays spent: it cannot be redeemed again for a session.
    assert_problem(
        await client.post(f"{API}/oauth/token", json={"code": code}), 400, "invalid_token"
    )
    sessions_before = await _sessions(runtime, user.id)

    signed_in = await verify(client, token, totp_code(enrolled.secret))
    assert signed_in.status_code == 200, signed_in.text
    assert (await me(client, signed_in.json()["access_token"])).status_code == 200
    sessions = await _sessions(runtime, user.id)
    assert len(sessions) == len(sessions_before) + 1
    assert {s.auth_method for s in sessions} == {"oauth:test"}
    assert amr_of(signed_in.json()["access_token"]) == ["fed", "otp", "mfa"]
    async with runtime.sessionmaker() as db:
        details = (
            await db.scalars(
                select(AuditEvent.detail).where(
                    AuditEvent.user_id == user.id, AuditEvent.type == "login_succeeded"
                )
            )
        ).all()
    assert {"method": "oauth:test", "second_factor": "totp"} in details
    assert await audit_count(runtime, "mfa_required", user_id=user.id) == 1


async def _sessions(runtime: Runtime, user_id: uuid.UUID) -> list[AuthSession]:
    async with runtime.sessionmaker() as db:
        return list(
            (await db.scalars(select(AuthSession).where(AuthSession.user_id == user_id))).all()
        )
