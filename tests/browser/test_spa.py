"""The example SPA on the kit, in Chromium, against a real authgate.

Cookie transport (docs/api.md §10) end to end: sign-up to sign-out, two tabs refreshing at
once, another site trying the refresh cookie. The body-transport test covers the account pages
with what every authgate version speaks.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import pytest
from playwright.async_api import BrowserContext, Cookie, Page, Response, expect

from tests.support.browser import (
    COOKIE,
    NEW_PASSWORD,
    PASSWORD,
    STORAGE_JS,
    AuthgateProcess,
    SpaServer,
    enable_totp,
    link_in_mail,
    verified_user,
)
from tests.support.mail import SmtpSink

pytestmark = pytest.mark.slow


async def on_page(page: Page, name: str) -> None:
    await expect(page.locator("main")).to_have_attribute("data-page", name)


async def no_refresh_token_in_storage(page: Page) -> None:
    storage = await page.evaluate(STORAGE_JS)
    assert "agr_" not in storage, storage


async def sign_up(page: Page, email: str) -> None:
    await page.goto("/signup")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Name").fill("Ada")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign up").click()
    await on_page(page, "signup-sent")


async def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await on_page(page, "account")
    await expect(page.locator("#email")).to_have_text(email)


async def cookies_for_refresh(context: BrowserContext, authgate: AuthgateProcess) -> list[Cookie]:
    """The refresh cookies the browser would send to authgate's refresh endpoint."""
    url = f"{authgate.url}/api/v1/auth/refresh"
    return [c for c in await context.cookies(url) if c.get("name") == COOKIE]


async def refresh_cookie(context: BrowserContext, authgate: AuthgateProcess) -> str:
    cookies = await cookies_for_refresh(context, authgate)
    assert len(cookies) == 1, cookies
    cookie = cookies[0]
    assert cookie.get("httpOnly") is True
    assert cookie.get("sameSite") == "Strict"
    assert cookie.get("path") == "/api/v1/auth"
    value = cookie.get("value", "")
    assert value.startswith("agr_")
    return value


async def test_sign_up_verify_and_reset_pages(
    page: Page, spa_config: SpaServer, authgate: AuthgateProcess, smtp_sink: SmtpSink
) -> None:
    """The pages that need no session: sign-up, the mailed verification and reset links."""
    email = "pages@example.com"
    await sign_up(page, email)
    link = await link_in_mail(smtp_sink, email, "/verify-email")
    assert link.startswith(f"{spa_config.origin}/verify-email?token=agv_")
    await page.goto(link)
    await on_page(page, "verified")
    await expect(page.locator("#notice")).to_contain_text(email)
    assert "token" not in page.url  # dropped from the address bar and history
    await no_refresh_token_in_storage(page)

    await page.goto(link)  # single use
    await on_page(page, "verify-email-failed")
    await expect(page.get_by_role("alert")).to_have_attribute("data-code", "invalid_token")

    await page.goto("/login")
    await page.get_by_role("link", name="Forgot your password?").click()
    await on_page(page, "forgot-password")
    await page.get_by_label("Email").fill(email)
    await page.get_by_role("button", name="Send me a link").click()
    await on_page(page, "forgot-sent")
    reset = await link_in_mail(smtp_sink, email, "/reset-password")
    assert reset.startswith(f"{spa_config.origin}/reset-password?token=agp_")
    await page.goto(reset)
    await on_page(page, "reset-password")
    await page.get_by_label("New password").fill("short")
    await page.get_by_label("New password").evaluate(
        "(input) => input.removeAttribute('minlength')"
    )
    await page.get_by_role("button", name="Set password").click()
    await expect(page.get_by_role("alert")).to_have_attribute("data-code", "weak_password")
    await page.get_by_label("New password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Set password").click()
    await on_page(page, "password-reset")

    async with authgate.api() as api:
        login = await api.post(
            "/api/v1/auth/login", json={"email": email, "password": NEW_PASSWORD}
        )
    assert login.status_code == 200, login.text


