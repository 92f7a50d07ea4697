"""Registration, verification and the email behind them."""

from __future__ import annotations

import httpx

from tests.support.api import assert_problem
from tests.support.flows import TEST_PASSWORD, Flows


async def test_verification_link_is_single_use(flows: Flows, client: httpx.AsyncClient) -> None:
    email = flows.new_email()
    await flows.register(email)
    token = await flows.verification_token(email)
    assert token.startswith("agv_") and len(token) >= 4 + 43
    first = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert first.status_code == 200
    assert first.json()["email_verified"] is True
    second = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert second.status_code == 400
    assert second.json()["code"] == "invalid_token"
    assert second.headers["content-type"] == "application/problem+json"


async def test_verify_link_uses_frontend_url_not_host_header(
    flows: Flows, client: httpx.AsyncClient
) -> None:
    email = flows.new_email()
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": TEST_PASSWORD},
        headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
    )
    assert response.status_code == 202
    mail = await flows.sink.latest(email)
    assert mail.link("/verify-email").startswith("http://localhost:5173/verify-email?token=")
    assert "evil.example" not in mail.text and "evil.example" not in mail.html


async def test_unknown_expired_and_garbage_tokens(flows: Flows, client: httpx.AsyncClient) -> None:
    from datetime import timedelta

    from authgate.core.time import shifted

    email = flows.new_email()
    await flows.register(email)
    token = await flows.verification_token(email)
    for bad in ("agv_" + "A" * 43, "nonsense", "", "agv_" + "x" * 400, token[:-1]):
        response = await client.post("/api/v1/auth/verify-email", json={"token": bad})
        assert response.status_code in (400, 422), bad
    with shifted(timedelta(days=2)):
        expired = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert expired.status_code == 400
    assert expired.json()["code"] == "invalid_token"


async def _two_sign_ups(flows: Flows, email: str) -> tuple[str, str]:
    """The first sign-up's link and the second's (whose mail names the second sign-up)."""
    await flows.register(email, FIRST_PASSWORD, name="First")
    first_token = await flows.verification_token(email, 1)
    again = await flows.client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": SECOND_PASSWORD, "name": "Second"},
        headers={"User-Agent": "SecondBrowser/1.0"},
    )
    assert again.status_code == 202
    mails = await flows.sink.wait_for(email, 2)
    second_mail = mails[-1]
    assert "Another sign-up" in second_mail.subject
    assert "SecondBrowser/1.0" in second_mail.text  # says plainly which sign-up it finishes
    assert "Second" not in second_mail.text.replace("SecondBrowser", "")  # no registrant text
    return first_token, second_mail.token("/verify-email")


FIRST_PASSWORD = "first password that is long"
SECOND_PASSWORD = "second password that is long"


async def test_reregistering_unverified_address_changes_nothing_until_a_link_is_followed(
    flows: Flows, client: httpx.AsyncClient
) -> None:
    """A second sign-up never silently sets the account's password: until a link is followed
    the first password stays, and the second registrant's password does not work."""
    email = flows.new_email()
    await _two_sign_ups(flows, email)
    assert_problem(await flows.login(email, FIRST_PASSWORD), 403, "email_not_verified")
    assert_problem(await flows.login(email, SECOND_PASSWORD), 401, "invalid_credentials")


async def test_the_second_sign_ups_link_sets_its_password_and_kills_the_first(
    flows: Flows, client: httpx.AsyncClient
) -> None:
    email = flows.new_email()
    first_token, second_token = await _two_sign_ups(flows, email)
    ok = await client.post("/api/v1/auth/verify-email", json={"token": second_token})
    assert ok.status_code == 200, ok.text
    assert ok.json()["name"] == "Second"
    old_link = await client.post("/api/v1/auth/verify-email", json={"token": first_token})
    assert_problem(old_link, 400, "invalid_token")
    assert_problem(await flows.login(email, FIRST_PASSWORD), 401, "invalid_credentials")
    assert (await flows.login(email, SECOND_PASSWORD)).status_code == 200


