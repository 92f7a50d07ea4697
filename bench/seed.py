"""Seed the bench database: verified users with a known password, tokens to drive wrk with.

Users go in through the public API (``POST /auth/register``, so their password hashes are the
real Argon2id ones the server writes) and are then marked verified with one SQL ``UPDATE``,
which stands in for clicking the emailed link. Tokens come from real logins.

The second-factor scenario needs one user per request (a TOTP code is accepted once per account):
``mfa_challenges`` makes them through the service's own repositories and key ring (the same
settings as the server), each with a confirmed TOTP secret and a pending ``agm_`` challenge, as a
right password at ``/auth/login`` would have left it.

The passkey scenario needs one sign-in flow per request (a challenge is single use):
``passkey_assertions`` registers a passkey of the tests' software authenticator
(``tests/support/passkeys.py``) for one user over the API, then fetches that many sign-in options
and signs each, as a browser would between the options call and the verify call.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from unittest import mock

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


async def mfa_challenges(env: Mapping[str, str], count: int) -> list[tuple[str, str]]:
    """``count`` (``agm_`` token, TOTP code) pairs, each of its own verified user with TOTP on.

    The codes are those of the next 30 s step, which ``/auth/mfa/verify`` accepts (±1 step) for
    the next 30 to 60 s: call this right before the scenario."""
    import pyotp

    from authgate.core.http import ClientInfo
    from authgate.core.time import utc_now
    from authgate.mfa.codes import new_totp_secret
    from authgate.mfa.factors import SecondFactor
    from authgate.mfa.repository import MfaRepository
    from authgate.runtime import Runtime

    with mock.patch.dict(os.environ, dict(env)):
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
    runtime = Runtime.build(settings, with_dispatcher=False)
    client = ClientInfo(ip_address="127.0.0.1", user_agent="bench-seed")
    repo, factors = MfaRepository(), SecondFactor(runtime.encryption, runtime.opaque)
    pairs: list[tuple[str, str]] = []
    try:
        password_hash = await runtime.passwords.hash(PASSWORD)
        step_of = pyotp.TOTP(new_totp_secret()).timecode
        for start in range(0, count, 500):
            async with runtime.sessionmaker() as db, db.begin():
                for index in range(start, min(count, start + 500)):
                    user = await runtime.users_repo.create(
                        db,
                        email=f"bench-mfa-{os.getpid()}-{index}@example.com",
                        password_hash=password_hash,
                        email_verified=True,
                    )
                    assert user is not None
                    secret, now = new_totp_secret(), utc_now()
                    ciphertext, key_id = factors.seal(user.id, secret)
                    assert await repo.put_pending(
                        db, user_id=user.id, secret_ct=ciphertext, key_id=key_id, now=now
                    )
                    row = await repo.totp(db, user.id)
                    assert row is not None
                    assert await repo.confirm(db, row.id, step_of(now) - 2, now)
                    token = await runtime.mfa_challenges.challenge(db, user.id, "password", client)
                    code = pyotp.TOTP(secret).at(now + timedelta(seconds=30))
                    pairs.append((token, code))
    finally:
        await runtime.close()
    return pairs


async def passkey_assertions(
    base_url: str, access_token: str, count: int, concurrency: int = 4
) -> list[dict[str, object]]:
    """``count`` ready ``POST /auth/passkey/verify`` bodies (flow token + signed assertion) of
    one passkey, registered here for the user of ``access_token``."""
    from tests.support import passkeys

    authenticator = passkeys.SoftAuthenticator()
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        await passkeys.register(client, access_token, authenticator)

        async def one() -> dict[str, object]:
            async with semaphore:
                flow_token, options = await passkeys.request_options(client)
            return {"flow_token": flow_token, "credential": authenticator.get(options)}

        return list(await asyncio.gather(*(one() for _ in range(count))))
