"""Every change of a user reaches the read-only access checks at once, whatever path made it.

``GET /users/me`` answers from the principal snapshot cache; the cache TTL is raised to 5 s here so
that only the invalidation in ``UserRepository`` (not the TTL running out) can explain a fresh
answer. Changes made behind the service's back are covered in test_refresh.py.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from authgate.housekeeping import create_admin
from authgate.runtime import Runtime
from tests.support.api import assert_problem, bearer, mail_with_subject, me, user_id
from tests.support.flows import Account, Flows
from tests.support.mail import SmtpSink

API = "/api/v1"
ADMIN_PASSWORD = "an administrator's long passphrase"

pytestmark = pytest.mark.parametrize("settings_overrides", [{"access_cache_ttl": 5.0}])


async def _admin(flows: Flows, runtime: Runtime) -> Account:
    email = flows.new_email().replace("user", "admin")
    await create_admin(runtime.settings, email, ADMIN_PASSWORD)
    login = await flows.login(email, ADMIN_PASSWORD)
    assert login.status_code == 200, login.text
    body = login.json()
    return Account(email, ADMIN_PASSWORD, body["access_token"], body["refresh_token"])


async def _profile(client: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    response = await me(client, account.access_token)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_own_and_admin_changes_are_seen_at_once(
    flows: Flows, client: httpx.AsyncClient, runtime: Runtime, settings_overrides: dict[str, Any]
) -> None:
    assert runtime.settings.access_cache_ttl == settings_overrides["access_cache_ttl"]
    account = await flows.signed_up(name="Ada")
    assert (await _profile(client, account))["name"] == "Ada"  # cached from here on

    renamed = await client.patch(
        f"{API}/users/me", json={"name": "Grace"}, headers=bearer(account.access_token)
    )
    assert renamed.status_code == 200, renamed.text
    assert (await _profile(client, account))["name"] == "Grace"

    admin = await _admin(flows, runtime)
    uid = await user_id(client, account)
    changed = await client.patch(
        f"{API}/admin/users/{uid}",
        json={"name": "Lovelace", "email_verified": False},
        headers=admin.auth,
    )
    assert changed.status_code == 200, changed.text
    profile = await _profile(client, account)
    assert (profile["name"], profile["email_verified"]) == ("Lovelace", False)

    off = await client.patch(
        f"{API}/admin/users/{uid}", json={"is_active": False}, headers=admin.auth
    )
    assert off.status_code == 200, off.text
    assert_problem(await me(client, account.access_token), 401, "invalid_token")


async def test_a_confirmed_email_change_is_seen_at_once(
    flows: Flows, client: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    account = await flows.signed_up()
    assert (await _profile(client, account))["email"] == account.email
    new_email = flows.new_email()
    asked = await client.post(
        f"{API}/users/me/email",
        json={"new_email": new_email, "password": account.password},
        headers=bearer(account.access_token),
    )
    assert asked.status_code == 202, asked.text
    mail = await mail_with_subject(smtp_sink, new_email, "Confirm your new email")
    confirmed = await client.post(
        f"{API}/auth/verify-email", json={"token": mail.token("/verify-email")}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert (await _profile(client, account))["email"] == new_email


async def test_a_password_change_refuses_the_old_token_at_once(
    flows: Flows, client: httpx.AsyncClient
) -> None:
    account = await flows.signed_up()
    await _profile(client, account)
    changed = await client.post(
        f"{API}/users/me/password",
        json={"current_password": account.password, "new_password": "a brand new long passphrase"},
        headers=bearer(account.access_token),
    )
    assert changed.status_code == 200, changed.text
    assert_problem(await me(client, account.access_token), 401, "invalid_token")
    assert (await me(client, changed.json()["access_token"])).status_code == 200
