"""The password policy as a client meets it (NIST SP 800-63B rev 4)."""

from __future__ import annotations

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
