"""Turning TOTP on and off, and recovery codes, through the HTTP API (docs/api.md §3.9)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pyotp
from sqlalchemy import select

from authgate.core.time import shifted
from authgate.models import AuditEvent, TotpSecret
from authgate.runtime import Runtime
from tests.support.api import API, assert_problem, bearer, mail_with_subject, me, refresh
from tests.support.db import audit_count, row_count
from tests.support.factories import Factory
from tests.support.flows import Account, Flows
from tests.support.mail import SmtpSink
from tests.support.mfa import enrol, mfa_token, start, status, totp_code, verify, wrong_code

RECOVERY_CODE = re.compile(r"^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$")


async def disable(
    client: httpx.AsyncClient, account: Account, code: str, password: str | None = None
) -> httpx.Response:
    return await client.request(
        "DELETE",
        f"{API}/users/me/mfa/totp",
        json={"password": account.password if password is None else password, "code": code},
        headers=account.auth,
    )


async def regenerate(
    client: httpx.AsyncClient, account: Account, code: str, password: str | None = None
) -> httpx.Response:
    return await client.post(
        f"{API}/users/me/mfa/recovery-codes",
        json={"password": account.password if password is None else password, "code": code},
        headers=account.auth,
    )


async def test_a_new_account_has_no_second_factor(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    assert await status(client, account) == {
        "totp": False,
        "passkeys": 0,
        "recovery_codes_left": 0,
    }
    assert (await client.get(f"{API}/users/me/mfa")).status_code == 401


async def test_enrol_then_sign_in_with_a_fresh_code_once(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    account = await factory.account()
    started = await start(client, account)
    assert started.status_code == 200, started.text
    assert started.headers["cache-control"] == "no-store"
    body = started.json()
    secret = body["secret"]
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)  # base32, 160 bits
    uri = urlsplit(body["otpauth_uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == f"/authgate:{account.email}"
    assert parse_qs(uri.query) == {"secret": [secret], "issuer": ["authgate"]}
    assert body["qr_svg"].startswith("data:image/svg+xml")
    # Nothing changes until it is confirmed: the password alone still signs in.
    assert (await status(client, account))["totp"] is False
    login = await client.post(
        f"{API}/auth/login", json={"email": account.email, "password": account.password}
    )
    assert login.status_code == 200, login.text

    confirm_code = totp_code(secret)
    confirmed = await client.post(
        f"{API}/users/me/mfa/totp/confirm", json={"code": confirm_code}, headers=account.auth
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.headers["cache-control"] == "no-store"
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == len(set(codes)) == 10
    assert all(RECOVERY_CODE.fullmatch(code) for code in codes), codes
    assert await status(client, account) == {
        "totp": True,
        "passkeys": 0,
        "recovery_codes_left": 10,
    }
    mail = await mail_with_subject(smtp_sink, account.email, "Two-step sign-in is on")
    assert secret not in mail.text + mail.html

    # The code that confirmed counts as used.
    token = await mfa_token(client, account.email)
    assert_problem(await verify(client, token, confirm_code), 400, "invalid_code")
    # A fresh code (the next step's, inside the ±1 window) signs in, exactly once.
    fresh = totp_code(secret, steps=1)
    signed_in = await verify(client, token, fresh)
    assert signed_in.status_code == 200, signed_in.text
    pair = signed_in.json()
    assert pair["token_type"] == "Bearer" and pair["refresh_token"].startswith("agr_")
    assert signed_in.headers["cache-control"] == "no-store"
    assert (await me(client, pair["access_token"])).status_code == 200
    again = await mfa_token(client, account.email)
    assert_problem(await verify(client, again, fresh), 400, "invalid_code")

    user_id = uuid.UUID((await me(client, pair["access_token"])).json()["id"])
    async with runtime.sessionmaker() as db:
        events = (
            await db.scalars(
                select(AuditEvent).where(
                    AuditEvent.user_id == user_id, AuditEvent.type == "login_succeeded"
                )
            )
        ).all()
    details = [event.detail for event in events if event.detail]
    assert details == [{"method": "password", "second_factor": "totp"}]
    assert await audit_count(runtime, "mfa_enabled", user_id=user_id) == 1
    assert await audit_count(runtime, "mfa_required", user_id=user_id) == 2


async def test_starting_again_replaces_the_pending_secret_and_409_once_on(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await factory.account()
    first = (await start(client, account)).json()["secret"]
    second = (await start(client, account)).json()["secret"]
    assert first != second
    assert await row_count(runtime, "totp_secrets") == 1
    stale = await client.post(
        f"{API}/users/me/mfa/totp/confirm", json={"code": totp_code(first)}, headers=account.auth
    )
    assert_problem(stale, 400, "invalid_code")
    ok = await client.post(
        f"{API}/users/me/mfa/totp/confirm", json={"code": totp_code(second)}, headers=account.auth
    )
    assert ok.status_code == 200, ok.text
    assert_problem(await start(client, account), 409, "conflict")
    again = await client.post(
        f"{API}/users/me/mfa/totp/confirm", json={"code": totp_code(second)}, headers=account.auth
    )
    assert_problem(again, 409, "conflict")


async def test_confirming_without_a_pending_enrollment_or_a_wrong_password(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    nothing = await client.post(
        f"{API}/users/me/mfa/totp/confirm", json={"code": "123456"}, headers=account.auth
    )
    assert_problem(nothing, 409, "conflict")
    assert_problem(
        await start(client, account, password="not the password xx"), 400, "invalid_password"
    )
    assert_problem(await disable(client, account, "123456"), 409, "conflict")
    assert_problem(await regenerate(client, account, "123456"), 409, "conflict")


async def test_turning_totp_on_ends_every_other_session(
    flows: Flows, factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    other = (await flows.login(account.email, account.password)).json()
    assert (await me(client, other["access_token"])).status_code == 200

    await enrol(client, account)

    assert_problem(await me(client, other["access_token"]), 401, "invalid_token")
    assert_problem(await refresh(client, other["refresh_token"]), 401, "invalid_token")
    # The session that turned it on goes on, access and refresh token alike.
    assert (await me(client, account.access_token)).status_code == 200
    assert (await refresh(client, account.refresh_token)).status_code == 200


async def test_disable_with_a_totp_code_or_a_recovery_code(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    account = await factory.account()
    enrolled = await enrol(client, account)

    assert_problem(
        await disable(client, account, totp_code(enrolled.secret, 1), "wrong password xxxx"),
        400,
        "invalid_password",
    )
    assert_problem(await disable(client, account, wrong_code(enrolled.secret)), 400, "invalid_code")
    assert_problem(await disable(client, account, "abcde-abcde"), 400, "invalid_code")
    assert (await status(client, account))["totp"] is True

    done = await disable(client, account, enrolled.recovery_codes[3].upper())
    assert done.status_code == 204, done.text
    assert await status(client, account) == {
        "totp": False,
        "passkeys": 0,
        "recovery_codes_left": 0,
    }
    assert await row_count(runtime, "totp_secrets") == 0
    assert await row_count(runtime, "recovery_codes") == 0
    mail = await mail_with_subject(smtp_sink, account.email, "Two-step sign-in is off")
    assert "administrator" not in mail.text
    login = await client.post(
        f"{API}/auth/login", json={"email": account.email, "password": account.password}
    )
    assert login.status_code == 200, login.text

    # On again, off again with a TOTP code.
    enrolled = await enrol(client, account)
    assert (await disable(client, account, totp_code(enrolled.secret, 1))).status_code == 204
    assert await audit_count(runtime, "mfa_disabled") == 2


async def test_new_recovery_codes_replace_the_old_set(
    factory: Factory, client: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    account = await factory.account()
    enrolled = await enrol(client, account)
    assert_problem(
        await regenerate(client, account, totp_code(enrolled.secret, 1), "wrong password xxx"),
        400,
        "invalid_password",
    )
    assert_problem(
        await regenerate(client, account, wrong_code(enrolled.secret)), 400, "invalid_code"
    )

    response = await regenerate(client, account, totp_code(enrolled.secret, 1))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    new_codes = response.json()["recovery_codes"]
    assert len(new_codes) == 10 and not set(new_codes) & set(enrolled.recovery_codes)
    assert (await status(client, account))["recovery_codes_left"] == 10
    await mail_with_subject(smtp_sink, account.email, "New recovery codes")

    token = await mfa_token(client, account.email)
    old = await verify(client, token, enrolled.recovery_codes[0], "recovery_code")
    assert_problem(old, 400, "invalid_code")
    new = await verify(client, token, new_codes[0], "recovery_code")
    assert new.status_code == 200, new.text
    assert (await status(client, account))["recovery_codes_left"] == 9


async def test_an_account_without_a_password_proves_itself_by_a_recent_sign_in(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    with shifted(-timedelta(minutes=6)):  # signed in 6 minutes ago, its token still valid
        user = await factory.user(password=None)
        old = await factory.session(user, method="oauth:test", amr=("fed",))
    stale = await client.post(f"{API}/users/me/mfa/totp", json={}, headers=bearer(old.access_token))
    assert_problem(stale, 403, "reauthentication_required")

    fresh = await factory.session(user, method="oauth:test", amr=("fed",))
    response = await client.post(
        f"{API}/users/me/mfa/totp", json={}, headers=bearer(fresh.access_token)
    )
    assert response.status_code == 200, response.text
    secret = response.json()["secret"]
    confirmed = await client.post(
        f"{API}/users/me/mfa/totp/confirm",
        json={"code": totp_code(secret)},
        headers=bearer(fresh.access_token),
    )
    assert confirmed.status_code == 200, confirmed.text
    wrong = await client.request(
        "DELETE",
        f"{API}/users/me/mfa/totp",
        json={"code": wrong_code(secret)},
        headers=bearer(fresh.access_token),
    )
    assert_problem(wrong, 400, "invalid_code")
    done = await client.request(
        "DELETE",
        f"{API}/users/me/mfa/totp",
        json={"code": totp_code(secret, 1)},
        headers=bearer(fresh.access_token),
    )
    assert done.status_code == 204, done.text


async def test_the_secret_is_stored_encrypted_and_bound_to_its_user(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await factory.account()
    enrolled = await enrol(client, account)
    async with runtime.sessionmaker() as db:
        row = (await db.scalars(select(TotpSecret))).one()
    assert enrolled.secret.encode() not in row.secret_ct
    assert row.key_id == runtime.encryption.current_kid
    from authgate.core.security.crypto import DecryptionError
    from authgate.mfa.factors import totp_associated_data

    assert (
        runtime.encryption.decrypt(row.secret_ct, totp_associated_data(row.user_id)).decode()
        == enrolled.secret
    )
    try:
        runtime.encryption.decrypt(row.secret_ct, totp_associated_data(uuid.uuid4()))
    except DecryptionError:
        pass
    else:
        raise AssertionError("a secret decrypted for another user")
    assert pyotp.TOTP(enrolled.secret).now()  # a real base32 secret
