"""Rows for tests, made through the repositories and services instead of over HTTP.

A test that needs a signed-in account as a precondition takes ``factory`` and calls
``await factory.account()``: one INSERT for the user, ``SessionService.open`` for the session,
no mail, no Argon2. Tests about registration, verification or login keep ``Flows`` (HTTP).

The password hash of a factory user is computed once per test session for each (password,
Argon2 parameters) and reused: every factory user has a real Argon2id hash, so logging in with
``TEST_PASSWORD`` over HTTP works, but only the first user pays for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pyotp

from authgate.core.http import ClientInfo
from authgate.core.security.opaque import TokenKind
from authgate.core.time import utc_now
from authgate.mfa.codes import new_recovery_codes, new_totp_secret
from authgate.mfa.factors import SecondFactor
from authgate.mfa.repository import MfaRepository
from authgate.models import ActionKind, OAuthState, User
from authgate.runtime import Runtime
from authgate.sessions.service import IssuedTokens
from authgate.users.emails import normalize_email
from tests.support.flows import TEST_PASSWORD, Account
from tests.support.mfa import Enrolled

#: The client the ``client`` fixture presents (``tests/conftest.py``): sessions made here look
#: like sessions made over HTTP.
TEST_CLIENT = ClientInfo(ip_address="203.0.113.7", user_agent="pytest-agent/1.0")

_HASHES: dict[tuple[str, int, int, int], str] = {}


async def password_hash(runtime: Runtime, password: str = TEST_PASSWORD) -> str:
    """An Argon2id hash of ``password`` under the runtime's parameters, computed once."""
    s = runtime.settings
    key = (password, s.argon2_time_cost, s.argon2_memory_cost, s.argon2_parallelism)
    if key not in _HASHES:
        _HASHES[key] = await runtime.passwords.hash(password)
    return _HASHES[key]


class Factory:
    """Users, sessions and one-time tokens in the test database, each in its own committed
    transaction (as the API would leave them)."""

    def __init__(self, runtime: Runtime, client: ClientInfo = TEST_CLIENT) -> None:
        self.runtime = runtime
        self.client = client
        self._n = 0

    def new_email(self) -> str:
        self._n += 1
        return f"member{self._n}-{uuid.uuid4().hex[:6]}@example.com"

    async def user(
        self,
        email: str | None = None,
        *,
        password: str | None = TEST_PASSWORD,
        verified: bool = True,
        name: str | None = None,
        is_active: bool = True,
        is_superuser: bool = False,
    ) -> User:
        """A user (verified by default) with a password (None: a provider-only account), the
        row a registration and its verification leave (no audit events, no mail)."""
        address = normalize_email(email or self.new_email())
        hashed = None if password is None else await password_hash(self.runtime, password)
        users = self.runtime.users_repo
        async with self.runtime.sessionmaker() as db, db.begin():
            user = await users.create(
                db, email=address, name=name, password_hash=hashed, email_verified=verified
            )
            assert user is not None, f"{address} exists already"
            if not is_active or is_superuser:
                await users.update(db, user, is_active=is_active, is_superuser=is_superuser)
        return user

    async def session(
        self,
        user: User,
        *,
        method: str = "password",
        amr: Sequence[str] = ("pwd",),
        client: ClientInfo | None = None,
    ) -> IssuedTokens:
        """A new sign-in of ``user``, as a login opens it (``SessionService.open``; a new
        IP + User-Agent pair of a user who signed in before queues the new-sign-in mail)."""
        async with self.runtime.sessionmaker() as db, db.begin():
            return await self.runtime.sessions.open(
                db, user, client or self.client, method=method, amr=amr
            )

    async def account(
        self,
        email: str | None = None,
        password: str = TEST_PASSWORD,
        name: str | None = None,
        *,
        is_superuser: bool = False,
    ) -> Account:
        """A verified user signed in once (one open session, ``last_login_at`` set): what
        ``Flows.signed_up`` gives, without HTTP, mail or audit events."""
        user = await self.user(email, password=password, name=name, is_superuser=is_superuser)
        async with self.runtime.sessionmaker() as db, db.begin():
            tokens = await self.runtime.sessions.open(
                db, user, self.client, method="password", amr=("pwd",)
            )
            await self.runtime.users_repo.set_last_login(db, user, utc_now())
        return Account(user.email, password, tokens.access_token, tokens.refresh_token)

    async def action_token(
        self,
        user: User,
        kind: ActionKind,
        *,
        ttl_seconds: int = 3600,
        data: dict[str, Any] | None = None,
    ) -> str:
        """A one-time token (verification, reset, email change …); the raw value."""
        async with self.runtime.sessionmaker() as db, db.begin():
            return await self.runtime.action_tokens.issue(db, kind, user.id, ttl_seconds, data)

    async def oauth_state(self, *, provider: str = "test", ttl_seconds: int = 600) -> OAuthState:
        """A pending provider sign-in row. ``OAuthService.start`` needs the provider's metadata,
        so the row is written directly; its sealed secrets are placeholders (never opened)."""
        now = utc_now()
        _, state_hash = self.runtime.opaque.new(TokenKind.oauth_state)
        _, binding_hash = self.runtime.opaque.new(TokenKind.oauth_state)
        state = OAuthState(
            state_hash=state_hash,
            binding_hash=binding_hash,
            provider=provider,
            redirect_url="https://app.test/after-login",
            secrets_ct=b"sealed",
            key_id=self.runtime.encryption.current_kid,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
        async with self.runtime.sessionmaker() as db, db.begin():
            db.add(state)
        return state

    async def totp(self, user: User) -> Enrolled:
        """TOTP on for ``user`` (a confirmed secret, no code used yet, 10 recovery codes), the
        rows enrollment leaves, without HTTP, mail or audit events."""
        secret = new_totp_secret()
        codes = new_recovery_codes()
        repo, factors = MfaRepository(), SecondFactor(self.runtime.encryption, self.runtime.opaque)
        ciphertext, key_id = factors.seal(user.id, secret)
        now = utc_now()
        async with self.runtime.sessionmaker() as db, db.begin():
            assert await repo.put_pending(
                db, user_id=user.id, secret_ct=ciphertext, key_id=key_id, now=now
            )
            row = await repo.totp(db, user.id)
            assert row is not None
            # No code of the current window used yet.
            assert await repo.confirm(db, row.id, pyotp.TOTP(secret).timecode(now) - 2, now)
            hashes = [factors.recovery_code_hash(user.id, code.replace("-", "")) for code in codes]
            await repo.replace_recovery_codes(db, user.id, hashes, now)
        return Enrolled(secret, codes)
