"""The password policy as a client meets it (NIST SP 800-63B rev 4)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time

import bcrypt
import httpx
import pytest
from sqlalchemy import select, update

from authgate.models import User
from authgate.runtime import Runtime
from tests.support.factories import Factory
from tests.support.flows import Flows


async def _register(
    client: httpx.AsyncClient, email: str, password: str, name: str | None = None
) -> httpx.Response:
    body = {"email": email, "password": password}
    if name:
        body["name"] = name
    return await client.post("/api/v1/auth/register", json=body)


async def test_fourteen_code_points_refused_fifteen_accepted(client: httpx.AsyncClient) -> None:
    short = await _register(client, "a@example.com", "x" * 14 + "")
    assert short.status_code == 422
    assert short.json()["code"] == "weak_password"
    assert short.json()["reason"] == "too_short"
    assert "15" in short.json()["detail"]
    # 14 emoji are 14 code points however many bytes they take: still too short.
    emoji14 = await _register(client, "b@example.com", "🦊🐢🐙🦉🐝🦋🐞🦀🐬🦔🐌🦜🐧🦩")
    assert emoji14.status_code == 422
    emoji15 = await _register(client, "c@example.com", "🦊🐢🐙🦉🐝🦋🐞🦀🐬🦔🐌🦜🐧🦩🐳")
    assert emoji15.status_code == 202


@pytest.mark.parametrize(
    "password", ["1q2w3e4r5t6y7u8i9o0p", "123456789987654321", "1Q2W3E4R5T6Y7U8I9O0P"]
)
async def test_blocklisted_passwords_refused(client: httpx.AsyncClient, password: str) -> None:
    """Entries of the bundled list that pass the length rule are still refused (any case)."""
    response = await _register(client, "d@example.com", password)
    assert response.status_code == 422
    assert response.json()["reason"] == "common"
    assert "common" in response.json()["detail"].lower()


async def test_email_and_name_as_password_refused(client: httpx.AsyncClient) -> None:
    email = "grace.hopper.navy@example.com"
    as_email = await _register(client, email, email)
    assert as_email.status_code == 422
    assert as_email.json()["reason"] == "context"
    as_name = await _register(
        client, "e@example.com", "Grace Brewster Hopper", name="Grace Brewster Hopper"
    )
    assert as_name.status_code == 422
    assert as_name.json()["reason"] == "context"


async def test_ten_thousand_characters_refused_without_hashing(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    original = runtime.passwords.hash

    async def counting(password: str) -> str:
        nonlocal calls
        calls += 1
        return await original(password)

    monkeypatch.setattr(runtime.passwords, "hash", counting)
    start = time.perf_counter()
    response = await _register(client, "f@example.com", "x" * 10_000)
    elapsed = time.perf_counter() - start
    assert response.status_code == 422
    assert response.json()["reason"] == "too_long"
    assert calls == 0
    assert elapsed < 1.0


async def test_long_password_is_not_truncated(flows: Flows, factory: Factory) -> None:
    password = "".join(secrets.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(80))
    account = await factory.account(password=password)
    assert (await flows.login(account.email, password[:72])).status_code == 401
    assert (await flows.login(account.email, password)).status_code == 200


def _django_pbkdf2(password: str, iterations: int = 100_000) -> str:
    salt = secrets.token_urlsafe(12)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode()}"


def _passlib_pbkdf2(password: str, rounds: int = 29_000) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds)

    def ab64(data: bytes) -> str:
        return base64.b64encode(data).decode().rstrip("=").replace("+", ".")

    return f"$pbkdf2-sha256${rounds}${ab64(salt)}${ab64(digest)}"


@pytest.mark.parametrize("kind", ["bcrypt", "django_pbkdf2", "passlib_pbkdf2"])
async def test_legacy_hashes_log_in_and_are_rehashed(
    flows: Flows, factory: Factory, runtime: Runtime, kind: str
) -> None:
    account = await factory.account()
    legacy = {
        "bcrypt": lambda p: bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4)).decode(),
        "django_pbkdf2": _django_pbkdf2,
        "passlib_pbkdf2": _passlib_pbkdf2,
    }[kind](account.password)
    async with runtime.sessionmaker() as db:
        await db.execute(
            update(User).where(User.email == account.email).values(password_hash=legacy)
        )
        await db.commit()
    assert (await flows.login(account.email, "not the password at all")).status_code == 401
    assert (await flows.login(account.email, account.password)).status_code == 200
    async with runtime.sessionmaker() as db:
        stored = (
            await db.execute(select(User.password_hash).where(User.email == account.email))
        ).scalar_one()
    assert stored is not None and stored.startswith("$argon2id$")
    assert (await flows.login(account.email, account.password)).status_code == 200


# -- strength (zxcvbn) and the policy endpoint ---------------------------------------------------

GUESSABLE = [
    "passwordpassword",
    "aaaaaaaaaaaaaaaa",
    "123456789012345",
    "qwertyuiopasdfgh",
    "iloveyouiloveyou",
]


@pytest.mark.parametrize("password", GUESSABLE)
async def test_guessable_passwords_refused(client: httpx.AsyncClient, password: str) -> None:
    response = await _register(client, "g@example.com", password)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "weak_password"
    assert body["reason"] in {"common", "weak"}
    assert body["detail"].strip()


async def test_email_or_name_repeated_refused(client: httpx.AsyncClient) -> None:
    email = "marie.curie@example.com"
    for password, name in [(email * 2, None), ("Marie Curie Marie Curie", "Marie Curie")]:
        response = await _register(client, email, password, name=name)
        assert response.status_code == 422, password
        assert response.json()["code"] == "weak_password"
        assert response.json()["reason"] in {"context", "weak"}


def _uncommon_words() -> list[str]:
    """Words of 5+ letters past the 5,000 most frequent of zxcvbn's English Wikipedia list."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    words = FREQUENCY_LISTS["english_wikipedia"][5_000:30_000]
    return [w for w in words if len(w) >= 5 and w.isalpha()]