async def test_account_pages_with_body_transport(
    context: BrowserContext, spa_config: SpaServer, authgate: AuthgateProcess, smtp_sink: SmtpSink
) -> None:
    """Account, sessions, password change, sign-out, with the refresh token in page memory."""
    spa_config.config["transport"] = "body"
    email = "body@example.com"
    await verified_user(authgate, smtp_sink, email)
    async with authgate.api() as api:
        elsewhere = await api.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
    assert elsewhere.status_code == 200

    page = await context.new_page()
    await sign_in(page, email)
    rows = page.locator("#sessions tbody tr")
    await expect(rows).to_have_count(2)
    await expect(page.locator("#sessions strong")).to_have_text(" (this device)")
    await page.locator("#sessions tr:not(:has(strong)) button.end-session").click()
    await expect(rows).to_have_count(1)
    async with authgate.api() as api:
        refused = await api.post(
            "/api/v1/auth/refresh", json={"refresh_token": elsewhere.json()["refresh_token"]}
        )
    assert refused.status_code == 401

    await page.get_by_label("Current password").fill("not my password at all")
    await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Change password").click()
    await expect(page.locator("#change-password [role=alert]")).to_have_attribute(
        "data-code", "invalid_password"
    )
    await page.get_by_label("Current password").fill(PASSWORD)
    await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Change password").click()
    await expect(page.locator("#password-changed")).to_be_visible()
    await no_refresh_token_in_storage(page)

    await page.evaluate("window.authgateTest.expireAccessToken()")
    assert await page.evaluate("window.authgateTest.me()") == email  # refreshed with the body token

    await page.get_by_role("button", name="Sign out", exact=True).click()
    await on_page(page, "login")
    await page.goto("/account")
    await on_page(page, "login")


async def test_cookie_session_from_sign_up_to_sign_out(
    context: BrowserContext, spa_config: SpaServer, authgate: AuthgateProcess, smtp_sink: SmtpSink
) -> None:
    email = "cookie@example.com"
    page = await context.new_page()
    await sign_up(page, email)
    await no_refresh_token_in_storage(page)
    await page.goto(await link_in_mail(smtp_sink, email, "/verify-email"))
    await on_page(page, "verified")
    await no_refresh_token_in_storage(page)

    await sign_in(page, email)
    await no_refresh_token_in_storage(page)
    first = await refresh_cookie(context, authgate)

    await page.reload()  # the cookie restores the session; the access token was in memory only
    await on_page(page, "account")
    await expect(page.locator("#email")).to_have_text(email)
    await no_refresh_token_in_storage(page)
    latest = await refresh_cookie(context, authgate)
    assert latest != first  # rotated by the refresh that restored the session

    await page.get_by_role("button", name="Sign out", exact=True).click()
    await on_page(page, "login")
    await no_refresh_token_in_storage(page)
    await page.reload()
    await on_page(page, "login")
    await page.goto("/account")
    await on_page(page, "login")
    assert await cookies_for_refresh(context, authgate) == []

    async with authgate.api(origin=spa_config.origin) as api:
        for value in (latest, first):
            response = await api.post(
                "/api/v1/auth/refresh", json={}, headers={"Cookie": f"{COOKIE}={value}"}
            )
            assert response.status_code == 401, response.text
            assert response.json()["code"] == "invalid_token"


async def test_two_tabs_refreshing_at_once_stay_signed_in(
    context: BrowserContext, spa_config: SpaServer, authgate: AuthgateProcess, smtp_sink: SmtpSink
) -> None:
    email = "tabs@example.com"
    await verified_user(authgate, smtp_sink, email)
    first = await context.new_page()
    await sign_in(first, email)
    second = await context.new_page()
    await second.goto("/account")
    await on_page(second, "account")

    refreshes: list[str] = []
    context.on(
        "request",
        lambda r: (
            refreshes.append(r.url)
            if r.method == "POST" and r.url.endswith("/api/v1/auth/refresh")
            else None
        ),
    )
    reused_before = authgate.audit_count("refresh_reuse_detected")
    for tab in (first, second):
        await tab.evaluate("window.authgateTest.expireAccessToken()")
    emails = await asyncio.gather(
        first.evaluate("window.authgateTest.me()"), second.evaluate("window.authgateTest.me()")
    )
    assert list(emails) == [email, email]
    assert len(refreshes) == 1, refreshes  # one tab refreshed, the other took its token
    assert authgate.audit_count("refresh_reuse_detected") == reused_before

    for tab in (first, second):
        await tab.reload()
        await on_page(tab, "account")
        assert await tab.evaluate("window.authgateTest.me()") == email
    assert authgate.audit_count("refresh_reuse_detected") == reused_before


