"""The factories make what the HTTP flows make: a usable account, a real password hash."""

from __future__ import annotations

import httpx

from authgate.runtime import Runtime
from tests.support.api import me
from tests.support.factories import Factory, password_hash
from tests.support.flows import TEST_PASSWORD, Flows


async def test_a_factory_account_is_signed_in_and_can_log_in(
    factory: Factory, flows: Flows, client: httpx.AsyncClient
) -> None:
    account = await factory.account(name="Ada")
    response = await me(client, account.access_token)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == account.email
    assert response.json()["email_verified"] is True
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert refreshed.status_code == 200, refreshed.text
    login = await flows.login(account.email, TEST_PASSWORD)
    assert login.status_code == 200, login.text


async def test_the_password_hash_is_computed_once(factory: Factory, runtime: Runtime) -> None:
    first = await factory.user()
    second = await factory.user(verified=False)
    assert first.password_hash == second.password_hash == await password_hash(runtime)
    assert first.password_hash is not None and first.password_hash.startswith("$argon2id$")
    assert second.email_verified is False