async def test_four_random_words_and_sixteen_random_characters_accepted(
    client: httpx.AsyncClient,
) -> None:
    words = _uncommon_words()
    for n in range(5):
        passphrase = " ".join(secrets.choice(words) for _ in range(4))
        response = await _register(client, f"words{n}@example.com", passphrase)
        assert response.status_code == 202, (passphrase, response.text)
        token = secrets.token_urlsafe(12)
        response = await _register(client, f"chars{n}@example.com", token)
        assert response.status_code == 202, (token, response.text)


async def test_the_policy_endpoint(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/auth/password-policy")
    assert response.status_code == 200
    assert response.json() == {
        "min_length": 15,
        "max_length": 256,
        "min_strength": 3,
        "breach_check": "off",
    }
    operation = (await client.get("/openapi.json")).json()["paths"]["/api/v1/auth/password-policy"]
    assert operation["get"]["tags"] == ["auth"]
    assert "security" not in operation["get"]


async def test_a_refusal_reads_the_same_on_register_reset_and_change(
    client: httpx.AsyncClient, factory: Factory, flows: Flows, runtime: Runtime
) -> None:
    account = await factory.account()
    registered = await _register(client, "h@example.com", "qwertyuiopasdfgh")
    changed = await client.post(
        "/api/v1/users/me/password",
        json={"current_password": account.password, "new_password": "qwertyuiopasdfgh"},
        headers={"Authorization": f"Bearer {account.access_token}"},
    )
    forgot = await client.post("/api/v1/auth/password/forgot", json={"email": account.email})
    assert forgot.status_code == 202
    token = await _reset_token(flows, account.email)
    reset = await client.post(
        "/api/v1/auth/password/reset",
        json={"token": token, "new_password": "qwertyuiopasdfgh"},
    )
    bodies = [registered.json(), changed.json(), reset.json()]
    assert [r.status_code for r in (registered, changed, reset)] == [422, 422, 422]
    assert all(b["code"] == "weak_password" for b in bodies)
    assert len({(b["reason"], b["detail"]) for b in bodies}) == 1, bodies


async def _reset_token(flows: Flows, email: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        mails = [m for m in flows.sink.to(email) if "/reset-password?token=" in m.text]
        if mails:
            return mails[-1].token("/reset-password")
        await asyncio.sleep(0.02)
    raise AssertionError(f"no reset link for {email}")
