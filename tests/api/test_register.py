"""Registration, verification and the email behind them."""

from __future__ import annotations

import httpx

from tests.conftest import TEST_PASSWORD, Flows


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


async def test_reregistering_unverified_address_replaces_password_and_link(
    flows: Flows, client: httpx.AsyncClient
) -> None:
    """The latest registration wins; the earlier password and link stop working."""
    email = flows.new_email()
    first_password = "first password that is long"
    second_password = "second password that is long"
    await flows.register(email, first_password)
    first_token = await flows.verification_token(email, 1)
    await flows.register(email, second_password)
    second_token = await flows.verification_token(email, 2)
    assert first_token != second_token
    old_link = await client.post("/api/v1/auth/verify-email", json={"token": first_token})
    assert old_link.status_code == 400
    ok = await client.post("/api/v1/auth/verify-email", json={"token": second_token})
    assert ok.status_code == 200
    assert (await flows.login(email, first_password)).status_code == 401
    assert (await flows.login(email, second_password)).status_code == 200


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
