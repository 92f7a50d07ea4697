"""The signed-in user's own account: change password, change email, delete, PATCH /users/me."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import httpx
import pytest

from authgate.core.time import utc_now
from authgate.models import EmailOutbox, OutboxStatus
from authgate.runtime import Runtime
from tests.support.api import (
    assert_problem,
    bearer,
    mail_with_subject,
    me,
    refresh,
    several_sessions,
    sid_of,
    user_id,
)
from tests.support.db import audit_count, authgate_logs, row_count, scan_columns, scan_logs
from tests.support.factories import Factory
from tests.support.flows import Flows
from tests.support.mail import SmtpSink

API = "/api/v1"
NEW_PASSWORD = "a brand new and long passphrase"


async def login_status(flows: Flows, email: str, password: str) -> int:
    return (await flows.login(email, password)).status_code


# -- change password ----------------------------------------------------------------------------


async def change_password(
    client: httpx.AsyncClient, access_token: str, current: str, new: str
) -> httpx.Response:
    return await client.post(
        f"{API}/users/me/password",
        json={"current_password": current, "new_password": new},
        headers=bearer(access_token),
    )


async def test_change_password_continues_in_a_new_session_and_ends_the_others(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    account = await factory.account()
    uid = await user_id(client, account)
    access_tokens, refresh_tokens = await several_sessions(flows, client, account)

    response = await change_password(client, account.access_token, account.password, NEW_PASSWORD)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    pair = response.json()
    assert pair["token_type"] == "Bearer"
    assert pair["refresh_token"].startswith("agr_")

    # The new pair works, in a session of its own ...
    assert (await me(client, pair["access_token"])).status_code == 200
    new_sid = sid_of(pair["access_token"])
    assert new_sid not in {sid_of(t) for t in access_tokens}
    listed = (await client.get(f"{API}/sessions", headers=bearer(pair["access_token"]))).json()
    assert [(s["id"], s["current"]) for s in listed] == [(new_sid, True)]
    # ... and every earlier one ended, the one used for the change included.
    for token in access_tokens:
        assert_problem(await me(client, token), 401, "invalid_token")
    for token in refresh_tokens:
        assert_problem(await refresh(client, token), 401, "invalid_token")
    assert (await refresh(client, pair["refresh_token"])).status_code == 200

    assert await login_status(flows, account.email, account.password) == 401
    assert await login_status(flows, account.email, NEW_PASSWORD) == 200
    assert await audit_count(runtime, "password_changed", user_id=uid) == 1
    await mail_with_subject(smtp_sink, account.email, "password was changed")


async def test_change_password_with_a_wrong_current_password_is_400(
    flows: Flows, factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    wrong = await change_password(
        client, account.access_token, "not my password at all", NEW_PASSWORD
    )
    assert_problem(wrong, 400, "invalid_password")
    assert "www-authenticate" not in wrong.headers  # never read as "signed out"

    weak = await change_password(client, account.access_token, account.password, "short")
    assert weak.status_code == 422, weak.text

    # Nothing changed: the session lives on and the old password still works.
    assert (await me(client, account.access_token)).status_code == 200
    assert (await refresh(client, account.refresh_token)).status_code == 200
    assert await login_status(flows, account.email, account.password) == 200


# -- change email -------------------------------------------------------------------------------


async def change_email(
    client: httpx.AsyncClient, access_token: str, new_email: str, password: str
) -> httpx.Response:
    return await client.post(
        f"{API}/users/me/email",
        json={"new_email": new_email, "password": password},
        headers=bearer(access_token),
    )


async def test_change_email_moves_the_address_only_when_the_link_is_used(
    flows: Flows,
    factory: Factory,
    client: httpx.AsyncClient,
    smtp_sink: SmtpSink,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with authgate_logs(caplog) as records:
        account = await factory.account()
        new_address = "moved-here@example.com"

        wrong = await change_email(client, account.access_token, new_address, "not my password")
        assert_problem(wrong, 400, "invalid_password")
        assert await row_count(runtime, "action_tokens", kind="change_email") == 0

        accepted = await change_email(client, account.access_token, new_address, account.password)
        assert accepted.status_code == 202, accepted.text

        confirm = await mail_with_subject(smtp_sink, new_address, "Confirm your new email")
        token = confirm.token("/verify-email")
        assert token.startswith("age_")
        notice = await mail_with_subject(smtp_sink, account.email, "is being changed")
        assert "age_" not in notice.text  # the old address never gets the link

        # Nothing moved yet.
        assert (await me(client, account.access_token)).json()["email"] == account.email
        assert await login_status(flows, new_address, account.password) == 401

        confirmed = await client.post(f"{API}/auth/verify-email", json={"token": token})
        assert confirmed.status_code == 200, confirmed.text
        assert confirmed.json()["email"] == new_address
        assert (await me(client, account.access_token)).json()["email"] == new_address
        assert await login_status(flows, new_address, account.password) == 200
        assert await login_status(flows, account.email, account.password) == 401

        again = await client.post(f"{API}/auth/verify-email", json={"token": token})
        assert_problem(again, 400, "invalid_token")
    assert await scan_columns(runtime, [token]) == []
    assert scan_logs(records, [token]) == []


async def test_change_email_to_a_taken_address_is_accepted_but_sends_no_link(
    factory: Factory, client: httpx.AsyncClient, smtp_sink: SmtpSink, runtime: Runtime
) -> None:
    account = await factory.account()
    owner = await factory.account()

    free = await change_email(
        client, account.access_token, "free-address@example.com", account.password
    )
    taken = await change_email(client, account.access_token, owner.email.upper(), account.password)
    assert free.status_code == taken.status_code == 202
    assert free.content == taken.content

    # The notice of the second request reached the old address, and still no link to the owner.
    deadline = time.monotonic() + 10
    while len([m for m in smtp_sink.to(account.email) if "is being changed" in m.subject]) < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert await row_count(runtime, "email_outbox", template="email_change_confirm") == 1
    assert not [m for m in smtp_sink.to(owner.email) if "age_" in m.text]
    assert (await me(client, account.access_token)).json()["email"] == account.email


async def test_email_uniqueness_is_checked_again_when_the_link_is_used(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    account = await factory.account()
    contested = "contested@example.com"
    assert (
        await change_email(client, account.access_token, contested, account.password)
    ).status_code == 202
    token = (await mail_with_subject(smtp_sink, contested, "Confirm your new email")).token(
        "/verify-email"
    )

    # Someone else takes the address before the link is used. (Not flows.signed_up: the
    # address already holds a /verify-email link, the email-change one.)
    assert (await flows.register(contested, "the other owner's passphrase")).status_code == 202
    welcome = await mail_with_subject(smtp_sink, contested, "Confirm your email address")
    verified = await client.post(
        f"{API}/auth/verify-email", json={"token": welcome.token("/verify-email")}
    )
    assert verified.status_code == 200, verified.text

    used = await client.post(f"{API}/auth/verify-email", json={"token": token})
    assert_problem(used, 400, "invalid_token")
    assert (await me(client, account.access_token)).json()["email"] == account.email
    assert await login_status(flows, account.email, account.password) == 200
    assert await login_status(flows, contested, account.password) == 401
    assert await login_status(flows, contested, "the other owner's passphrase") == 200
    again = await client.post(f"{API}/auth/verify-email", json={"token": token})
    assert_problem(again, 400, "invalid_token")


# -- delete account -----------------------------------------------------------------------------


async def test_delete_account_removes_the_user_and_everything_tied_to_it(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, smtp_sink: SmtpSink, runtime: Runtime
) -> None:
    account = await factory.account()
    bystander = await factory.account()
    uid = await user_id(client, account)
    access_tokens, refresh_tokens = await several_sessions(flows, client, account)
    sids = {sid_of(t) for t in access_tokens}

    # Outstanding links, and a message still waiting for a retry.
    assert (
        await client.post(f"{API}/auth/password/forgot", json={"email": account.email})
    ).status_code == 202
    assert (
        await change_email(client, account.access_token, "elsewhere@example.com", account.password)
    ).status_code == 202
    async with runtime.sessionmaker() as db:
        db.add(
            EmailOutbox(
                user_id=uid,
                to_address=account.email,
                template="password_changed",
                status=OutboxStatus.pending.value,
                next_attempt_at=utc_now() + timedelta(hours=1),
            )
        )
        await db.commit()
    assert await row_count(runtime, "action_tokens", user_id=uid) >= 2
    assert await row_count(runtime, "email_outbox", user_id=uid, status="pending") >= 1

    response = await client.request(
        "DELETE",
        f"{API}/users/me",
        json={"password": account.password},
        headers=bearer(account.access_token),
    )
    assert response.status_code == 204, response.text

    assert await row_count(runtime, "users", id=uid) == 0
    assert await row_count(runtime, "auth_sessions", user_id=uid) == 0
    for sid in sids:
        assert await row_count(runtime, "refresh_tokens", session_id=uuid.UUID(sid)) == 0
    assert await row_count(runtime, "action_tokens", user_id=uid) == 0
    assert await row_count(runtime, "email_outbox", user_id=uid, status="pending") == 0
    assert await row_count(runtime, "oauth_identities", user_id=uid) == 0
    assert await row_count(runtime, "provider_tokens", user_id=uid) == 0
    # The audit trail outlives the account.
    assert await audit_count(runtime, "account_deleted", user_id=uid) == 1

    for token in access_tokens:
        assert (await me(client, token)).status_code == 401
    for token in refresh_tokens:
        assert_problem(await refresh(client, token), 401, "invalid_token")
    assert await login_status(flows, account.email, account.password) == 401

    # Nobody else lost anything.
    assert (await me(client, bystander.access_token)).status_code == 200
    assert (await refresh(client, bystander.refresh_token)).status_code == 200


async def test_delete_account_with_a_wrong_password_is_400(
    flows: Flows, factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    wrong = await client.request(
        "DELETE",
        f"{API}/users/me",
        json={"password": "not my password at all"},
        headers=bearer(account.access_token),
    )
    assert_problem(wrong, 400, "invalid_password")
    missing = await client.request(
        "DELETE", f"{API}/users/me", json={}, headers=bearer(account.access_token)
    )
    assert_problem(missing, 422, "validation_error")
    assert (await me(client, account.access_token)).status_code == 200
    assert await login_status(flows, account.email, account.password) == 200


# -- PATCH /users/me ----------------------------------------------------------------------------


async def test_patch_me_changes_only_the_name(factory: Factory, client: httpx.AsyncClient) -> None:
    account = await factory.account(name="Ada")
    before = (await me(client, account.access_token)).json()

    updated = await client.patch(
        f"{API}/users/me", json={"name": "Grace"}, headers=bearer(account.access_token)
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"] == "Grace"
    assert (await me(client, account.access_token)).json()["name"] == "Grace"

    for body in (
        {"email_verified": True},
        {"is_superuser": True},
        {"name": "Mallory", "is_superuser": True},
        {"name": "Mallory", "email_verified": False},
        {"name": "Mallory", "is_active": False},
        {"name": "Mallory", "email": "mallory@example.com"},
        {"name": "Mallory", "id": str(uuid.uuid4())},
    ):
        refused = await client.patch(
            f"{API}/users/me", json=body, headers=bearer(account.access_token)
        )
        assert_problem(refused, 422, "validation_error")

    after = (await me(client, account.access_token)).json()
    assert after["name"] == "Grace"
    for field in ("id", "email", "email_verified", "is_active", "is_superuser", "created_at"):
        assert after[field] == before[field]
    assert after["is_superuser"] is False
