"""A provider sign-in is a sign-in like any other: its session's ``amr`` is ``["fed"]`` and a new
IP address + User-Agent pair of a returning account queues one ``new_sign_in`` mail."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from authgate.models import User
from authgate.runtime import Runtime
from tests.support.api import mail_with_subject
from tests.support.db import row_count
from tests.support.mail import SmtpSink
from tests.support.oauth import Browser, OidcServer, new_sub


def amr_of(access_token: str) -> Any:
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["amr"]


async def alerts(runtime: Runtime, user_id: uuid.UUID) -> int:
    return await row_count(runtime, "email_outbox", user_id=user_id, template="new_sign_in")


async def test_a_provider_sign_in_from_a_new_pair_sends_one_alert(
    browser: Browser,
    client: httpx.AsyncClient,
    idp: OidcServer,
    runtime: Runtime,
    smtp_sink: SmtpSink,
) -> None:
    sub, email = new_sub(), "grace@example.com"
    idp.next_user(sub, email)
    first = await browser.tokens()  # creates the account: its first sign-in
    assert amr_of(first["access_token"]) == ["fed"]
    async with runtime.sessionmaker() as db:
        user = (await db.execute(select(User).where(User.email == email))).scalar_one()
    assert user.last_login_at is not None
    assert await alerts(runtime, user.id) == 0

    idp.next_user(sub, email)
    await browser.tokens()  # the same browser again
    assert await alerts(runtime, user.id) == 0

    client.headers["User-Agent"] = "other-browser/3.1"
    idp.next_user(sub, email)
    third = await browser.tokens()
    assert amr_of(third["access_token"]) == ["fed"]
    assert await alerts(runtime, user.id) == 1
    mail = await mail_with_subject(smtp_sink, email, "New sign-in")
    assert "other-browser/3.1" in mail.text and "203.0.113.7" in mail.text

    sessions = await client.get(
        "/api/v1/sessions", headers={"Authorization": f"Bearer {third['access_token']}"}
    )
    assert [s["amr"] for s in sessions.json()] == [["fed"]] * 3
