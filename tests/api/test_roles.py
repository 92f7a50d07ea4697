"""Roles (contract §11): set by an admin, shown by ``/users/me``, signed into every access token
from the user row at sign-in and at every refresh, included by introspection."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.api import assert_problem, bearer, claims_of, me, refresh, user_id
from tests.support.factories import Factory

API = "/api/v1"
INTROSPECTION = ("svc", "s3cret-value-123")


async def set_roles(
    client: httpx.AsyncClient, admin_token: str, target: object, roles: Any
) -> httpx.Response:
    return await client.patch(
        f"{API}/admin/users/{target}", json={"roles": roles}, headers=bearer(admin_token)
    )


@pytest.mark.parametrize(
    "settings_overrides", [{"introspection_clients": [":".join(INTROSPECTION)]}], ids=["svc"]
)
async def test_roles_set_by_an_admin_reach_the_next_refresh_and_introspection(
    factory: Factory, client: httpx.AsyncClient, settings_overrides: dict[str, Any]
) -> None:
    admin = await factory.account(is_superuser=True)
    account = await factory.account()
    target = await user_id(client, account)

    # None yet: the claim is there, empty.
    assert claims_of(account.access_token)["roles"] == []
    assert (await me(client, account.access_token)).json()["roles"] == []

    response = await set_roles(
        client, admin.access_token, target, ["support", "billing:read", "support"]
    )
    assert response.status_code == 200, response.text
    assert response.json()["roles"] == ["support", "billing:read"]  # de-duplicated, in order
    assert (await me(client, account.access_token)).json()["roles"] == ["support", "billing:read"]
    # A token issued before the change keeps the list it was signed with.
    assert claims_of(account.access_token)["roles"] == []

    refreshed = await refresh(client, account.refresh_token)
    assert refreshed.status_code == 200, refreshed.text
    access = refreshed.json()["access_token"]
    assert claims_of(access)["roles"] == ["support", "billing:read"]
    introspected = await client.post(
        f"{API}/auth/introspect", json={"token": access}, auth=INTROSPECTION
    )
    assert introspected.json()["active"] is True
    assert introspected.json()["roles"] == ["support", "billing:read"]

    # A new sign-in carries them too; an empty list removes them at the next refresh.
    login = await client.post(
        f"{API}/auth/login", json={"email": account.email, "password": account.password}
    )
    assert claims_of(login.json()["access_token"])["roles"] == ["support", "billing:read"]
    assert (await set_roles(client, admin.access_token, target, [])).json()["roles"] == []
    again = await refresh(client, refreshed.json()["refresh_token"])
    assert claims_of(again.json()["access_token"])["roles"] == []

    # The admin's reads show them, and the change is audited (names of fields, no values).
    await set_roles(client, admin.access_token, target, ["support"])
    shown = await client.get(f"{API}/admin/users/{target}", headers=bearer(admin.access_token))
    assert shown.json()["roles"] == ["support"]
    events = await client.get(
        f"{API}/admin/audit-events",
        params={"user_id": str(target), "type": "user_updated_by_admin"},
        headers=bearer(admin.access_token),
    )
    assert [e["detail"]["fields"] for e in events.json()["items"]] == [["roles"]] * 3


async def test_a_user_cannot_set_their_own_roles(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    response = await client.patch(
        f"{API}/users/me",
        json={"name": "Ada", "roles": ["admin"]},
        headers=bearer(account.access_token),
    )
    assert_problem(response, 422, "validation_error")
    assert (await me(client, account.access_token)).json()["roles"] == []
    # Nor through the admin API, without being a superuser.
    target = await user_id(client, account)
    assert_problem(
        await set_roles(client, account.access_token, target, ["admin"]), 403, "forbidden"
    )


@pytest.mark.parametrize(
    "roles",
    [
        ["Admin"],
        ["1st"],
        ["has space"],
        [""],
        ["a" * 65],
        ["ok", "bad/slash"],
        [f"r{i}" for i in range(33)],
        "support",
        None,
        [1],
    ],
    ids=[
        "upper",
        "digit-first",
        "space",
        "empty",
        "too-long",
        "slash",
        "33",
        "string",
        "null",
        "int",
    ],
)
async def test_invalid_roles_are_422(
    factory: Factory, client: httpx.AsyncClient, roles: Any
) -> None:
    admin = await factory.account(is_superuser=True)
    account = await factory.account()
    target = await user_id(client, account)
    response = await set_roles(client, admin.access_token, target, roles)
    assert_problem(response, 422, "validation_error")
    assert response.json()["errors"]
    assert (await me(client, account.access_token)).json()["roles"] == []


async def test_the_longest_valid_roles(factory: Factory, client: httpx.AsyncClient) -> None:
    admin = await factory.account(is_superuser=True)
    account = await factory.account()
    target = await user_id(client, account)
    roles = ["a" + "b" * 63, "x0_.:-"] + [f"r{i}" for i in range(30)]
    response = await set_roles(client, admin.access_token, target, roles)
    assert response.status_code == 200, response.text
    access = (await refresh(client, account.refresh_token)).json()["access_token"]
    assert claims_of(access)["roles"] == roles


async def test_openapi_shapes(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    assert "roles" in schemas["UserOut"]["required"]
    assert schemas["UserOut"]["properties"]["roles"]["type"] == "array"
    assert "roles" in schemas["AdminUser"]["required"]
    update = schemas["AdminUserUpdate"]["properties"]["roles"]
    array = next(s for s in update["anyOf"] if s.get("type") == "array")
    assert array["maxItems"] == 32
    assert array["items"]["pattern"] == "^[a-z][a-z0-9_.:-]{0,63}$"
    assert "roles" not in schemas["UpdateMe"]["properties"]
    assert "roles" in schemas["IntrospectionResponse"]["properties"]
    revoke_all = spec["paths"]["/api/v1/admin/sessions/revoke-all"]["post"]
    assert set(revoke_all["responses"]) >= {"204", "401", "403", "503"}
