"""The admin API: superusers only; listings paginate by an opaque, validated keyset cursor;
deactivation, session revocation and deletion take effect on the user's tokens at once; every
change is audited by field name, never by value."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from authgate.admin.schemas import Cursor
from authgate.core.time import utc_now
from authgate.models import AuditEvent, User
from authgate.runtime import Runtime
from authgate.users.emails import email_key
from tests.support.factories import Factory
from tests.support.flows import Account, Flows

ADMIN = "/api/v1/admin"


async def _registered_admin(flows: Flows, runtime: Runtime) -> Account:
    """An admin who signed up over HTTP (for the tests that read the audit trail it leaves)."""
    account = await flows.signed_up(flows.new_email().replace("user", "admin"))
    async with runtime.sessionmaker() as db:
        await db.execute(
            update(User).where(User.email_key == email_key(account.email)).values(is_superuser=True)
        )
        await db.commit()
    return account


async def _make_admin(runtime: Runtime) -> Account:
    return await Factory(runtime).account(
        f"admin-{uuid.uuid4().hex[:8]}@example.com", is_superuser=True
    )


async def _user_id(client: httpx.AsyncClient, account: Account) -> str:
    me = await client.get("/api/v1/users/me", headers=account.auth)
    assert me.status_code == 200, me.text
    return str(me.json()["id"])


async def _user_row(runtime: Runtime, user_id: str) -> User | None:
    async with runtime.sessionmaker() as db:
        return await db.get(User, uuid.UUID(user_id))


async def _audit(runtime: Runtime, user_id: str, type_: str) -> list[AuditEvent]:
    async with runtime.sessionmaker() as db:
        rows = await db.execute(
            select(AuditEvent)
            .where(AuditEvent.user_id == uuid.UUID(user_id), AuditEvent.type == type_)
            .order_by(AuditEvent.created_at)
        )
        return list(rows.scalars())


def _assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


async def _pages(
    client: httpx.AsyncClient, path: str, auth: dict[str, str], params: dict[str, Any]
) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        query = dict(params) | ({"cursor": cursor} if cursor else {})
        response = await client.get(path, params=query, headers=auth)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 20, "pagination does not end"


ENDPOINTS = [
    ("GET", "/users", None),
    ("GET", "/users/{id}", None),
    ("PATCH", "/users/{id}", {"name": "x"}),
    ("DELETE", "/users/{id}", None),
    ("POST", "/users/{id}/sessions/revoke", None),
    ("GET", "/audit-events", None),
]


async def test_only_superusers_get_in(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await factory.account()
    user_id = await _user_id(client, user)
    for method, path, body in ENDPOINTS:
        url = ADMIN + path.format(id=user_id)
        anonymous = await client.request(method, url, json=body)
        _assert_problem(anonymous, 401, "not_authenticated")
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        forbidden = await client.request(method, url, json=body, headers=user.auth)
        _assert_problem(forbidden, 403, "forbidden")
    # Nothing was changed by the refused calls.
    row = await _user_row(runtime, user_id)
    assert row is not None
    assert row.name is None
    assert (await client.get("/api/v1/users/me", headers=user.auth)).status_code == 200


async def test_list_search_and_paginate(
    flows: Flows, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await _make_admin(runtime)
    base = utc_now() + timedelta(seconds=1)
    names = ["Grace Hopper", "Ada 100%", None, "Alan", None, "Barbara", "Edsger"]
    async with runtime.sessionmaker() as db:
        for i, name in enumerate(names):
            email = f"Member{i}@Example.org"
            # Three share one created_at: the id breaks the tie, so none is skipped or repeated.
            created = base if i < 3 else base + timedelta(milliseconds=i)
            db.add(User(email=email, email_key=email_key(email), name=name, created_at=created))
        await db.commit()

    pages = await _pages(client, f"{ADMIN}/users", admin.auth, {"limit": 3})
    assert [len(page) for page in pages] == [3, 3, 2]
    seen = [item for page in pages for item in page]
    ids = [item["id"] for item in seen]
    assert len(set(ids)) == len(ids) == 8
    assert {item["email"] for item in seen} == {admin.email} | {
        f"Member{i}@Example.org" for i in range(7)
    }
    keys = [(item["created_at"], item["id"]) for item in seen]
    assert keys == sorted(keys)
    first = seen[0]
    assert first["email"] == admin.email
    assert first["is_superuser"] is True
    assert first["last_login_at"] is not None
    assert "password_hash" not in first
    assert "tokens_valid_after" not in first

    default = (await client.get(f"{ADMIN}/users", headers=admin.auth)).json()
    assert len(default["items"]) == 8
    assert default["next_cursor"] is None

    async def search(q: str, **params: Any) -> list[str]:
        response = await client.get(f"{ADMIN}/users", params={"q": q, **params}, headers=admin.auth)
        assert response.status_code == 200, response.text
        return [item["email"] for item in response.json()["items"]]

    assert len(await search("MEMBER")) == 7  # email, case-insensitive
    assert len(await search("example.ORG")) == 7
    assert await search("member3@") == ["Member3@Example.org"]
    assert await search("grace hop") == ["Member0@Example.org"]  # name, case-insensitive
    assert await search("100%") == ["Member1@Example.org"]  # LIKE wildcards are literal
    assert await search("%") == ["Member1@Example.org"]
    assert await search("_") == []
    assert await search("nobody-matches") == []
    searched = await _pages(client, f"{ADMIN}/users", admin.auth, {"q": "member", "limit": 2})
    assert [len(page) for page in searched] == [2, 2, 2, 1]
    assert len({item["id"] for page in searched for item in page}) == 7

    for limit in (0, 101, "x"):
        bad = await client.get(f"{ADMIN}/users", params={"limit": limit}, headers=admin.auth)
        _assert_problem(bad, 422, "validation_error")


async def test_tampered_cursor_is_422(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await _make_admin(runtime)
    await factory.account()
    await factory.account()
    first = await client.get(f"{ADMIN}/users", params={"limit": 1}, headers=admin.auth)
    cursor = first.json()["next_cursor"]
    assert isinstance(cursor, str)
    assert (
        await client.get(
            f"{ADMIN}/users", params={"limit": 1, "cursor": cursor}, headers=admin.auth
        )
    ).status_code == 200

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    audit_cursor = Cursor("audit", utc_now(), uuid.uuid4()).encode()
    tampered = [
        "",
        "not a cursor!",
        cursor[:-2],
        cursor + "A",
        cursor.swapcase(),
        b64(b"\xff\xfe\x00"),
        b64(b"[]"),
        b64(b"null"),
        b64(json.dumps({**decoded, "t": "yesterday"}).encode()),
        b64(json.dumps({**decoded, "t": "2024-01-01T00:00:00"}).encode()),  # naive
        b64(json.dumps({**decoded, "t": "0001-01-01T00:00:00+01:00"}).encode()),  # overflows
        b64(json.dumps({**decoded, "i": "not-a-uuid"}).encode()),
        b64(json.dumps({**decoded, "i": 42}).encode()),
        b64(json.dumps({**decoded, "extra": 1}).encode()),
        b64(json.dumps({"k": "users"}).encode()),
        audit_cursor,  # a cursor of another listing
        "A" * 600,
    ]
    for bad in tampered:
        response = await client.get(
            f"{ADMIN}/users", params={"limit": 1, "cursor": bad}, headers=admin.auth
        )
        _assert_problem(response, 422, "validation_error")
        assert response.json()["errors"], bad
    events = await client.get(
        f"{ADMIN}/audit-events", params={"cursor": cursor}, headers=admin.auth
    )
    _assert_problem(events, 422, "validation_error")
    events = await client.get(f"{ADMIN}/audit-events", params={"cursor": "%%%"}, headers=admin.auth)
    _assert_problem(events, 422, "validation_error")


async def test_get_user(flows: Flows, client: httpx.AsyncClient, runtime: Runtime) -> None:
    admin = await _make_admin(runtime)
    user = await flows.signed_up(name="Ada")
    user_id = await _user_id(client, user)
    found = await client.get(f"{ADMIN}/users/{user_id}", headers=admin.auth)
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["id"] == user_id
    assert body["email"] == user.email
    assert body["name"] == "Ada"
    assert body["email_verified"] is True
    assert body["is_superuser"] is False
    assert body["last_login_at"] is not None
    assert set(body) == {
        "id",
        "email",
        "name",
        "email_verified",
        "is_active",
        "is_superuser",
        "roles",
        "created_at",
        "updated_at",
        "last_login_at",
        "mfa",
        "recovery_codes_left",
        "passkeys",
    }
    assert (body["mfa"], body["recovery_codes_left"], body["passkeys"]) == (False, 0, 0)
    unknown = await client.get(f"{ADMIN}/users/{uuid.uuid4()}", headers=admin.auth)
    _assert_problem(unknown, 404, "not_found")
    malformed = await client.get(f"{ADMIN}/users/not-a-uuid", headers=admin.auth)
    _assert_problem(malformed, 422, "validation_error")


async def test_deactivation_ends_sessions_and_refuses_login(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await _make_admin(runtime)
    user = await factory.account()
    user_id = await _user_id(client, user)

    response = await client.patch(
        f"{ADMIN}/users/{user_id}", json={"is_active": False}, headers=admin.auth
    )
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False

    _assert_problem(await client.get("/api/v1/users/me", headers=user.auth), 401, "invalid_token")
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    _assert_problem(refresh, 401, "invalid_token")
    _assert_problem(await flows.login(user.email), 401, "invalid_credentials")

    (event,) = await _audit(runtime, user_id, "user_updated_by_admin")
    assert event.detail is not None
    assert event.detail["fields"] == ["is_active"]
    assert event.detail["by_admin"] is True
    assert event.detail["admin_id"] == await _user_id(client, admin)
    assert event.ip_address == "203.0.113.7"

    # Re-activation lets the user sign in again; the old tokens stay dead.
    again = await client.patch(
        f"{ADMIN}/users/{user_id}", json={"is_active": True}, headers=admin.auth
    )
    assert again.status_code == 200, again.text
    assert (await flows.login(user.email)).status_code == 200
    _assert_problem(await client.get("/api/v1/users/me", headers=user.auth), 401, "invalid_token")


async def test_patch_fields_are_audited_by_name_only(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await _make_admin(runtime)
    user = await factory.account(name="Old Name")
    user_id = await _user_id(client, user)  # also warms the user's read-only snapshot

    response = await client.patch(
        f"{ADMIN}/users/{user_id}",
        json={"name": "A Secret-Looking Name", "email_verified": False, "is_superuser": True},
        headers=admin.auth,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "A Secret-Looking Name"
    assert body["email_verified"] is False
    assert body["is_superuser"] is True
    assert body["is_active"] is True
    # The user was not signed out by a change that does not deactivate them, and sees it at once.
    me = await client.get("/api/v1/users/me", headers=user.auth)
    assert me.status_code == 200, me.text
    assert me.json()["name"] == "A Secret-Looking Name"
    assert me.json()["email_verified"] is False

    (event,) = await _audit(runtime, user_id, "user_updated_by_admin")
    assert event.detail is not None
    assert event.detail["fields"] == ["email_verified", "is_superuser", "name"]
    assert "Secret-Looking" not in json.dumps(event.detail)

    # Sending values the user already has changes nothing and records nothing.
    same = await client.patch(
        f"{ADMIN}/users/{user_id}", json={"is_superuser": True}, headers=admin.auth
    )
    assert same.status_code == 200, same.text
    empty = await client.patch(f"{ADMIN}/users/{user_id}", json={}, headers=admin.auth)
    assert empty.status_code == 200, empty.text
    assert len(await _audit(runtime, user_id, "user_updated_by_admin")) == 1

    # Another superuser may be demoted; an explicit null clears the name.
    demoted = await client.patch(
        f"{ADMIN}/users/{user_id}", json={"is_superuser": False, "name": None}, headers=admin.auth
    )
    assert demoted.status_code == 200, demoted.text
    assert demoted.json()["is_superuser"] is False
    assert demoted.json()["name"] is None

    unknown = await client.patch(
        f"{ADMIN}/users/{uuid.uuid4()}", json={"name": "x"}, headers=admin.auth
    )
    _assert_problem(unknown, 404, "not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"password_hash": "$argon2id$v=19$m=65536,t=3,p=4$AAAA$BBBB"},
        {"email": "taken-over@example.com"},
        {"id": str(uuid.uuid4())},
        {"tokens_valid_after": "2000-01-01T00:00:00Z"},
        {"name": "ok", "email_key": "x"},
        {"is_active": None},
        {"is_superuser": "true"},
        {"email_verified": 1},
        {"name": "x" * 201},
        ["is_active"],
    ],
)
async def test_patch_refuses_other_fields(
    body: Any, flows: Flows, factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await _make_admin(runtime)
    user = await factory.account(name="Unchanged")
    user_id = await _user_id(client, user)
    response = await client.patch(f"{ADMIN}/users/{user_id}", json=body, headers=admin.auth)
    _assert_problem(response, 422, "validation_error")
    row = await _user_row(runtime, user_id)
    assert row is not None
    assert (row.email, row.name, row.is_active, row.is_superuser, row.email_verified) == (
        user.email,
        "Unchanged",
        True,
        False,
        True,
    )
    assert row.password_hash is not None
    assert row.password_hash.startswith("$argon2id$")
    assert row.password_hash != "$argon2id$v=19$m=65536,t=3,p=4$AAAA$BBBB"
    assert await _audit(runtime, user_id, "user_updated_by_admin") == []


async def test_admin_cannot_lock_themselves_out(
    flows: Flows, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await _make_admin(runtime)
    admin_id = await _user_id(client, admin)
    for body in ({"is_superuser": False}, {"is_active": False}, {"name": "x", "is_active": False}):
        response = await client.patch(f"{ADMIN}/users/{admin_id}", json=body, headers=admin.auth)
        _assert_problem(response, 409, "conflict")
    _assert_problem(
        await client.delete(f"{ADMIN}/users/{admin_id}", headers=admin.auth), 409, "conflict"
    )
    row = await _user_row(runtime, admin_id)
    assert row is not None
    assert (row.is_superuser, row.is_active, row.name) == (True, True, None)
    # Harmless self-edits are fine.
    renamed = await client.patch(
        f"{ADMIN}/users/{admin_id}", json={"name": "Root", "is_superuser": True}, headers=admin.auth
    )
    assert renamed.status_code == 200, renamed.text
    assert (await client.get(f"{ADMIN}/users", headers=admin.auth)).status_code == 200


async def test_revoke_sessions(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await _make_admin(runtime)
    user = await factory.account()
    user_id = await _user_id(client, user)
    second = (await flows.login(user.email)).json()
    second_auth = {"Authorization": f"Bearer {second['access_token']}"}
    assert (await client.get("/api/v1/users/me", headers=second_auth)).status_code == 200

    revoked = await client.post(f"{ADMIN}/users/{user_id}/sessions/revoke", headers=admin.auth)
    assert revoked.status_code == 204, revoked.text
    assert revoked.content == b""

    for auth in (user.auth, second_auth):
        _assert_problem(await client.get("/api/v1/users/me", headers=auth), 401, "invalid_token")
    for refresh_token in (user.refresh_token, second["refresh_token"]):
        refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
        _assert_problem(refresh, 401, "invalid_token")
    # The account itself is fine: a new sign-in works.
    assert (await flows.login(user.email)).status_code == 200
    # The admin's own session is untouched.
    assert (await client.get(f"{ADMIN}/users", headers=admin.auth)).status_code == 200

    (event,) = await _audit(runtime, user_id, "session_revoked")
    assert event.detail is not None
    assert event.detail["by_admin"] is True
    assert event.detail["sessions_ended"] == 2

    unknown = await client.post(f"{ADMIN}/users/{uuid.uuid4()}/sessions/revoke", headers=admin.auth)
    _assert_problem(unknown, 404, "not_found")


async def test_delete_user(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await _make_admin(runtime)
    user = await factory.account()
    user_id = await _user_id(client, user)

    deleted = await client.delete(f"{ADMIN}/users/{user_id}", headers=admin.auth)
    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""

    _assert_problem(
        await client.get(f"{ADMIN}/users/{user_id}", headers=admin.auth), 404, "not_found"
    )
    assert await _user_row(runtime, user_id) is None
    _assert_problem(await client.get("/api/v1/users/me", headers=user.auth), 401, "invalid_token")
    _assert_problem(await flows.login(user.email), 401, "invalid_credentials")
    listed = (await client.get(f"{ADMIN}/users", headers=admin.auth)).json()
    assert user_id not in {item["id"] for item in listed["items"]}

    (event,) = await _audit(runtime, user_id, "account_deleted")
    assert event.detail is not None
    assert event.detail["by_admin"] is True

    again = await client.delete(f"{ADMIN}/users/{user_id}", headers=admin.auth)
    _assert_problem(again, 404, "not_found")


async def test_audit_events_filter_and_paginate(
    flows: Flows, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await _registered_admin(flows, runtime)
    user = await flows.signed_up()
    other = await flows.signed_up()
    user_id = await _user_id(client, user)
    other_id = await _user_id(client, other)
    await flows.login(user.email, "a wrong password here")  # login_failed
    await flows.login(user.email)  # a second login_succeeded
    # Several events sharing one timestamp: the id breaks the tie.
    stamp = utc_now()
    async with runtime.sessionmaker() as db:
        for i in range(3):
            db.add(
                AuditEvent(
                    type="logout",
                    user_id=uuid.UUID(user_id),
                    created_at=stamp,
                    detail={"n": i},
                )
            )
        await db.commit()

    url = f"{ADMIN}/audit-events"
    others = await _pages(client, url, admin.auth, {"user_id": other_id})
    other_ids = {item["id"] for page in others for item in page}
    assert other_ids
    everything = await _pages(client, url, admin.auth, {"user_id": user_id, "limit": 2})
    assert all(len(page) == 2 for page in everything[:-1])
    events = [item for page in everything for item in page]
    ids = [item["id"] for item in events]
    assert len(set(ids)) == len(ids)
    assert not set(ids) & other_ids
    assert {item["user_id"] for item in events} == {user_id}
    types = [item["type"] for item in events]
    assert types.count("logout") == 3
    assert types.count("login_succeeded") == 2
    assert {"email_verified", "login_failed"} <= set(types)
    keys = [(item["created_at"], item["id"]) for item in events]
    assert keys == sorted(keys, reverse=True)  # newest first
    login = next(item for item in events if item["type"] == "login_succeeded")
    assert login["ip_address"] == "203.0.113.7"
    assert login["user_agent"] == "pytest-agent/1.0"
    assert login["session_id"] is not None
    assert set(login) == {
        "id",
        "created_at",
        "type",
        "user_id",
        "session_id",
        "ip_address",
        "user_agent",
        "detail",
    }

    logins = await _pages(
        client, url, admin.auth, {"user_id": user_id, "type": "login_succeeded", "limit": 1}
    )
    assert [len(page) for page in logins] == [1, 1]
    assert {item["type"] for page in logins for item in page} == {"login_succeeded"}

    # Registrations are recorded without a user id (the account is not confirmed yet).
    by_type = await _pages(client, url, admin.auth, {"type": "register", "limit": 2})
    registered = [item for page in by_type for item in page]
    assert len(registered) == 3  # the admin, user and other
    assert {item["type"] for item in registered} == {"register"}
    assert len({item["id"] for item in registered}) == 3

    unfiltered = await _pages(client, url, admin.auth, {"limit": 100})
    assert len({item["id"] for page in unfiltered for item in page}) > len(events)

    none = await client.get(url, params={"user_id": str(uuid.uuid4())}, headers=admin.auth)
    assert none.status_code == 200
    assert none.json() == {"items": [], "next_cursor": None}
    for params in ({"type": "no_such_type"}, {"user_id": "nope"}, {"limit": 0}):
        _assert_problem(
            await client.get(url, params=params, headers=admin.auth), 422, "validation_error"
        )
