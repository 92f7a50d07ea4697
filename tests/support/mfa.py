"""The second factor in tests: TOTP codes computed the way an authenticator app does (pyotp, on
the service's clock, so ``core.time.shifted`` moves them too), and the HTTP steps of enrolling
and of signing in with a second factor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pyotp

from authgate.core.time import utc_now
from tests.support.api import API, assert_problem
from tests.support.flows import TEST_PASSWORD, Account


@dataclass(frozen=True)
class Enrolled:
    """What the owner of an account with TOTP on knows: the secret and the recovery codes."""

    secret: str
    recovery_codes: list[str]


def totp_code(secret: str, steps: int = 0) -> str:
    """The authenticator app's code now (``steps`` time-steps later or earlier)."""
    return pyotp.TOTP(secret).at(utc_now(), counter_offset=steps)


def wrong_code(secret: str) -> str:
    """Six digits that are no code of the current window (±1 step)."""
    taken = {totp_code(secret, steps) for steps in (-1, 0, 1)}
    return next(c for c in (f"{n:06d}" for n in range(10)) if c not in taken)


async def start(client: httpx.AsyncClient, account: Account, **body: Any) -> httpx.Response:
    return await client.post(
        f"{API}/users/me/mfa/totp",
        json={"password": account.password, **body},
        headers=account.auth,
    )


async def enrol(client: httpx.AsyncClient, account: Account) -> Enrolled:
    """Turn TOTP on over HTTP: start, then confirm with the app's current code."""
    started = await start(client, account)
    assert started.status_code == 200, started.text
    secret = started.json()["secret"]
    confirmed = await client.post(
        f"{API}/users/me/mfa/totp/confirm", json={"code": totp_code(secret)}, headers=account.auth
    )
    assert confirmed.status_code == 200, confirmed.text
    return Enrolled(secret, confirmed.json()["recovery_codes"])


async def status(client: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    response = await client.get(f"{API}/users/me/mfa", headers=account.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def mfa_token(client: httpx.AsyncClient, email: str, password: str = TEST_PASSWORD) -> str:
    """A right password of an account with TOTP on: the ``agm_`` token of its 403."""
    response = await client.post(f"{API}/auth/login", json={"email": email, "password": password})
    assert_problem(response, 403, "mfa_required")
    token: str = response.json()["mfa_token"]
    assert token.startswith("agm_")
    return token


async def verify(
    client: httpx.AsyncClient, token: str, code: str, method: str = "totp"
) -> httpx.Response:
    return await client.post(
        f"{API}/auth/mfa/verify", json={"mfa_token": token, "method": method, "code": code}
    )