async def test_sign_in_with_a_second_factor(
    context: BrowserContext, spa_config: SpaServer, authgate: AuthgateProcess, smtp_sink: SmtpSink
) -> None:
    """The MFA step of the sign-in form (§8), with a recovery code (a TOTP code would have to
    wait for the next 30-second step: the one that confirmed the enrollment counts as used)."""
    email = "mfa@example.com"
    await verified_user(authgate, smtp_sink, email)
    recovery = await enable_totp(authgate, email)

    page = await context.new_page()
    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await on_page(page, "mfa")
    await page.get_by_label("Method").select_option("recovery_code")
    await page.get_by_label("Code").fill("not-a-code")
    await page.get_by_role("button", name="Verify").click()
    await expect(page.get_by_role("alert")).to_have_attribute("data-code", "invalid_code")
    await page.get_by_label("Code").fill(recovery[0])
    await page.get_by_role("button", name="Verify").click()
    await on_page(page, "account")
    await expect(page.locator("#email")).to_have_text(email)
    await no_refresh_token_in_storage(page)


OTHER_SITE_PAGE = """<!doctype html>
<title>another site</title>
<script>
window.attack = async (api) => {
  const results = {};
  for (const path of ["/api/v1/auth/refresh", "/api/v1/auth/logout"]) {
    try {
      const response = await fetch(api + path, {
        method: "POST",
        credentials: "include",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token_transport: "cookie" }),
      });
      results[path + " cors"] = response.status + " " + (await response.text());
    } catch (error) {
      results[path + " cors"] = "blocked";
    }
    try {
      const response = await fetch(api + path, {
        method: "POST", credentials: "include", mode: "no-cors", body: "{}",
      });
      results[path + " no-cors"] = response.type;
    } catch (error) {
      results[path + " no-cors"] = "failed";
    }
  }
  return results;
};
</script>
"""


async def test_another_site_gets_no_token_and_cannot_sign_out(
    context: BrowserContext, spa_config: SpaServer, authgate: AuthgateProcess, smtp_sink: SmtpSink
) -> None:
    email = "othersite@example.com"
    await verified_user(authgate, smtp_sink, email)
    page = await context.new_page()
    await sign_in(page, email)
    before = await refresh_cookie(context, authgate)

    spa_config.pages["/other-site.html"] = OTHER_SITE_PAGE
    other = await context.new_page()
    answers: list[Response] = []
    other.on("response", lambda response: answers.append(response))
    await other.goto(f"{spa_config.other_site}/other-site.html")
    results = await other.evaluate("(api) => window.attack(api)", authgate.url)
    assert results == {
        "/api/v1/auth/refresh cors": "blocked",
        "/api/v1/auth/refresh no-cors": "opaque",
        "/api/v1/auth/logout cors": "blocked",
        "/api/v1/auth/logout no-cors": "opaque",
    }, results
    ours = [answer for answer in answers if answer.url.startswith(authgate.url)]
    # The JSON requests never left the browser (their preflight was refused); the no-cors ones
    # went without the SameSite=Strict cookie and were refused too.
    assert sorted(urlsplit(answer.url).path for answer in ours) == [
        "/api/v1/auth/logout",
        "/api/v1/auth/refresh",
    ]
    for answer in ours:
        assert answer.status >= 400, (answer.url, answer.status)
        assert "agr_" not in json.dumps(await answer.all_headers())
    assert await refresh_cookie(context, authgate) == before  # neither spent nor cleared

    await page.evaluate("window.authgateTest.expireAccessToken()")
    assert await page.evaluate("window.authgateTest.me()") == email
    await page.reload()
    await on_page(page, "account")
    assert authgate.audit_count("refresh_reuse_detected") == 0
