"""Small helpers for API tests: requests by name and problem-response assertions."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

import httpx

from tests.support.mail import ReceivedMail, SmtpSink

if TYPE_CHECKING:
    from tests.support.flows import Account, Flows

API = "/api/v1"
#: Headers that differ between any two responses, whatever they answer.
VOLATILE = {"date", "x-request-id"}


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def sid_of(access_token: str) -> str:
    return str(claims_of(access_token)["sid"])


async def me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.get(f"{API}/users/me", headers=bearer(access_token))


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(f"{API}/auth/refresh", json={"refresh_token": token})


async def user_id(client: httpx.AsyncClient, account: Account) -> uuid.UUID:
    response = await me(client, account.access_token)
    assert response.status_code == 200, response.text
    return uuid.UUID(response.json()["id"])


async def mail_with_subject(
    sink: SmtpSink, address: str, fragment: str, timeout: float = 10.0
) -> ReceivedMail:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in sink.to(address) if fragment in m.subject]
        if found:
            return found[-1]
        await asyncio.sleep(0.02)
    raise AssertionError(
        f"no mail {fragment!r} to {address}: {[m.subject for m in sink.to(address)]}"
    )


def shape(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k.lower() not in VOLATILE}
    return response.status_code, response.content, headers


async def several_sessions(
    flows: Flows, client: httpx.AsyncClient, account: Account
) -> tuple[list[str], list[str]]:
    """Two more sessions (one of them rotated): every access and live refresh token so far."""
    second = (await flows.login(account.email, account.password)).json()
    third = (await flows.login(account.email, account.password)).json()
    rotated = (await refresh(client, third["refresh_token"])).json()
    access = [
        account.access_token,
        second["access_token"],
        third["access_token"],
        rotated["access_token"],
    ]
    refresh_tokens = [account.refresh_token, second["refresh_token"], rotated["refresh_token"]]
    for token in access:
        assert (await me(client, token)).status_code == 200
    return access, refresh_tokens


def claims_of(access_token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (what a test reads off a token it was just given)."""
    payload = access_token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def amr_of(access_token: str) -> Any:
    return claims_of(access_token)["amr"]
