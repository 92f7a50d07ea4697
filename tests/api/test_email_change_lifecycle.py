"""Issue 11: a pending email change dies with the sessions it was asked in; disabled accounts'
links stop working; mail to an unverified address carries no text of the user's choosing."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import update

from authgate.models import User
from authgate.runtime import Runtime
from tests.support.api import assert_problem, bearer, mail_with_subject, me, user_id
from tests.support.factories import Factory
from tests.support.flows import Account, Flows
from tests.support.mail import SmtpSink

API = "/api/v1"
NEW_PASSWORD = "a brand new and long passphrase"
SPAM = "Cheap pills at spam.example"


async def request_change(
    client: httpx.AsyncClient, sink: SmtpSink, account: Account, new_email: str
) -> str:
    """Ask for a change to ``new_email``; the raw ``age_`` token of the link it sends."""
    response = await client.post(
        f"{API}/users/me/email",
        json={"new_email": new_email, "password": account.password},
        headers=bearer(account.access_token),
    )
    assert response.status_code == 202, response.text
    mail = await mail_with_subject(sink, new_email, "Confirm your new email")
    return mail.token("/verify-email")


async def confirm(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(f"{API}/auth/verify-email", json={"token": token})


async def _make_admin(runtime: Runtime) -> Account:
    return await Factory(runtime).account(
        f"admin-{uuid.uuid4().hex[:8]}@example.com", is_superuser=True
    )


async def _set_user(runtime: Runtime, email: str, **values: object) -> None:
    async with runtime.sessionmaker() as db:
        await db.execute(update(User).where(User.email_key == email.casefold()).values(**values))
        await db.commit()


async def _forgot_and_reset(
    client: httpx.AsyncClient, sink: SmtpSink, account: Account
) -> httpx.Response:
    forgot = await client.post(f"{API}/auth/password/forgot", json={"email": account.email})
    assert forgot.status_code == 202
    token = (await mail_with_subject(sink, account.email, "Reset")).token("/reset-password")
    return await client.post(
        f"{API}/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )


Canceller = Callable[[Flows, httpx.AsyncClient, Runtime, SmtpSink, Account], Awaitable[None]]


async def _password_change(
    flows: Flows, client: httpx.AsyncClient, runtime: Runtime, sink: SmtpSink, account: Account
) -> None:
    response = await client.post(
        f"{API}/users/me/password",
        json={"current_password": account.password, "new_password": NEW_PASSWORD},
        headers=bearer(account.access_token),
    )
    assert response.status_code == 200, response.text


async def _password_reset(
    flows: Flows, client: httpx.AsyncClient, runtime: Runtime, sink: SmtpSink, account: Account
) -> None:
    assert (await _forgot_and_reset(client, sink, account)).status_code == 204


async def _logout_all(
    flows: Flows, client: httpx.AsyncClient, runtime: Runtime, sink: SmtpSink, account: Account
) -> None:
    response = await client.post(f"{API}/auth/logout-all", headers=bearer(account.access_token))
    assert response.status_code == 204, response.text


async def _admin_revoke(
    flows: Flows, client: httpx.AsyncClient, runtime: Runtime, sink: SmtpSink, account: Account
) -> None:
    admin = await _make_admin(runtime)
    uid = await user_id(client, account)
    response = await client.post(f"{API}/admin/users/{uid}/sessions/revoke", headers=admin.auth)
    assert response.status_code == 204, response.text


async def _admin_deactivate(
    flows: Flows, client: httpx.AsyncClient, runtime: Runtime, sink: SmtpSink, account: Account
) -> None:
    admin = await _make_admin(runtime)
    uid = await user_id(client, account)
    off = await client.patch(
        f"{API}/admin/users/{uid}", json={"is_active": False}, headers=admin.auth
    )
    assert off.status_code == 200, off.text
    # Switched on again: the link must stay dead all the same (cancelled, not merely refused).
    on = await client.patch(
        f"{API}/admin/users/{uid}", json={"is_active": True}, headers=admin.auth
    )
    assert on.status_code == 200, on.text


@pytest.mark.parametrize(
    "cancel",
    [_password_change, _password_reset, _logout_all, _admin_revoke, _admin_deactivate],
    ids=["password_change", "password_reset", "logout_all", "admin_revoke", "admin_deactivate"],
)
async def test_a_pending_email_change_dies_with_the_sessions(
    flows: Flows,
    factory: Factory,
    client: httpx.AsyncClient,
    runtime: Runtime,
    smtp_sink: SmtpSink,
    cancel: Canceller,
) -> None:
    """The attack: a session thief asks to move the address to their mailbox; the owner changes
    the password (or resets it, logs out everywhere, or an admin steps in); the thief then
    confirms the link and takes the account back through a reset to the new address."""
    account = await factory.account()
    token = await request_change(client, smtp_sink, account, "thief@example.net")

    await cancel(flows, client, runtime, smtp_sink, account)

    assert_problem(await confirm(client, token), 400, "invalid_token")
    forgot = await client.post(f"{API}/auth/password/forgot", json={"email": "thief@example.net"})
    assert forgot.status_code == 202
    await asyncio.sleep(0.3)
    assert not [m for m in smtp_sink.to("thief@example.net") if "reset-password" in m.text]
    login = await flows.login(account.email, NEW_PASSWORD)
    relogin = login if login.status_code == 200 else await flows.login(account.email)
    assert relogin.status_code == 200, relogin.text
    assert (await me(client, relogin.json()["access_token"])).json()["email"] == account.email


async def test_a_newer_request_cancels_the_older_link_and_the_old_address_hears_of_the_change(
    factory: Factory, client: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    account = await factory.account()
    first = await request_change(client, smtp_sink, account, "first@example.net")
    second = await request_change(client, smtp_sink, account, "second@example.net")
    assert_problem(await confirm(client, first), 400, "invalid_token")

    confirmed = await confirm(client, second)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["email"] == "second@example.net"
    notice = await mail_with_subject(smtp_sink, account.email, "email address was changed")
    assert "second@example.net" in notice.text
    assert "age_" not in notice.text
    assert not [m for m in smtp_sink.to("second@example.net") if "was changed" in m.subject]


# -- disabled accounts --------------------------------------------------------------------------


async def test_links_of_a_disabled_account_are_refused(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    """Disabled straight in the database, so nothing but the check at use time stops them."""
    account = await factory.account()
    change = await request_change(client, smtp_sink, account, "moved@example.net")
    forgot = await client.post(f"{API}/auth/password/forgot", json={"email": account.email})
    assert forgot.status_code == 202
    reset = (await mail_with_subject(smtp_sink, account.email, "Reset")).token("/reset-password")
    fresh = flows.new_email()
    assert (await flows.register(fresh)).status_code == 202
    verify = await flows.verification_token(fresh)

    for email in (account.email, fresh):
        await _set_user(runtime, email, is_active=False)
    assert_problem(await confirm(client, change), 400, "invalid_token")
    assert_problem(await confirm(client, verify), 400, "invalid_token")
    assert_problem(
        await client.post(
            f"{API}/auth/password/reset", json={"token": reset, "new_password": NEW_PASSWORD}
        ),
        400,
        "invalid_token",
    )
    # Forgot-password sends a disabled account nothing (and answers the same).
    before = len(smtp_sink.to(account.email))
    again = await client.post(f"{API}/auth/password/forgot", json={"email": account.email})
    assert again.status_code == 202
    await asyncio.sleep(0.3)
    assert len(smtp_sink.to(account.email)) == before

    # Nothing changed for the disabled accounts, and their links were refused, not spent.
    await _set_user(runtime, account.email, is_active=True)
    await _set_user(runtime, fresh, is_active=True)
    assert (await confirm(client, verify)).status_code == 200
    login = await flows.login(account.email)
    assert login.status_code == 200, login.text
    assert (await me(client, login.json()["access_token"])).json()["email"] == account.email


# -- no user text in mail to unverified addresses ------------------------------------------------


async def test_mail_to_an_unverified_address_never_carries_the_name(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    """The relay: the name is the spammer's text, the new address the spammer's target."""
    target = "victim-of-spam@example.org"
    assert (await flows.register(target, name=SPAM)).status_code == 202
    verify = (await smtp_sink.wait_for(target, 1))[-1]
    assert SPAM not in verify.text + verify.html + verify.subject

    account = await factory.account(name=SPAM)
    other = "another-victim@example.org"
    await request_change(client, smtp_sink, account, other)
    deadline = time.monotonic() + 5
    while not smtp_sink.to(other):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    for mail in smtp_sink.to(other):
        assert SPAM not in mail.text + mail.html + mail.subject
    # The owner's own, verified address still gets it by name.
    notice = await mail_with_subject(smtp_sink, account.email, "is being changed")
    assert SPAM in notice.text
