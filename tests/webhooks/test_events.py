"""Which change sends which event, through the HTTP API, to a real receiver that verifies every
signature with ``standardwebhooks`` (docs/webhooks.md)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select

from authgate.models import User
from authgate.runtime import Runtime
from tests.support.factories import Factory
from tests.support.flows import TEST_PASSWORD, Account, Flows
from tests.support.mail import SmtpSink
from tests.support.mfa import enrol
from tests.support.webhooks import Received, Receiver

NEW_PASSWORD = "violet tractor humming quietly 77"
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
#: What a payload may never contain: an opaque token of any kind, a password hash, a JWT.
SECRET_SHAPES = re.compile(r"ag[a-z]_[A-Za-z0-9_\-]{16,}|\$argon2|\$2[aby]\$|eyJ[A-Za-z0-9_\-]+\.")
SECRET_KEYS = re.compile(r"password|token|secret|code|hash", re.IGNORECASE)


def sid(access_token: str) -> str:
    claims: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return str(claims["sid"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def summary(events: list[Received]) -> list[tuple[str, str | None]]:
    """(type, session_id) of each event."""
    return [(e.type, e.data.get("session_id")) for e in events]


def keys_of(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [k for key, item in value.items() for k in (key, *keys_of(item))]
    if isinstance(value, list):
        return [k for item in value for k in keys_of(item)]
    return []


async def test_one_users_life_sends_each_event_once_in_order_and_signed(
    client: httpx.AsyncClient,
    flows: Flows,
    smtp_sink: SmtpSink,
    receiver: Receiver,
    runtime: Runtime,
) -> None:
    email = flows.new_email()
    secrets_seen: list[str] = [TEST_PASSWORD, NEW_PASSWORD]

    assert (await flows.register(email)).status_code == 202
    verify_token = await flows.verification_token(email)
    secrets_seen.append(verify_token)
    verified = await client.post("/api/v1/auth/verify-email", json={"token": verify_token})
    assert verified.status_code == 200, verified.text
    user_id = verified.json()["id"]

    login = await flows.login(email)
    assert login.status_code == 200, login.text
    first = login.json()
    secrets_seen += [first["access_token"], first["refresh_token"]]

    changed = await client.post(
        "/api/v1/users/me/password",
        json={"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(first["access_token"]),
    )
    assert changed.status_code == 200, changed.text
    second = changed.json()
    secrets_seen += [second["access_token"], second["refresh_token"]]

    logout = await client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": second["refresh_token"]},
        headers=bearer(second["access_token"]),
    )
    assert logout.status_code == 204
    # Deleting the account needs a session: the logged-out one has ended.
    again = await flows.login(email, NEW_PASSWORD)
    assert again.status_code == 200, again.text
    third = again.json()
    secrets_seen += [third["access_token"], third["refresh_token"]]
    deleted = await client.request(
        "DELETE",
        "/api/v1/users/me",
        json={"password": NEW_PASSWORD},
        headers=bearer(third["access_token"]),
    )
    assert deleted.status_code == 204, deleted.text

    s1, s2, s3 = sid(first["access_token"]), sid(second["access_token"]), sid(third["access_token"])
    events = await receiver.wait_for(10)
    assert summary(events) == [
        ("user.created", None),
        ("user.verified", None),
        ("session.created", s1),  # login
        ("user.password_changed", None),  # change password: the new hash ...
        ("session.revoked", s1),  # ... ends every session ...
        ("session.created", s2),  # ... and continues in a new one
        ("session.revoked", s2),  # logout
        ("session.created", s3),  # signed in again to delete the account
        ("session.revoked", s3),  # the deletion ends it
        ("user.deleted", None),
    ]
    # The events of the brief, in this order, among them.
    brief = iter(e.type for e in events)
    for wanted in (
        "user.created",
        "user.verified",
        "session.created",
        "user.password_changed",
        "session.revoked",
        "user.deleted",
    ):
        assert wanted in brief

    await receiver.wait_until(lambda r: len(r.requests) >= 10)
    requests = receiver.requests
    assert len(requests) == 10, "each event exactly once (the receiver never failed)"
    assert len({r.webhook_id for r in requests}) == 10
    assert all(r.valid and r.status == 204 for r in requests)
    for event in events:
        assert event.webhook_id.startswith("msg_")
        assert event.signature.startswith("v1,")
        assert set(event.payload) == {"type", "timestamp", "data"}
        assert RFC3339_UTC.match(event.payload["timestamp"]), event.payload["timestamp"]
        datetime.fromisoformat(event.payload["timestamp"].replace("Z", "+00:00"))
        assert event.data["user_id"] == user_id
    by_type = {e.type: e.data for e in events}
    assert by_type["user.created"] == {"user_id": user_id, "email": email, "email_verified": False}
    assert by_type["user.verified"]["email"] == email
    assert by_type["user.deleted"]["email"] == email
    assert by_type["user.password_changed"] == {"user_id": user_id}
    reasons = [e.data.get("reason") for e in events if e.type == "session.revoked"]
    assert reasons == ["password_changed", "logout", "account_deleted"]

    # No payload carries a password, a token, a hash or a key that names one.
    for request in requests:
        text = request.body.decode()
        assert not SECRET_SHAPES.search(text), text
        for secret in secrets_seen:
            assert secret not in text
        assert not [k for k in keys_of(request.payload) if SECRET_KEYS.search(k)]


async def test_profile_email_and_session_changes(
    client: httpx.AsyncClient,
    factory: Factory,
    smtp_sink: SmtpSink,
    receiver: Receiver,
    runtime: Runtime,
) -> None:
    account = await factory.account(name="Ada")
    other = await factory.session(await _user(runtime, account.email))
    await receiver.wait_for(2)  # the two session.created
    receiver.clear()

    same = await client.patch("/api/v1/users/me", json={"name": "Ada"}, headers=account.auth)
    assert same.status_code == 200
    renamed = await client.patch("/api/v1/users/me", json={"name": "Ada L."}, headers=account.auth)
    assert renamed.status_code == 200
    ended = await client.delete(f"/api/v1/sessions/{other.session_id}", headers=account.auth)
    assert ended.status_code == 204

    new_email = factory.new_email()
    asked = await client.post(
        "/api/v1/users/me/email",
        json={"new_email": new_email, "password": TEST_PASSWORD},
        headers=account.auth,
    )
    assert asked.status_code == 202
    mails = await smtp_sink.wait_for(new_email)
    confirmed = await client.post(
        "/api/v1/auth/verify-email", json={"token": mails[-1].token("/verify-email")}
    )
    assert confirmed.status_code == 200, confirmed.text

    out = await client.post("/api/v1/auth/logout-all", headers=account.auth)
    assert out.status_code == 204

    events = await receiver.wait_for(4)
    assert [(e.type, e.data.get("changes"), e.data.get("reason")) for e in events] == [
        ("user.updated", ["name"], None),  # an unchanged name sends nothing
        ("session.revoked", None, "revoked_by_user"),
        ("user.updated", ["email"], None),
        ("session.revoked", None, "logout_all"),
    ]
    assert events[1].data["session_id"] == str(other.session_id)
    assert events[2].data["email"] == new_email
    assert events[3].data["session_id"] == sid(account.access_token)


async def test_password_reset_and_refresh_token_reuse(
    client: httpx.AsyncClient,
    factory: Factory,
    smtp_sink: SmtpSink,
    receiver: Receiver,
    runtime: Runtime,
) -> None:
    account = await factory.account()
    await receiver.wait_for(1)
    receiver.clear()

    rotated = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert rotated.status_code == 200
    replay = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert replay.status_code == 401  # the request fails, the revocation (and its event) stays

    asked = await client.post("/api/v1/auth/password/forgot", json={"email": account.email})
    assert asked.status_code == 202
    mails = await smtp_sink.wait_for(account.email, 2)  # the reuse notice, the reset link
    token = next(m for m in mails if "/reset-password" in m.text).token("/reset-password")
    second = await factory.session(await _user(runtime, account.email))
    reset = await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert reset.status_code == 204, reset.text

    events = await receiver.wait_for(4)
    assert [(e.type, e.data.get("reason")) for e in events] == [
        ("session.revoked", "reuse_detected"),
        ("session.created", None),
        ("user.password_changed", None),
        ("session.revoked", "password_reset"),
    ]
    assert events[0].data["session_id"] == sid(account.access_token)
    assert events[3].data["session_id"] == str(second.session_id)
    for event in events:
        assert token not in event.body.decode()


async def test_admin_changes(
    client: httpx.AsyncClient, factory: Factory, receiver: Receiver, runtime: Runtime
) -> None:
    admin = await factory.account(is_superuser=True)
    member = await factory.account()
    await receiver.wait_for(2)
    receiver.clear()
    user_id = str((await _user(runtime, member.email)).id)

    patched = await client.patch(
        f"/api/v1/admin/users/{user_id}",
        json={"is_active": False, "name": "Renamed"},
        headers=admin.auth,
    )
    assert patched.status_code == 200, patched.text
    revoke = await client.post(f"/api/v1/admin/users/{user_id}/sessions/revoke", headers=admin.auth)
    assert revoke.status_code == 204
    gone = await client.delete(f"/api/v1/admin/users/{user_id}", headers=admin.auth)
    assert gone.status_code == 204

    events = await receiver.wait_for(3)
    assert [(e.type, e.data.get("reason")) for e in events] == [
        ("user.updated", None),
        ("session.revoked", "deactivated_by_admin"),
        # revoking again ends nothing more; the deletion finds no session left
        ("user.deleted", "deleted_by_admin"),
    ]
    assert sorted(events[0].data["changes"]) == ["is_active", "name"]
    assert events[2].data == {
        "user_id": user_id,
        "email": member.email,
        "reason": "deleted_by_admin",
    }


async def test_registering_an_existing_address_again_sends_nothing(
    client: httpx.AsyncClient, flows: Flows, factory: Factory, receiver: Receiver
) -> None:
    verified = await factory.user()
    unverified = await factory.user(verified=False)
    for email in (verified.email, unverified.email):
        response = await flows.register(email, "a different long passphrase 9")
        assert response.status_code == 202
    fresh = flows.new_email()
    assert (await flows.register(fresh)).status_code == 202
    events = await receiver.wait_for(1)
    await receiver.wait_until(lambda r: len(r.requests) >= 1)
    assert [(e.type, e.data["email"]) for e in events] == [("user.created", fresh)]
    assert len(receiver.requests) == 1


async def _user(runtime: Runtime, email: str) -> User:
    async with runtime.sessionmaker() as db:
        return (await db.scalars(select(User).where(User.email == email))).one()


@pytest.fixture(autouse=True)
def _no_leftover_mail(smtp_sink: SmtpSink) -> None:
    smtp_sink.clear()


async def test_turning_the_second_factor_on_and_off(
    client: httpx.AsyncClient, factory: Factory, receiver: Receiver
) -> None:
    """``mfa.enabled`` (with a ``session.revoked`` for each other session it ended) and
    ``mfa.disabled``, by the owner and by an operator; no secret or code in any body."""
    user = await factory.user()
    other = await factory.session(user)
    current = await factory.session(user)
    account = Account(user.email, TEST_PASSWORD, current.access_token, current.refresh_token)
    enrolled = await enrol(client, account)
    off = await client.request(
        "DELETE",
        "/api/v1/users/me/mfa/totp",
        json={"password": account.password, "code": enrolled.recovery_codes[0]},
        headers=account.auth,
    )
    assert off.status_code == 204, off.text
    events = (await receiver.wait_for(5))[2:]  # after the two session.created of the factory
    assert summary(events) == [
        ("session.revoked", sid(other.access_token)),
        ("mfa.enabled", None),
        ("mfa.disabled", None),
    ]
    user_id = events[1].data["user_id"]
    assert events[1].data == {"user_id": user_id, "method": "totp"}
    assert events[2].data == {"user_id": user_id, "method": "totp", "by": "user"}
    for request in receiver.requests:
        text = request.body.decode()
        assert enrolled.secret not in text
        assert not any(code in text for code in enrolled.recovery_codes)
