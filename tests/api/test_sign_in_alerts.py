"""New sign-in alerts: a sign-in from an IP address + User-Agent pair that none of the account's
sign-ins of the last 90 days came from queues one ``new_sign_in`` mail, in the sign-in's own
transaction; the first sign-in of an account queues none."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.core.http import ClientInfo
from authgate.core.time import shifted
from authgate.housekeeping import purge_expired
from authgate.models import EmailOutbox, SignInPair, User
from authgate.runtime import Runtime
from tests.support.api import bearer, mail_with_subject
from tests.support.db import row_count
from tests.support.factories import TEST_CLIENT, Factory
from tests.support.flows import Account, Flows
from tests.support.mail import SmtpSink

API = "/api/v1"
PROXY = {"trusted_proxies": ["203.0.113.0/24"]}  # the test client's peer is 203.0.113.7
NEW_IP = "198.51.100.23"
NEW_PASSWORD = "a brand new and long passphrase"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return PROXY


async def login(
    client: httpx.AsyncClient,
    account: Account,
    *,
    ip: str | None = None,
    user_agent: str = TEST_CLIENT.user_agent or "",
) -> dict[str, Any]:
    headers = {"User-Agent": user_agent}
    if ip is not None:
        headers["X-Forwarded-For"] = ip
    response = await client.post(
        f"{API}/auth/login",
        json={"email": account.email, "password": account.password},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def alerts(runtime: Runtime, user_id: uuid.UUID) -> int:
    return await row_count(runtime, "email_outbox", user_id=user_id, template="new_sign_in")


async def user_id_of(runtime: Runtime, email: str) -> uuid.UUID:
    async with runtime.sessionmaker() as db:
        user = await runtime.users_repo.by_email(db, email)
    assert user is not None
    return user.id


async def runtime_user(runtime: Runtime, user_id: uuid.UUID) -> User:
    async with runtime.sessionmaker() as db:
        user = await runtime.users_repo.by_id(db, user_id)
    assert user is not None
    return user


async def count_in(db: AsyncSession, template: str) -> int:
    """Outbox rows of ``template`` the unit of work ``db`` holds (flushed, not committed)."""
    await db.flush()
    result = await db.execute(
        select(func.count()).select_from(EmailOutbox).where(EmailOutbox.template == template)
    )
    return int(result.scalar_one())


async def test_a_sign_in_from_a_new_ip_sends_one_alert_and_the_same_pair_again_none(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    account = await factory.account()  # signed in once, from the test client
    uid = await user_id_of(runtime, account.email)
    await login(client, account)  # the same pair: familiar
    assert await alerts(runtime, uid) == 0

    await login(client, account, ip=NEW_IP)
    assert await alerts(runtime, uid) == 1
    mail = await mail_with_subject(smtp_sink, account.email, "New sign-in")
    assert NEW_IP in mail.text and NEW_IP in mail.html
    assert "pytest-agent/1.0" in mail.text
    assert " UTC" in mail.text
    assert "If this was not you, reset your password" in " ".join(mail.text.split())
    reset_url = f"{runtime.settings.frontend_url}/forgot-password"
    assert reset_url in mail.text and f'href="{reset_url}"' in mail.html
    assert "token" not in mail.text.lower() and "agr_" not in mail.html

    await login(client, account, ip=NEW_IP)  # now known
    assert await alerts(runtime, uid) == 1


async def test_another_user_agent_from_the_same_ip_sends_one(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    account = await factory.account()
    uid = await user_id_of(runtime, account.email)
    long_agent = "Mozilla/5.0 (X11; <b>Linux</b>) " + "x" * 400
    await login(client, account, user_agent=long_agent)
    assert await alerts(runtime, uid) == 1
    mail = await mail_with_subject(smtp_sink, account.email, "New sign-in")
    shown = long_agent[:256]
    assert shown in mail.text and long_agent[:257] not in mail.text
    assert "&lt;b&gt;Linux&lt;/b&gt;" in mail.html and "<b>Linux" not in mail.html
    assert "203.0.113.7" in mail.text


async def test_the_first_sign_in_after_verification_sends_none(
    flows: Flows, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await flows.signed_up()  # register, verify, log in: the first sign-in
    uid = await user_id_of(runtime, account.email)
    assert await alerts(runtime, uid) == 0
    # Its pair was recorded all the same: the next sign-in from it is familiar, another is new.
    await login(client, account)
    assert await alerts(runtime, uid) == 0
    await login(client, account, ip=NEW_IP)
    assert await alerts(runtime, uid) == 1


@pytest.mark.parametrize("settings_overrides", [{**PROXY, "new_sign_in_alerts": False}])
async def test_the_setting_off_sends_none(
    factory: Factory,
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings_overrides: dict[str, Any],
) -> None:
    account = await factory.account()
    uid = await user_id_of(runtime, account.email)
    await login(client, account, ip=NEW_IP)
    await login(client, account, user_agent="another-browser/9")
    assert await alerts(runtime, uid) == 0
    assert await row_count(runtime, "sign_in_pairs", user_id=uid) == 3  # still recorded


async def test_a_sign_out_and_a_purge_do_not_make_the_next_sign_in_new(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Ended sessions are deleted by ``authgate purge-expired``; the pair is remembered."""
    account = await factory.account()
    uid = await user_id_of(runtime, account.email)
    phone = await login(client, account, ip=NEW_IP)
    assert await alerts(runtime, uid) == 1
    for refresh_token in (account.refresh_token, phone["refresh_token"]):
        response = await client.post(f"{API}/auth/logout", json={"refresh_token": refresh_token})
        assert response.status_code == 204
    counts = await purge_expired(runtime.settings)
    assert counts["sessions"] == 2 and counts["sign_in_pairs"] == 0
    assert await row_count(runtime, "auth_sessions", user_id=uid) == 0

    await login(client, account)
    await login(client, account, ip=NEW_IP)
    assert await alerts(runtime, uid) == 1


