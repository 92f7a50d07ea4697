"""An administrator removes a user's second factor (a lost authenticator), and sees who has one."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from authgate.models import AuditEvent
from authgate.runtime import Runtime
from tests.support.api import API, assert_problem, mail_with_subject
from tests.support.db import row_count
from tests.support.factories import Factory
from tests.support.flows import TEST_PASSWORD
from tests.support.mail import SmtpSink
from tests.support.mfa import mfa_token, totp_code, verify

ADMIN = f"{API}/admin"


async def test_admin_reset_removes_totp_and_recovery_codes(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    admin = await factory.account(is_superuser=True)
    user = await factory.user(name="Ada")
    enrolled = await factory.totp(user)
    pending = await mfa_token(client, user.email)

    shown = await client.get(f"{ADMIN}/users/{user.id}", headers=admin.auth)
    assert (shown.json()["mfa"], shown.json()["recovery_codes_left"]) == (True, 10)
    listed = await client.get(f"{ADMIN}/users", params={"q": user.email}, headers=admin.auth)
    (item,) = listed.json()["items"]
    assert (item["mfa"], item["recovery_codes_left"]) == (True, 10)

    member = await factory.account()
    forbidden = await client.delete(f"{ADMIN}/users/{user.id}/mfa", headers=member.auth)
    assert_problem(forbidden, 403, "forbidden")

    response = await client.delete(f"{ADMIN}/users/{user.id}/mfa", headers=admin.auth)
    assert response.status_code == 204, response.text
    assert await row_count(runtime, "totp_secrets", user_id=user.id) == 0
    assert await row_count(runtime, "recovery_codes", user_id=user.id) == 0
    shown = await client.get(f"{ADMIN}/users/{user.id}", headers=admin.auth)
    assert (shown.json()["mfa"], shown.json()["recovery_codes_left"]) == (False, 0)
    mail = await mail_with_subject(smtp_sink, user.email, "Two-step sign-in is off")
    assert "administrator" in mail.text
    async with runtime.sessionmaker() as db:
        (event,) = (
            await db.scalars(
                select(AuditEvent).where(
                    AuditEvent.user_id == user.id, AuditEvent.type == "mfa_disabled"
                )
            )
        ).all()
    assert event.detail is not None
    assert event.detail["by"] == "admin" and event.detail["was_on"] is True

    # The password alone signs in now; a challenge from before is dead.
    login = await client.post(
        f"{API}/auth/login", json={"email": user.email, "password": TEST_PASSWORD}
    )
    assert login.status_code == 200, login.text
    assert_problem(await verify(client, pending, totp_code(enrolled.secret)), 400, "invalid_token")

    # Idempotent: 204 again, no second notice.
    again = await client.delete(f"{ADMIN}/users/{user.id}/mfa", headers=admin.auth)
    assert again.status_code == 204
    unknown = await client.delete(
        f"{ADMIN}/users/00000000-0000-0000-0000-000000000000/mfa", headers=admin.auth
    )
    assert_problem(unknown, 404, "not_found")
    notices = [m for m in smtp_sink.to(user.email) if "Two-step sign-in is off" in m.subject]
    assert len(notices) == 1
