"""The ``amr`` claim (RFC 8176): set when a session is opened, signed into every access token of
the session (refreshes and grace replays included), shown by ``/sessions`` and introspection."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import jwt as pyjwt
import pytest

from authgate.core.time import shifted
from authgate.runtime import Runtime
from tests.jwt_forgery import forged_tokens
from tests.support.api import amr_of, assert_problem, bearer, claims_of, me, refresh, sid_of
from tests.support.factories import Factory
from tests.support.flows import Flows

API = "/api/v1"
MFA = ("pwd", "otp", "mfa")
NEW_PASSWORD = "a brand new and long passphrase"
INTROSPECTION = ("svc", "s3cret-value-123")


async def sessions(client: httpx.AsyncClient, access_token: str) -> dict[str, dict[str, Any]]:
    response = await client.get(f"{API}/sessions", headers=bearer(access_token))
    assert response.status_code == 200, response.text
    return {s["id"]: s for s in response.json()}


async def test_a_password_sign_in_is_pwd(
    factory: Factory, flows: Flows, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    login = await flows.login(account.email)
    assert login.status_code == 200, login.text
    assert amr_of(login.json()["access_token"]) == ["pwd"]

    grant = await client.post(
        f"{API}/auth/token",
        data={"grant_type": "password", "username": account.email, "password": account.password},
    )
    assert grant.status_code == 200, grant.text
    assert amr_of(grant.json()["access_token"]) == ["pwd"]


async def test_refreshes_keep_the_amr_of_the_sign_in(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    assert amr_of(account.access_token) == ["pwd"]
    token = account.refresh_token
    for _ in range(2):
        response = await refresh(client, token)
        assert response.status_code == 200, response.text
        assert amr_of(response.json()["access_token"]) == ["pwd"]
        token = response.json()["refresh_token"]


async def test_every_method_of_a_two_factor_sign_in_survives_refreshes(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    user = await factory.user()
    opened = await factory.session(user, amr=MFA)
    assert opened.claims.amr == MFA
    assert amr_of(opened.access_token) == list(MFA)

    token = opened.refresh_token
    for _ in range(2):
        response = await refresh(client, token)
        assert response.status_code == 200, response.text
        access = response.json()["access_token"]
        assert amr_of(access) == list(MFA)
        assert (await me(client, access)).status_code == 200
        token = response.json()["refresh_token"]

    # The OAuth 2 token endpoint's refresh grant goes through the same rotation.
    grant = await client.post(
        f"{API}/auth/token", data={"grant_type": "refresh_token", "refresh_token": token}
    )
    assert grant.status_code == 200, grant.text
    assert amr_of(grant.json()["access_token"]) == list(MFA)


@pytest.mark.parametrize("settings_overrides", [{"refresh_reuse_grace": 5}], ids=["grace5"])
async def test_a_grace_replay_hands_back_the_same_token_with_its_amr(
    factory: Factory, client: httpx.AsyncClient, settings_overrides: dict[str, Any]
) -> None:
    user = await factory.user()
    opened = await factory.session(user, amr=MFA)
    first = await refresh(client, opened.refresh_token)
    assert first.status_code == 200, first.text
    with shifted(timedelta(seconds=2)):
        replay = await refresh(client, opened.refresh_token)
    assert replay.status_code == 200, replay.text
    assert replay.json()["access_token"] == first.json()["access_token"]
    assert amr_of(replay.json()["access_token"]) == list(MFA)


async def test_sessions_list_shows_the_amr_of_each_session(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    user = await factory.user()
    password = await factory.session(user)
    two_factor = await factory.session(user, amr=MFA)
    provider = await factory.session(user, method="oauth:test", amr=("fed",))
    rotated = await refresh(client, two_factor.refresh_token)  # a refresh changes nothing
    assert rotated.status_code == 200, rotated.text

    listed = await sessions(client, password.access_token)
    assert {sid: s["amr"] for sid, s in listed.items()} == {
        str(password.session_id): ["pwd"],
        str(two_factor.session_id): list(MFA),
        str(provider.session_id): ["fed"],
    }

    spec = (await client.get("/openapi.json")).json()
    session_schema = spec["components"]["schemas"]["SessionOut"]
    assert "amr" in session_schema["required"]
    assert session_schema["properties"]["amr"]["type"] == "array"
    assert session_schema["properties"]["amr"]["items"] == {"type": "string"}


@pytest.mark.parametrize(
    "settings_overrides", [{"introspection_clients": [":".join(INTROSPECTION)]}], ids=["svc"]
)
async def test_introspection_shows_the_amr(
    factory: Factory, client: httpx.AsyncClient, settings_overrides: dict[str, Any]
) -> None:
    user = await factory.user()
    opened = await factory.session(user, amr=MFA)
    refreshed = (await refresh(client, opened.refresh_token)).json()["access_token"]
    for token in (opened.access_token, refreshed):
        response = await client.post(
            f"{API}/auth/introspect", json={"token": token}, auth=INTROSPECTION
        )
        assert response.status_code == 200, response.text
        assert response.json()["active"] is True
        assert response.json()["amr"] == list(MFA)

    inactive = await client.post(
        f"{API}/auth/introspect", json={"token": "garbage"}, auth=INTROSPECTION
    )
    assert inactive.json() == {"active": False}

    spec = (await client.get("/openapi.json")).json()
    assert "amr" in spec["components"]["schemas"]["IntrospectionResponse"]["properties"]


async def test_a_password_change_goes_on_with_the_amr_of_the_session(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    user = await factory.user()
    opened = await factory.session(user, amr=MFA)
    response = await client.post(
        f"{API}/users/me/password",
        json={"current_password": "correct horse battery staple", "new_password": NEW_PASSWORD},
        headers=bearer(opened.access_token),
    )
    assert response.status_code == 200, response.text
    fresh = response.json()["access_token"]
    assert sid_of(fresh) != str(opened.session_id)
    assert amr_of(fresh) == list(MFA)
    listed = await sessions(client, fresh)
    assert [s["amr"] for s in listed.values()] == [list(MFA)]


async def test_an_amr_that_is_not_a_list_of_strings_is_refused(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await factory.account()
    cases = dict(forged_tokens(account.access_token, runtime.ring, runtime.settings))
    for name in ("amr_string", "amr_null", "amr_object", "amr_int_item", "amr_nested_list"):
        assert_problem(await me(client, cases[name]), 401, "invalid_token")
    assert claims_of(cases["amr_string"])["amr"] == "pwd"


async def test_a_token_issued_before_the_claim_still_works(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """An access token of the previous release (no ``amr``) is valid until it expires."""
    account = await factory.account()
    claims = {k: v for k, v in claims_of(account.access_token).items() if k != "amr"}
    key = runtime.ring.current
    older = pyjwt.encode(
        claims,
        key.private_key,
        algorithm=runtime.settings.jwt_algorithm,
        headers={"kid": key.kid, "typ": "at+jwt"},
    )
    assert (await me(client, older)).status_code == 200
    listed = await sessions(client, older)
    assert listed[claims["sid"]]["amr"] == ["pwd"]