# No dispatcher: it would prune sent rows older than a week while the clock is shifted.
@pytest.mark.parametrize("settings_overrides", [{**PROXY, "email_dispatcher_enabled": False}])
async def test_a_pair_unseen_for_90_days_is_new_again(
    factory: Factory,
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings_overrides: dict[str, Any],
) -> None:
    account = await factory.account()
    uid = await user_id_of(runtime, account.email)
    user = await runtime_user(runtime, uid)
    away = ClientInfo(ip_address=NEW_IP, user_agent=TEST_CLIENT.user_agent)
    with shifted(-timedelta(days=91)):
        await factory.session(user, client=away)
    assert await alerts(runtime, uid) == 1  # new then, too

    with shifted(-timedelta(days=89)):
        await factory.session(user, client=away)  # two days later: familiar
    assert await alerts(runtime, uid) == 1

    await login(client, account, ip=NEW_IP)  # 89 days after the last one: still familiar
    assert await alerts(runtime, uid) == 1
    with shifted(timedelta(days=91)):
        await factory.session(user, client=away)  # 91 days after: new again
    assert await alerts(runtime, uid) == 2


async def test_sign_ins_from_before_the_pairs_were_recorded_count_as_familiar(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """After the upgrade ``sign_in_pairs`` starts empty: a pair is also looked for among the
    sessions still stored, so the first sign-in of each known device sends nothing."""
    account = await factory.account()
    uid = await user_id_of(runtime, account.email)
    async with runtime.sessionmaker() as db, db.begin():
        await db.execute(delete(SignInPair))
    await login(client, account)
    assert await alerts(runtime, uid) == 0
    await login(client, account, ip=NEW_IP)
    assert await alerts(runtime, uid) == 1


async def test_a_rolled_back_sign_in_sends_nothing(factory: Factory, runtime: Runtime) -> None:
    user = await factory.user()
    async with runtime.sessionmaker() as db, db.begin():
        await runtime.users_repo.set_last_login(db, user, user.created_at)
    user = await runtime_user(runtime, user.id)
    away = ClientInfo(ip_address=NEW_IP, user_agent="elsewhere/1")
    async with runtime.sessionmaker() as db:
        await runtime.sessions.open(db, user, away, method="password", amr=("pwd",))
        assert await count_in(db, "new_sign_in") == 1  # queued in the sign-in's transaction
        await db.rollback()
    assert await alerts(runtime, user.id) == 0
    assert await row_count(runtime, "sign_in_pairs", user_id=user.id) == 0

    await factory.session(user, client=away)  # committed this time
    assert await alerts(runtime, user.id) == 1


async def test_a_password_change_from_a_new_address_is_not_a_sign_in(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await factory.account()
    uid = await user_id_of(runtime, account.email)
    response = await client.post(
        f"{API}/users/me/password",
        json={"current_password": account.password, "new_password": NEW_PASSWORD},
        headers={**bearer(account.access_token), "X-Forwarded-For": NEW_IP},
    )
    assert response.status_code == 200, response.text
    assert await alerts(runtime, uid) == 0
    assert await row_count(runtime, "email_outbox", user_id=uid, template="password_changed") == 1


async def test_the_pair_is_kept_only_as_a_keyed_hash(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await factory.account()
    await login(client, account, ip=NEW_IP, user_agent="distinctive-agent/7")
    async with runtime.sessionmaker() as db:
        hashes = list((await db.scalars(select(SignInPair.pair_hash))).all())
    assert len(hashes) == 2
    for value in hashes:
        assert len(value) == 64 and NEW_IP not in value and "distinctive" not in value
    expected = runtime.opaque.keyed_hash("sign-in-pair", NEW_IP, "distinctive-agent/7")
    assert expected in hashes
