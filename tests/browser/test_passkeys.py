"""Passkeys in the example SPA, in Chromium with a CDP virtual authenticator (a platform
authenticator that holds discoverable credentials and verifies the user), against a real
authgate: add a passkey on the account page, sign out, sign in with it without typing the
email."""

from __future__ import annotations

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.support.browser import AuthgateProcess, SpaServer, verified_user
from tests.support.mail import SmtpSink

pytestmark = pytest.mark.slow


async def on_page(page: Page, name: str) -> None:
    await expect(page.locator("main")).to_have_attribute("data-page", name)


async def virtual_authenticator(context: BrowserContext, page: Page) -> str:
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable", {"enableUI": False})
    added = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return str(added["authenticatorId"])


async def test_add_a_passkey_then_sign_in_with_it(
    context: BrowserContext,
    page: Page,
    spa_config: SpaServer,
    authgate: AuthgateProcess,
    smtp_sink: SmtpSink,
) -> None:
    email = "passkey-user@example.com"
    await verified_user(authgate, smtp_sink, email)
    await virtual_authenticator(context, page)

    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill("violet tractor sings under nine moons")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await on_page(page, "account")

    await page.get_by_label("Passkey name").fill("Virtual laptop")
    await page.get_by_role("button", name="Add a passkey").click()
    await expect(page.locator("#passkeys li .passkey-name")).to_have_text(["Virtual laptop"])
    assert authgate.audit_count("passkey_added") == 1

    await page.get_by_role("button", name="Sign out", exact=True).click()
    await on_page(page, "login")

    await page.get_by_role("button", name="Sign in with a passkey").click()
    await on_page(page, "account")
    await expect(page.locator("#email")).to_have_text(email)
    await expect(page.locator("#passkeys li")).to_contain_text(["last used"])
    assert authgate.audit_count("login_succeeded") == 2
