"""Browser sessions: the refresh token in an HttpOnly cookie (docs/api.md §3.9).

Cookie mode on the token-issuing routes, refresh and logout by cookie, the Origin check that
guards every use of the cookie (CSRF), and the grace window for cookies."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from authgate.core.time import shifted
from authgate.runtime import Runtime
from tests.support.api import assert_problem, bearer, me, refresh
from tests.support.cookies import (
    ALLOWED,
    API,
    COOKIE,
    OWN,
    SetCookie,
    login,
    logout_by_cookie,
    no_refresh_cookie,
    post,
    refresh_by_cookie,
    refresh_cookie,
    set_cookies,
    without_cookie_jar,
)
from tests.support.db import audit_count, successors_of
from tests.support.factories import Factory
from tests.support.flows import TEST_PASSWORD

GRACE = {"refresh_reuse_grace": 5}
FOREIGN_ORIGINS = [
    None,
    "null",
    "http://evil.example",
    "http://localhost:5173.evil.example",
    "http://localhost:5174",
    "https://localhost:5173",
    "http://localhost:5173/path",
]


@pytest.fixture(autouse=True)
def _explicit_cookies(client: httpx.AsyncClient) -> None:
    without_cookie_jar(client)


def assert_refresh_cookie(cookie: SetCookie, pair: dict[str, Any]) -> None:
    """A cookie that stores a refresh token, with every attribute of the default settings."""
    assert cookie.name == COOKIE
    assert cookie.value.startswith("agr_"), cookie.raw
    assert set(cookie.attributes) == {"httponly", "secure", "samesite", "path", "max-age"}
    assert cookie.attributes["samesite"] == "Strict"
    assert cookie.attributes["path"] == "/api/v1/auth"
    assert cookie.max_age == pair["refresh_token_expires_in"] > 0
    assert pair["refresh_token"] is None


def assert_cleared(cookie: SetCookie) -> None:
    assert cookie.name == COOKIE
    assert cookie.value == ""
    assert cookie.max_age == 0
    assert cookie.attributes["path"] == "/api/v1/auth"
    assert {"httponly", "secure"} <= set(cookie.attributes)
    assert cookie.attributes["samesite"] == "Strict"
    assert "domain" not in cookie.attributes


def uuid_of(response: httpx.Response) -> uuid.UUID:
    assert response.status_code == 200, response.text
    return uuid.UUID(response.json()["id"])


async def cookie_session(client: httpx.AsyncClient, factory: Factory) -> tuple[str, str]:
    """A user signed in in cookie mode: (access token, cookie value)."""
    user = await factory.user()
    response = await login(client, user.email, TEST_PASSWORD)
    assert response.status_code == 200, response.text
    return response.json()["access_token"], refresh_cookie(response).value


# -- cookie mode ---------------------------------------------------------------------------------


async def test_login_in_cookie_mode_sets_the_cookie_and_no_body_token(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    user = await factory.user()
    response = await login(client, user.email, TEST_PASSWORD)
    assert response.status_code == 200, response.text
    pair = response.json()
    assert set(pair) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_token_expires_in",
    }
    assert_refresh_cookie(refresh_cookie(response), pair)
    assert len(set_cookies(response)) == 1
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert (await me(client, pair["access_token"])).status_code == 200


async def test_body_mode_is_the_default_and_sets_no_cookie(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    user = await factory.user()
    for body in (
        {"email": user.email, "password": TEST_PASSWORD},
        {"email": user.email, "password": TEST_PASSWORD, "refresh_token_transport": "body"},
    ):
        response = await client.post(f"{API}/auth/login", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["refresh_token"].startswith("agr_")
        assert set_cookies(response) == []
    refused = await client.post(
        f"{API}/auth/login",
        json={"email": user.email, "password": TEST_PASSWORD, "refresh_token_transport": "url"},
    )
    assert_problem(refused, 422, "validation_error")


async def test_refresh_by_cookie_rotates_into_a_new_cookie_and_the_old_one_is_reuse(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    access, first = await cookie_session(client, factory)
    uid = uuid_of(await me(client, access))

    rotated = await refresh_by_cookie(client, first)
    assert rotated.status_code == 200, rotated.text
    pair = rotated.json()
    second = refresh_cookie(rotated)
    assert_refresh_cookie(second, pair)
    assert second.value != first
    assert rotated.headers["cache-control"] == "no-store"
    assert (await me(client, pair["access_token"])).status_code == 200

    # The rotated cookie goes on rotating; the spent one is a replay: the session ends.
    third = await refresh_by_cookie(client, second.value)
    assert third.status_code == 200, third.text
    replay = await refresh_by_cookie(client, first)
    assert_problem(replay, 401, "invalid_token")
    assert no_refresh_cookie(replay)
    assert await audit_count(runtime, "refresh_reuse_detected", user_id=uid) == 1
    assert_problem(
        await refresh_by_cookie(client, refresh_cookie(third).value), 401, "invalid_token"
    )
    assert_problem(await me(client, third.json()["access_token"]), 401, "invalid_token")


async def test_a_refresh_by_cookie_always_answers_in_cookie_mode(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    """A script on the page cannot trade the HttpOnly cookie for a token it can read."""
    _, cookie = await cookie_session(client, factory)
    response = await refresh_by_cookie(client, cookie, json={"refresh_token_transport": "body"})
    assert response.status_code == 200, response.text
    assert response.json()["refresh_token"] is None
    assert_refresh_cookie(refresh_cookie(response), response.json())


async def test_a_body_token_can_move_into_the_cookie(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    response = await post(
        client,
        "/auth/refresh",
        origin=None,
        json={"refresh_token": account.refresh_token, "refresh_token_transport": "cookie"},
    )
    assert response.status_code == 200, response.text
    cookie = refresh_cookie(response)
    assert_refresh_cookie(cookie, response.json())
    assert (await refresh_by_cookie(client, cookie.value)).status_code == 200


@pytest.mark.parametrize("origin", [ALLOWED, OWN], ids=["frontend", "own"])
async def test_logout_by_cookie_clears_it_and_ends_the_session(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime, origin: str
) -> None:
    access, cookie = await cookie_session(client, factory)
    uid = uuid_of(await me(client, access))

    response = await logout_by_cookie(client, cookie, origin=origin)
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_cleared(refresh_cookie(response))

    assert_problem(await me(client, access), 401, "invalid_token")
    assert_problem(await refresh_by_cookie(client, cookie), 401, "invalid_token")
    assert await audit_count(runtime, "logout", user_id=uid) == 1
    # Idempotent: the ended cookie logs out again, quietly.
    again = await logout_by_cookie(client, cookie, origin=origin)
    assert again.status_code == 204
    assert_cleared(refresh_cookie(again))
    assert await audit_count(runtime, "logout", user_id=uid) == 1


async def test_logout_all_clears_the_cookie(factory: Factory, client: httpx.AsyncClient) -> None:
    access, cookie = await cookie_session(client, factory)
    response = await post(client, "/auth/logout-all", headers=bearer(access), origin=None)
    assert response.status_code == 204, response.text
    assert_cleared(refresh_cookie(response))
    assert_problem(await refresh_by_cookie(client, cookie), 401, "invalid_token")


# -- CSRF: the Origin check ------------------------------------------------------------------------


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
async def test_the_cookie_from_a_foreign_or_missing_origin_is_refused_untouched(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime, origin: str | None
) -> None:
    access, cookie = await cookie_session(client, factory)
    uid = uuid_of(await me(client, access))

    for path, headers in (
        ("/auth/refresh", {}),
        ("/auth/logout", {}),
        ("/auth/logout", bearer(access)),
    ):
        refused = await post(client, path, cookie=cookie, origin=origin, headers=headers)
        assert_problem(refused, 403, "csrf_failed")
        assert set_cookies(refused) == [], path

    # Neither spent nor revoked: the same cookie refreshes from an allowed origin, no incident.
    assert (await me(client, access)).status_code == 200
    response = await refresh_by_cookie(client, cookie)
    assert response.status_code == 200, response.text
    assert await audit_count(runtime, "refresh_reuse_detected", user_id=uid) == 0
    assert await audit_count(runtime, "logout", user_id=uid) == 0


@pytest.mark.parametrize(
    "origin",
    [ALLOWED, OWN, "HTTP://LOCALHOST:5173", "http://127.0.0.1:8000"],
    ids=["frontend", "own", "upper-case", "own-again"],
)
async def test_allowed_origins_use_the_cookie(
    factory: Factory, client: httpx.AsyncClient, origin: str
) -> None:
    _, cookie = await cookie_session(client, factory)
    response = await refresh_by_cookie(client, cookie, origin=origin)
    assert response.status_code == 200, response.text


async def test_a_body_token_needs_no_origin_and_wins_over_the_cookie(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, cookie = await cookie_session(client, factory)
    account = await factory.account()

    # Refresh: the body's token rotates (in body mode), the cookie's is not looked at.
    response = await post(
        client,
        "/auth/refresh",
        cookie=cookie,
        origin=None,
        json={"refresh_token": account.refresh_token},
    )
    assert response.status_code == 200, response.text
    assert response.json()["refresh_token"].startswith("agr_")
    assert set_cookies(response) == []
    assert await successors_of(runtime, cookie) == 0

    # Logout: the body's session ends; the cookie's session lives on.
    body_token = response.json()["refresh_token"]
    out = await post(
        client, "/auth/logout", cookie=cookie, origin=None, json={"refresh_token": body_token}
    )
    assert out.status_code == 204, out.text
    assert_problem(await refresh(client, body_token), 401, "invalid_token")
    assert (await refresh_by_cookie(client, cookie)).status_code == 200


async def test_neither_body_token_nor_cookie_is_401(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    for path in ("/auth/refresh", "/auth/logout"):
        for body in (None, {}, {"refresh_token": None}):
            response = await post(client, path, json=body)
            assert_problem(response, 401, "invalid_token")
            assert set_cookies(response) == []
    # An empty cookie is no cookie.
    assert_problem(await refresh_by_cookie(client, ""), 401, "invalid_token")
    # Logout with a bearer alone ends the bearer's session.
    account = await factory.account()
    response = await post(client, "/auth/logout", headers=bearer(account.access_token))
    assert response.status_code == 204, response.text
    assert_problem(await me(client, account.access_token), 401, "invalid_token")
    assert_problem(await refresh(client, account.refresh_token), 401, "invalid_token")


# -- the grace window ------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [GRACE], ids=["grace5"])
async def test_concurrent_cookie_refreshes_inside_the_grace_window_share_the_successor(
    factory: Factory,
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings_overrides: dict[str, Any],
) -> None:
    """Two tabs refresh with the same cookie at once: both get the same successor cookie."""
    access, cookie = await cookie_session(client, factory)
    uid = uuid_of(await me(client, access))

    responses = await asyncio.gather(
        refresh_by_cookie(client, cookie), refresh_by_cookie(client, cookie)
    )
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    cookies = [refresh_cookie(r) for r in responses]
    assert cookies[0].value == cookies[1].value != cookie
    for response, set_cookie in zip(responses, cookies, strict=True):
        assert_refresh_cookie(set_cookie, response.json())
    assert responses[0].json()["access_token"] == responses[1].json()["access_token"]
    assert await successors_of(runtime, cookie) == 1
    assert await audit_count(runtime, "refresh_reuse_detected", user_id=uid) == 0

    # A later replay inside the window gets that very cookie again.
    with shifted(timedelta(seconds=3)):
        replay = await refresh_by_cookie(client, cookie)
    assert replay.status_code == 200, replay.text
    assert refresh_cookie(replay).value == cookies[0].value
    assert (await refresh_by_cookie(client, cookies[0].value)).status_code == 200


@pytest.mark.parametrize("settings_overrides", [GRACE], ids=["grace5"])
async def test_a_cookie_replay_after_the_grace_window_is_reuse(
    factory: Factory,
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings_overrides: dict[str, Any],
) -> None:
    access, cookie = await cookie_session(client, factory)
    uid = uuid_of(await me(client, access))
    rotated = await refresh_by_cookie(client, cookie)
    successor = refresh_cookie(rotated).value
    with shifted(timedelta(seconds=6)):
        replay = await refresh_by_cookie(client, cookie)
        assert_problem(replay, 401, "invalid_token")
        assert set_cookies(replay) == []
        assert await audit_count(runtime, "refresh_reuse_detected", user_id=uid) == 1
        assert_problem(await refresh_by_cookie(client, successor), 401, "invalid_token")
        assert_problem(await me(client, rotated.json()["access_token"]), 401, "invalid_token")


# -- other token-issuing routes and settings -------------------------------------------------------


async def test_password_change_in_cookie_mode_sets_the_cookie(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    access, old_cookie = await cookie_session(client, factory)
    response = await post(
        client,
        "/users/me/password",
        headers=bearer(access),
        json={
            "current_password": TEST_PASSWORD,
            "new_password": "a different long passphrase 42",
            "refresh_token_transport": "cookie",
        },
    )
    assert response.status_code == 200, response.text
    cookie = refresh_cookie(response)
    assert_refresh_cookie(cookie, response.json())
    assert (await me(client, response.json()["access_token"])).status_code == 200
    # The old session ended with the change; the new cookie carries on.
    assert_problem(await refresh_by_cookie(client, old_cookie), 401, "invalid_token")
    assert (await refresh_by_cookie(client, cookie.value)).status_code == 200


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "refresh_cookie_samesite": "lax",
            "refresh_cookie_domain": "example.test",
            "refresh_cookie_name": "__Secure-session",
        }
    ],
    ids=["lax-domain"],
)
async def test_cookie_settings_are_rendered(
    factory: Factory, client: httpx.AsyncClient, settings_overrides: dict[str, Any]
) -> None:
    user = await factory.user()
    response = await login(client, user.email, TEST_PASSWORD)
    assert response.status_code == 200, response.text
    cookie = refresh_cookie(response, name="__Secure-session")
    assert cookie.attributes["samesite"] == "Lax"
    assert cookie.attributes["domain"] == "example.test"
    assert "secure" in cookie.attributes
    assert cookie.max_age == response.json()["refresh_token_expires_in"]

    headers = {"Cookie": f"__Secure-session={cookie.value}", "Origin": ALLOWED}
    rotated = await client.post(f"{API}/auth/refresh", headers=headers)
    assert rotated.status_code == 200, rotated.text
    successor = refresh_cookie(rotated, name="__Secure-session")
    out = await client.post(
        f"{API}/auth/logout",
        headers={"Cookie": f"__Secure-session={successor.value}", "Origin": ALLOWED},
    )
    assert out.status_code == 204, out.text
    cleared = refresh_cookie(out, name="__Secure-session")
    assert cleared.max_age == 0
    assert cleared.attributes["domain"] == "example.test"
    assert cleared.attributes["samesite"] == "Lax"


@pytest.mark.parametrize("settings_overrides", [{"refresh_cookie_secure": False}], ids=["insecure"])
async def test_secure_can_be_switched_off_for_development(
    factory: Factory, client: httpx.AsyncClient, settings_overrides: dict[str, Any]
) -> None:
    user = await factory.user()
    response = await login(client, user.email, TEST_PASSWORD)
    assert "secure" not in refresh_cookie(response).attributes


# -- CORS --------------------------------------------------------------------------------------------


def assert_cors(response: httpx.Response, origin: str = ALLOWED) -> None:
    assert response.headers.get("access-control-allow-origin") == origin, response.headers
    assert response.headers.get("access-control-allow-credentials") == "true"


async def test_allowed_origins_get_credentials_on_success_and_errors(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    _, cookie = await cookie_session(client, factory)
    ok = await refresh_by_cookie(client, cookie)
    assert ok.status_code == 200
    assert_cors(ok)
    unauthorized = await post(client, "/auth/refresh", json={"refresh_token": "agr_" + "A" * 43})
    assert_problem(unauthorized, 401, "invalid_token")
    assert_cors(unauthorized)
    unverified = await factory.user(verified=False)
    forbidden = await login(client, unverified.email, TEST_PASSWORD)
    assert_problem(forbidden, 403, "email_not_verified")
    assert_cors(forbidden)
    # The hardening layer's own answers too (CORS wraps it).
    unsupported = await client.post(
        f"{API}/auth/refresh",
        content=b"{}",
        headers={"Content-Type": "text/plain", "Origin": ALLOWED},
    )
    assert_problem(unsupported, 415, "unsupported_media_type")
    assert_cors(unsupported)
    # A refused cookie is a 403 to a foreign origin, which CORS does not let read it.
    csrf = await refresh_by_cookie(client, refresh_cookie(ok).value, origin="http://evil.example")
    assert_problem(csrf, 403, "csrf_failed")
    assert "access-control-allow-origin" not in csrf.headers


@pytest.mark.parametrize(
    "settings_overrides",
    [{"rate_limits_enabled": True, "rate_limits": {"refresh_ip": "1/minute"}}],
    ids=["refresh-1-per-minute"],
)
async def test_a_rate_limited_answer_carries_credentials_too(
    factory: Factory, client: httpx.AsyncClient, settings_overrides: dict[str, Any]
) -> None:
    _, cookie = await cookie_session(client, factory)
    assert (await refresh_by_cookie(client, cookie)).status_code == 200
    limited = await refresh_by_cookie(client, cookie)
    assert_problem(limited, 429, "rate_limited")
    assert_cors(limited)
    assert "retry-after" in limited.headers["access-control-expose-headers"].lower()
    assert set_cookies(limited) == []


@pytest.mark.parametrize("path", ["/auth/refresh", "/auth/logout", "/auth/login"])
async def test_preflight_for_a_json_post_from_an_allowed_origin(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.options(
        f"{API}{path}",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 200, response.text
    assert_cors(response)
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "content-type" in response.headers["access-control-allow-headers"].lower()
