"""Issue 11: control characters in free text are a 422, and no string with a NUL byte is a 500.

PostgreSQL cannot store NUL: a NUL in ``name`` used to be a 500 for a new address and a 202 for
a registered one (an enumeration oracle), with the SQL parameters in the development log.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
import pytest

from authgate.runtime import Runtime
from tests.support.factories import Factory
from tests.support.flows import TEST_PASSWORD, Account, Flows

REFUSED = [
    "\x00",
    "\x01",
    "\t",
    "\n",
    "\r",
    "\x1b[31m",
    "\x1f",
    "\x7f",
    "\x80",
    "\x85",
    "\x9f",
    "\u2028",
    "\u2029",
]
ACCEPTED = ["Ada Lovelace", "Zoë Ångström-Ñúñez", "李小龍", "O'Brien (née Smith) 🙂", ""]


def _assert_name_refused(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["errors"][0]["loc"][-1] == "name"


@pytest.mark.parametrize("bad", REFUSED)
async def test_register_refuses_control_characters_in_name_identically(
    flows: Flows, factory: Factory, bad: str
) -> None:
    existing = await factory.account()
    new = await flows.register(flows.new_email(), name=f"Ada{bad}Lovelace")
    taken = await flows.register(existing.email, name=f"Ada{bad}Lovelace")
    _assert_name_refused(new)
    _assert_name_refused(taken)
    assert new.content == taken.content  # nothing tells a registered address apart
    assert dict(new.headers).keys() == dict(taken.headers).keys()


async def test_nul_in_name_is_422_and_logs_no_sql(
    flows: Flows, factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    existing = await factory.account()
    service_logger = logging.getLogger("authgate")  # does not propagate: listen on it directly
    service_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.DEBUG, logger="authgate"):
            new = await flows.register(flows.new_email(), name="a\x00b")
            taken = await flows.register(existing.email, name="a\x00b")
    finally:
        service_logger.removeHandler(caplog.handler)
    assert (new.status_code, taken.status_code) == (422, 422)
    assert new.content == taken.content
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    for record in caplog.records:
        text = record.getMessage() + str(record.__dict__)
        assert "argon2" not in text.lower() and "INSERT" not in text, text


@pytest.mark.parametrize("name", ACCEPTED)
async def test_ordinary_names_are_kept(
    factory: Factory, client: httpx.AsyncClient, name: str
) -> None:
    account = await factory.account(name=name)
    me = (await client.get("/api/v1/users/me", headers=account.auth)).json()
    assert me["name"] == name
    patched = await client.patch("/api/v1/users/me", json={"name": name}, headers=account.auth)
    assert patched.status_code == 200, patched.text


@pytest.mark.parametrize("bad", REFUSED)
async def test_patch_me_refuses_control_characters(
    factory: Factory, client: httpx.AsyncClient, bad: str
) -> None:
    account = await factory.account(name="Before")
    response = await client.patch(
        "/api/v1/users/me", json={"name": f"x{bad}y"}, headers=account.auth
    )
    _assert_name_refused(response)
    me = (await client.get("/api/v1/users/me", headers=account.auth)).json()
    assert me["name"] == "Before"


async def _admin(runtime: Runtime) -> Account:
    return await Factory(runtime).account(
        f"admin-{uuid.uuid4().hex[:8]}@example.com", is_superuser=True
    )


async def test_admin_patch_and_search_refuse_control_characters(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await _admin(runtime)
    target = await factory.account(name="Target")
    user_id = (await client.get("/api/v1/users/me", headers=target.auth)).json()["id"]
    for bad in REFUSED:
        response = await client.patch(
            f"/api/v1/admin/users/{user_id}", json={"name": f"x{bad}"}, headers=admin.auth
        )
        _assert_name_refused(response)
        search = await client.get(
            "/api/v1/admin/users", params={"q": f"user{bad}"}, headers=admin.auth
        )
        assert search.status_code == 422, (bad, search.text)
        assert search.json()["errors"][0]["loc"] == ["query", "q"]
    ok = await client.patch(
        f"/api/v1/admin/users/{user_id}", json={"name": "Renamed"}, headers=admin.auth
    )
    assert ok.status_code == 200 and ok.json()["name"] == "Renamed"


NUL_REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/api/v1/auth/register", {"email": "a\x00b@example.com", "password": TEST_PASSWORD}),
    ("POST", "/api/v1/auth/register", {"email": "nul@example.com", "password": "pass\x00" * 4}),
    ("POST", "/api/v1/auth/login", {"email": "a\x00@example.com", "password": TEST_PASSWORD}),
    ("POST", "/api/v1/auth/login", {"email": "nul@example.com", "password": "x\x00y"}),
    ("POST", "/api/v1/auth/verify-email", {"token": "agv_\x00" + "A" * 40}),
    ("POST", "/api/v1/auth/verify-email/resend", {"email": "\x00@example.com"}),
    ("POST", "/api/v1/auth/refresh", {"refresh_token": "agr_\x00" + "A" * 40}),
    ("POST", "/api/v1/auth/logout", {"refresh_token": "agr_\x00" + "A" * 40}),
    ("POST", "/api/v1/auth/password/forgot", {"email": "x\x00@example.com"}),
    ("POST", "/api/v1/auth/password/reset", {"token": "agp_\x00", "new_password": "p" * 20}),
    ("POST", "/api/v1/oauth/token", {"code": "ago_\x00" + "A" * 40}),
]


@pytest.mark.parametrize(("method", "path", "body"), NUL_REQUESTS)
async def test_nul_bytes_elsewhere_are_never_a_500(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any]
) -> None:
    response = await client.request(method, path, json=body)
    assert 200 <= response.status_code < 500, (path, response.status_code, response.text)


async def test_control_characters_in_user_agent_are_stored_scrubbed(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    headers = {"User-Agent": "evil\x00agent\r\nX-Injected: 1"}
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": account.email, "password": account.password},
        headers=headers,
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    sessions = await client.get("/api/v1/sessions", headers={"Authorization": f"Bearer {token}"})
    assert sessions.status_code == 200
    agents = {s["user_agent"] for s in sessions.json()}
    assert "evil\ufffdagent\ufffd\ufffdX-Injected: 1" in agents
    assert not any("\x00" in (agent or "") for agent in agents)