async def test_the_first_sign_ups_link_keeps_its_password_and_kills_the_second(
    flows: Flows, client: httpx.AsyncClient
) -> None:
    email = flows.new_email()
    first_token, second_token = await _two_sign_ups(flows, email)
    ok = await client.post("/api/v1/auth/verify-email", json={"token": first_token})
    assert ok.status_code == 200, ok.text
    assert ok.json()["name"] == "First"
    later = await client.post("/api/v1/auth/verify-email", json={"token": second_token})
    assert_problem(later, 400, "invalid_token")
    assert (await flows.login(email, FIRST_PASSWORD)).status_code == 200
    assert_problem(await flows.login(email, SECOND_PASSWORD), 401, "invalid_credentials")


async def test_emails_are_unique_case_insensitively(
    flows: Flows, client: httpx.AsyncClient
) -> None:
    account = await flows.signed_up("Mixed.Case@Example.COM")
    me = (await client.get("/api/v1/users/me", headers=account.auth)).json()
    assert me["email"] == "Mixed.Case@example.com"  # domain normalised
    again = await flows.register("mixed.case@example.com", "another password entirely")
    assert again.status_code == 202
    login = await flows.login("MIXED.CASE@example.com")
    assert login.status_code == 200


async def test_invalid_email_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register", json={"email": "not-an-email", "password": TEST_PASSWORD}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["errors"][0]["loc"] == ["body", "email"]


async def test_resend_sends_a_new_link_and_kills_the_old(
    flows: Flows, client: httpx.AsyncClient
) -> None:
    email = flows.new_email()
    await flows.register(email)
    old = await flows.verification_token(email, 1)
    response = await client.post("/api/v1/auth/verify-email/resend", json={"email": email})
    assert response.status_code == 202
    new = await flows.verification_token(email, 2)
    assert (await client.post("/api/v1/auth/verify-email", json={"token": old})).status_code == 400
    assert (await client.post("/api/v1/auth/verify-email", json={"token": new})).status_code == 200


async def test_token_endpoint_password_grant_for_swagger(
    flows: Flows, client: httpx.AsyncClient
) -> None:
    account = await flows.signed_up()
    response = await client.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": account.email, "password": account.password},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert response.headers["cache-control"] == "no-store"
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    bad = await client.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": account.email, "password": "nope nope nope"},
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_grant"
    unsupported = await client.post("/api/v1/auth/token", data={"grant_type": "client_credentials"})
    assert unsupported.json()["error"] == "unsupported_grant_type"


async def test_case_folding_never_merges_distinct_mailboxes(
    flows: Flows, client: httpx.AsyncClient
) -> None:
    """Issue 11: Unicode case-folding made straße@ and strasse@ (ﬁ@ and fi@) one account."""
    for first, second in (
        ("straße@example.com", "strasse@example.com"),
        ("ﬁ@example.com", "fi@example.com"),
    ):
        one = await flows.signed_up(first)
        other = await flows.signed_up(second, password="another password entirely")
        me_one = (await client.get("/api/v1/users/me", headers=one.auth)).json()
        me_other = (await client.get("/api/v1/users/me", headers=other.auth)).json()
        assert me_one["id"] != me_other["id"]
        assert me_one["email"] == first and me_other["email"] == second
        assert (await flows.login(first, "another password entirely")).status_code == 401


async def test_ascii_case_still_does_not_matter(flows: Flows, client: httpx.AsyncClient) -> None:
    account = await flows.signed_up("User@Example.com")
    again = await flows.register("user@example.com", "another password entirely")
    assert again.status_code == 202
    login = await flows.login("USER@EXAMPLE.COM")
    assert login.status_code == 200
    me = (await client.get("/api/v1/users/me", headers=account.auth)).json()
    login_me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert login_me.json()["id"] == me["id"]
