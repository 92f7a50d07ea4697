"""``POST /oauth/token`` in cookie mode: the SPA redeems its code and gets the refresh cookie."""

from __future__ import annotations

import httpx

from tests.support.api import me
from tests.support.cookies import (
    ALLOWED,
    API,
    COOKIE,
    no_refresh_cookie,
    refresh_by_cookie,
    refresh_cookie,
    set_cookies,
)
from tests.support.oauth import Browser, OidcServer, new_sub


async def test_redeeming_the_code_in_cookie_mode_sets_the_refresh_cookie(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer
) -> None:
    idp.next_user(new_sub(), "cookie@example.com", email_verified=True)
    code = await browser.code()
    # The client's jar carries the redemption cookie of the flow, as a browser would.
    response = await client.post(
        f"{API}/oauth/token",
        json={"code": code, "refresh_token_transport": "cookie"},
        headers={"Origin": ALLOWED},
    )
    assert response.status_code == 200, response.text
    pair = response.json()
    assert pair["refresh_token"] is None
    cookie = refresh_cookie(response)
    assert cookie.value.startswith("agr_")
    assert cookie.max_age == pair["refresh_token_expires_in"]
    assert cookie.attributes["path"] == "/api/v1/auth"
    assert cookie.attributes["samesite"] == "Strict"
    assert {"httponly", "secure"} <= set(cookie.attributes)
    # The flow's own redemption cookie is cleared in the same answer.
    others = [c for c in set_cookies(response) if c.name != COOKIE]
    assert [c.max_age for c in others] == [0]
    assert response.headers["cache-control"] == "no-store"

    assert (await me(client, pair["access_token"])).status_code == 200
    rotated = await refresh_by_cookie(client, cookie.value)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["refresh_token"] is None


async def test_redeeming_the_code_in_body_mode_sets_no_refresh_cookie(
    browser: Browser, client: httpx.AsyncClient, idp: OidcServer
) -> None:
    idp.next_user(new_sub(), "body@example.com", email_verified=True)
    code = await browser.code()
    response = await client.post(f"{API}/oauth/token", json={"code": code})
    assert response.status_code == 200, response.text
    assert response.json()["refresh_token"].startswith("agr_")
    assert no_refresh_cookie(response)
