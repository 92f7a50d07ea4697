"""Passkeys (docs/guides/passkeys.md): registration, the passwordless sign-in and what each
check refuses, driven by a software authenticator."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from authgate.core.time import shifted
from authgate.models import AuditEvent
from authgate.runtime import Runtime
from tests.support.api import API, amr_of, assert_problem, mail_with_subject, me
from tests.support.cookies import refresh_cookie
from tests.support.db import audit_count, row_count
from tests.support.factories import Factory
from tests.support.mail import SmtpSink
from tests.support.passkeys import (
    SoftAuthenticator,
    SoftCredential,
    creation_options,
    register,
    request_options,
    sign_in,
    submit,
    unb64url,
    verify,
)

PASSKEYS = f"{API}/users/me/passkeys"


async def test_register_then_sign_in_without_a_password(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await factory.account()
    options = await creation_options(client, account.access_token)
    assert options["rp"] == {"id": "localhost", "name": "authgate"}
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["attestation"] == "none"
    assert options["excludeCredentials"] == []

    authenticator = SoftAuthenticator()
    created = await submit(client, account.access_token, authenticator.create(options), "Laptop")
    assert created.status_code == 201, created.text
    passkey = created.json()
    assert set(passkey) == {"id", "name", "created_at", "last_used_at"}
    assert (passkey["name"], passkey["last_used_at"]) == ("Laptop", None)

    flow_token, request = await request_options(client)
    assert flow_token.startswith("agw_")
    assert request["rpId"] == "localhost"
    assert request["userVerification"] == "required"
    assert request.get("allowCredentials", []) == []
    response = await verify(client, flow_token, authenticator.get(request))
    assert response.status_code == 200, response.text
    pair = response.json()
    assert amr_of(pair["access_token"]) == ["swk", "user", "mfa"]
    shown = await me(client, pair["access_token"])
    assert shown.json()["email"] == account.email

    async with runtime.sessionmaker() as db:
        events = (
            await db.scalars(
                select(AuditEvent).where(
                    AuditEvent.type == "login_succeeded",
                    AuditEvent.user_id == uuid.UUID(shown.json()["id"]),
                )
            )
        ).all()
    assert [e.detail for e in events] == [{"method": "passkey"}]
    listed = (await client.get(PASSKEYS, headers=account.auth)).json()
    assert listed[0]["last_used_at"] is not None

    # The refresh keeps the amr of the sign-in.
    refreshed = await client.post(
        f"{API}/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert amr_of(refreshed.json()["access_token"]) == ["swk", "user", "mfa"]


async def test_the_owner_is_mailed_when_a_passkey_is_added(
    factory: Factory, client: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    account = await factory.account()
    await register(client, account.access_token, SoftAuthenticator(), "Laptop")
    mail = await mail_with_subject(smtp_sink, account.email, "passkey was added")
    assert "Laptop" in mail.text


async def test_a_passkey_sign_in_skips_totp(factory: Factory, client: httpx.AsyncClient) -> None:
    user = await factory.user()
    await factory.totp(user)
    tokens = await factory.session(user)
    authenticator = SoftAuthenticator()
    await register(client, tokens.access_token, authenticator)
    response = await sign_in(client, authenticator)
    assert response.status_code == 200, response.text
    assert "mfa" in amr_of(response.json()["access_token"])


async def test_the_flow_token_and_challenge_are_single_use(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    authenticator = SoftAuthenticator()
    await register(client, account.access_token, authenticator)
    flow_token, request = await request_options(client)
    assertion = authenticator.get(request)
    assert (await verify(client, flow_token, assertion)).status_code == 200
    assert_problem(await verify(client, flow_token, assertion), 401, "invalid_credentials")
    # The same assertion under a fresh flow token: the challenge it signed is not this one's.
    fresh, _ = await request_options(client)
    assert_problem(await verify(client, fresh, assertion), 401, "invalid_credentials")
    for forged in ("agw_" + "A" * 43, "agm_nope", "", "x" * 300):
        assert_problem(await verify(client, forged, assertion), 401, "invalid_credentials")


async def test_a_failed_answer_spends_the_challenge(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await factory.account()
    authenticator = SoftAuthenticator()
    await register(client, account.access_token, authenticator)
    flow_token, request = await request_options(client)
    wrong = authenticator.get(request, origin="https://evil.example")
    assert_problem(await verify(client, flow_token, wrong), 401, "invalid_credentials")
    right = authenticator.get(request)
    assert_problem(await verify(client, flow_token, right), 401, "invalid_credentials")
    # The failure of a known passkey is audited; the spent flow token's is not (no user).
    assert await audit_count(runtime, "login_failed") == 1


async def test_sign_in_refuses_every_broken_check(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    authenticator = SoftAuthenticator()
    await register(client, account.access_token, authenticator)
    broken: list[dict[str, Any]] = [
        {"origin": "https://evil.example"},
        {"origin": "http://localhost:5174"},
        {"rp_id": "evil.example"},
        {"user_verified": False},
    ]
    for change in broken:
        response = await sign_in(client, authenticator, **change)
        assert_problem(response, 401, "invalid_credentials")

    # An unknown credential: another authenticator's, never registered.
    stranger = SoftAuthenticator()
    stranger.create(await creation_options(client, account.access_token))
    assert_problem(await sign_in(client, stranger), 401, "invalid_credentials")

    # Garbage where a credential belongs is a 401 too, never a 500.
    flow_token, request = await request_options(client)
    assertion = authenticator.get(request)
    assertion["response"]["signature"] = "AAAA"
    assert_problem(await verify(client, flow_token, assertion), 401, "invalid_credentials")
    flow_token, _ = await request_options(client)
    for junk in ({}, {"id": "x", "rawId": "y", "type": "public-key", "response": {}}):
        assert_problem(await verify(client, flow_token, junk), 401, "invalid_credentials")

    assert (await sign_in(client, authenticator)).status_code == 200


async def test_a_signature_counter_that_goes_back_is_refused(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    authenticator = SoftAuthenticator(counts_signatures=True)
    await register(client, account.access_token, authenticator)
    assert (await sign_in(client, authenticator)).status_code == 200  # counter 2
    assert (await sign_in(client, authenticator)).status_code == 200  # counter 3
    for stale in (3, 2, 0):
        response = await sign_in(client, authenticator, counter=stale)
        assert_problem(response, 401, "invalid_credentials")
    assert (await sign_in(client, authenticator, counter=10)).status_code == 200

    # An authenticator that keeps no counter (0 every time, as synced passkeys do) is fine.
    synced = SoftAuthenticator()
    await register(client, account.access_token, synced)
    for _ in range(2):
        assert (await sign_in(client, synced)).status_code == 200


async def test_a_disabled_account_cannot_sign_in_with_its_passkey(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await factory.user()
    tokens = await factory.session(user)
    authenticator = SoftAuthenticator()
    await register(client, tokens.access_token, authenticator)
    async with runtime.sessionmaker() as db, db.begin():
        row = await runtime.users_repo.by_id(db, user.id)
        assert row is not None
        await runtime.users_repo.update(db, row, is_active=False)
    assert_problem(await sign_in(client, authenticator), 401, "invalid_credentials")


async def test_registration_refuses_every_broken_check(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    authenticator = SoftAuthenticator()
    broken: list[dict[str, Any]] = [
        {"origin": "https://evil.example"},
        {"rp_id": "evil.example"},
        {"user_verified": False},
        {"user_present": False},
        {"challenge": "AAAAAAAAAAAAAAAAAAAAAA"},
    ]
    for change in broken:
        options = await creation_options(client, account.access_token)
        response = await submit(
            client, account.access_token, authenticator.create(options, **change)
        )
        assert_problem(response, 400, "invalid_credential")

    # Only the newest options count, and each once.
    older = await creation_options(client, account.access_token)
    await creation_options(client, account.access_token)
    response = await submit(client, account.access_token, authenticator.create(older))
    assert_problem(response, 400, "invalid_credential")
    options = await creation_options(client, account.access_token)
    credential = authenticator.create(options)
    assert (await submit(client, account.access_token, credential)).status_code == 201
    again = await submit(client, account.access_token, credential)
    assert_problem(again, 400, "invalid_credential")

    # A credential id longer than WebAuthn allows.
    options = await creation_options(client, account.access_token)
    long_id = authenticator.create(options, credential_id=b"x" * 1024)
    assert_problem(await submit(client, account.access_token, long_id), 400, "invalid_credential")

    # Not a credential at all.
    await creation_options(client, account.access_token)
    response = await submit(client, account.access_token, {"id": "x"})
    assert_problem(response, 400, "invalid_credential")
    assert len((await client.get(PASSKEYS, headers=account.auth)).json()) == 1


async def test_a_credential_is_registered_once_across_users(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    first = await factory.account()
    authenticator = SoftAuthenticator()
    await register(client, first.access_token, authenticator)
    taken = authenticator.credentials[0].credential_id

    # The user's own passkeys are excluded in new options.
    options = await creation_options(client, first.access_token)
    assert [unb64url(c["id"]) for c in options["excludeCredentials"]] == [taken]

    second = await factory.account()
    options = await creation_options(client, second.access_token)
    assert options["excludeCredentials"] == []
    forged = SoftAuthenticator().create(options, credential_id=taken)
    assert_problem(await submit(client, second.access_token, forged), 409, "conflict")
    assert (await client.get(PASSKEYS, headers=second.auth)).json() == []
    # The first user's passkey still signs in as the first user.
    response = await sign_in(client, authenticator)
    assert (await me(client, response.json()["access_token"])).json()["email"] == first.email


async def test_list_rename_and_delete(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await factory.account()
    authenticator = SoftAuthenticator()
    one = await register(client, account.access_token, authenticator)
    two = await register(client, account.access_token, authenticator, "Phone")
    assert one["name"] == "Passkey"
    listed = (await client.get(PASSKEYS, headers=account.auth)).json()
    assert [p["id"] for p in listed] == [one["id"], two["id"]]
    mfa = (await client.get(f"{API}/users/me/mfa", headers=account.auth)).json()
    assert mfa["passkeys"] == 2

    renamed = await client.patch(
        f"{PASSKEYS}/{one['id']}", json={"name": "Work laptop"}, headers=account.auth
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Work laptop"
    bad = await client.patch(f"{PASSKEYS}/{one['id']}", json={"name": "a\nb"}, headers=account.auth)
    assert_problem(bad, 422, "validation_error")

    other = await factory.account()
    stolen = await client.patch(
        f"{PASSKEYS}/{one['id']}", json={"name": "mine"}, headers=other.auth
    )
    assert_problem(stolen, 404, "not_found")
    stolen = await client.delete(f"{PASSKEYS}/{one['id']}", headers=other.auth)
    assert_problem(stolen, 404, "not_found")
    unknown = await client.delete(
        f"{PASSKEYS}/00000000-0000-0000-0000-000000000000", headers=account.auth
    )
    assert_problem(unknown, 404, "not_found")

    deleted = await client.delete(f"{PASSKEYS}/{two['id']}", headers=account.auth)
    assert deleted.status_code == 204
    assert [p["id"] for p in (await client.get(PASSKEYS, headers=account.auth)).json()] == [
        one["id"]
    ]
    # The deleted passkey (the authenticator's newest) no longer signs in.
    assert_problem(await sign_in(client, authenticator), 401, "invalid_credentials")
    assert (
        await sign_in(client, authenticator, credential=authenticator.credentials[0])
    ).status_code == 200
    assert await audit_count(runtime, "passkey_added") == 2
    assert await audit_count(runtime, "passkey_removed") == 1


async def test_deleting_the_account_deletes_its_passkeys(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await factory.account()
    await register(client, account.access_token, SoftAuthenticator())
    response = await client.request(
        "DELETE", f"{API}/users/me", json={"password": account.password}, headers=account.auth
    )
    assert response.status_code == 204, response.text
    assert await row_count(runtime, "passkeys") == 0


async def test_verify_in_cookie_mode(factory: Factory, client: httpx.AsyncClient) -> None:
    account = await factory.account()
    authenticator = SoftAuthenticator()
    await register(client, account.access_token, authenticator)
    flow_token, request = await request_options(client)
    response = await verify(
        client, flow_token, authenticator.get(request), refresh_token_transport="cookie"
    )
    assert response.status_code == 200, response.text
    assert response.json()["refresh_token"] is None
    assert refresh_cookie(response).value.startswith("agr_")


async def test_the_routes_need_a_bearer_token(client: httpx.AsyncClient) -> None:
    for method, path in (
        ("POST", f"{PASSKEYS}/options"),
        ("POST", PASSKEYS),
        ("GET", PASSKEYS),
    ):
        response = await client.request(method, path, json={})
        assert_problem(response, 401, "not_authenticated")


async def test_admin_sees_the_count_and_removes_the_passkeys(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await factory.account(is_superuser=True)
    user = await factory.user()
    tokens = await factory.session(user)
    authenticator = SoftAuthenticator()
    for _ in range(2):
        await register(client, tokens.access_token, authenticator)

    shown = await client.get(f"{API}/admin/users/{user.id}", headers=admin.auth)
    assert shown.json()["passkeys"] == 2
    listed = await client.get(f"{API}/admin/users", params={"q": user.email}, headers=admin.auth)
    assert [item["passkeys"] for item in listed.json()["items"]] == [2]

    member = await factory.account()
    forbidden = await client.delete(f"{API}/admin/users/{user.id}/passkeys", headers=member.auth)
    assert_problem(forbidden, 403, "forbidden")
    unknown = await client.delete(
        f"{API}/admin/users/00000000-0000-0000-0000-000000000000/passkeys", headers=admin.auth
    )
    assert_problem(unknown, 404, "not_found")

    response = await client.delete(f"{API}/admin/users/{user.id}/passkeys", headers=admin.auth)
    assert response.status_code == 204, response.text
    assert await row_count(runtime, "passkeys", user_id=user.id) == 0
    assert await audit_count(runtime, "passkeys_removed_by_admin", user_id=user.id) == 1
    assert_problem(await sign_in(client, authenticator), 401, "invalid_credentials")
    shown = await client.get(f"{API}/admin/users/{user.id}", headers=admin.auth)
    assert shown.json()["passkeys"] == 0
    again = await client.delete(f"{API}/admin/users/{user.id}/passkeys", headers=admin.auth)
    assert again.status_code == 204


async def test_an_expired_challenge_another_key_and_a_deleted_user_are_refused(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """The rest of issue 16's refusals: a challenge past ``WEBAUTHN_CHALLENGE_TTL``, a valid
    signature by a key that is not the registered one, the passkey of a deleted account."""
    account = await factory.account()
    authenticator = SoftAuthenticator()
    await register(client, account.access_token, authenticator)

    flow_token, request = await request_options(client)
    assertion = authenticator.get(request)
    with shifted(timedelta(seconds=runtime.settings.webauthn_challenge_ttl + 1)):
        assert_problem(await verify(client, flow_token, assertion), 401, "invalid_credentials")

    registered = authenticator.credentials[-1]
    impostor = SoftCredential(
        credential_id=registered.credential_id,
        key=ec.generate_private_key(ec.SECP256R1()),
        rp_id=registered.rp_id,
        user_handle=registered.user_handle,
    )
    flow_token, request = await request_options(client)
    forged = authenticator.get(request, credential=impostor)
    assert_problem(await verify(client, flow_token, forged), 401, "invalid_credentials")
    assert (await sign_in(client, authenticator)).status_code == 200  # the real key still works

    deleted = await client.request(
        "DELETE", f"{API}/users/me", json={"password": account.password}, headers=account.auth
    )
    assert deleted.status_code == 204, deleted.text
    assert_problem(await sign_in(client, authenticator), 401, "invalid_credentials")
