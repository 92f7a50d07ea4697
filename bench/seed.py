"""Seed the bench database: verified users with a known password, tokens to drive wrk with.

Users go in through the public API (``POST /auth/register``, so their password hashes are the
real Argon2id ones the server writes) and are then marked verified with one SQL ``UPDATE``,
which stands in for clicking the emailed link. Tokens come from real logins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
from sqlalchemy import update

from authgate.config import Settings
from authgate.core.db import make_engine
from authgate.models import User

#: Long, unrelated to the email and service name, and not on the common-password list.
PASSWORD = "tangerine-orbit-lantern-47-quiet"
API = "/api/v1"


def user_emails(count: int, prefix: str = "bench-user") -> list[str]:
    return [f"{prefix}-{index}@example.com" for index in range(count)]


async def register_users(base_url: str, emails: Sequence[str]) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for email in emails:
            response = await client.post(
                f"{API}/auth/register", json={"email": email, "password": PASSWORD}
            )
            if response.status_code != 202:
                raise RuntimeError(f"register {email}: {response.status_code} {response.text}")


async def mark_verified(database_url: str, emails: Sequence[str]) -> int:
    settings = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]
    engine = make_engine(settings)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(
                update(User)
                .where(User.email_key.in_([email.casefold() for email in emails]))
                .values(email_verified=True)
            )
            return int(result.rowcount)
    finally:
        await engine.dispose()


async def login_pairs(
    base_url: str, emails: Sequence[str], count: int, concurrency: int = 4
) -> list[dict[str, object]]:
    """``count`` token pairs (one login, hence one session, each), users taken round robin."""
    semaphore = asyncio.Semaphore(concurrency)

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def one(index: int) -> dict[str, object]:
            async with semaphore:
                response = await client.post(
                    f"{API}/auth/login",
                    json={"email": emails[index % len(emails)], "password": PASSWORD},
                )
            if response.status_code != 200:
                raise RuntimeError(f"login: {response.status_code} {response.text}")
            pair: dict[str, object] = response.json()
            return pair

        return list(await asyncio.gather(*(one(index) for index in range(count))))


def seed(base_url: str, database_url: str, users: int) -> list[str]:
    """Register and verify ``users`` users; returns their emails (password: ``PASSWORD``)."""
    emails = user_emails(users)
    asyncio.run(register_users(base_url, emails))
    verified = asyncio.run(mark_verified(database_url, emails))
    if verified != len(emails):
        raise RuntimeError(f"verified {verified} of {len(emails)} seeded users")
    return emails
