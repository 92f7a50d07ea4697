"""MfaChallenges: the sign-in step a second factor adds.

A right first factor (a password, or a provider sign-in's one-time code) of an account with TOTP
on gets no tokens but a challenge (``challenge``): an ``agm_`` token, its keyed hash stored, alive
``AUTHGATE_MFA_TOKEN_TTL`` seconds. The callers make it in the security write of their 403
``mfa_required``, so it outlives the failed request. ``verify`` checks one code against it:

- the attempt is counted on the challenge before the code is looked at (one conditional UPDATE,
  which also holds the row: concurrent attempts on one challenge are counted one by one), and
  after ``MAX_ATTEMPTS`` wrong codes, once used, or expired, the token is ``invalid_token``;
- it is an attempt in the per-account sign-in throttle too: reserved first (429 while the
  account is throttled), a wrong code a failure, the right one the success that clears the
  count (which a right password of such an account left alone: ``pass_first_factor``);
- a wrong code's count and its audit row are kept by a security write, the request failing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from authgate.audit import AuditService, AuditType
from authgate.config import Settings
from authgate.core.db import security_write
from authgate.core.errors import InvalidCode, InvalidToken
from authgate.core.http import ClientInfo
from authgate.core.limits import account_key
from authgate.core.security.opaque import OpaqueTokens, TokenKind
from authgate.core.throttle import LoginThrottle
from authgate.core.time import utc_now
from authgate.mfa.factors import Factor, SecondFactor
from authgate.mfa.repository import MfaRepository
from authgate.models import User
from authgate.users.repository import UserRepository


def sign_in_amr(method: str, factor: Factor) -> tuple[str, ...]:
    """RFC 8176 ``amr`` of a sign-in completed with a second factor: the first factor (``pwd``
    for a password, ``fed`` for a provider sign-in), ``otp`` for a TOTP code, and ``mfa``."""
    first = "pwd" if method == "password" else "fed"
    return (first, "otp", "mfa") if factor == "totp" else (first, "mfa")


@dataclass(frozen=True, slots=True)
class PassedChallenge:
    """A second factor accepted for a live challenge, which is now spent."""

    user: User
    #: The first factor's sign-in method ("password", "oauth:<provider>").
    method: str
    factor: Factor
    amr: tuple[str, ...]


class MfaChallenges:
    #: Wrong codes a challenge survives; the next attempt is ``invalid_token``.
    MAX_ATTEMPTS = 5

    def __init__(
        self,
        settings: Settings,
        opaque: OpaqueTokens,
        factors: SecondFactor,
        audit: AuditService,
        users: UserRepository,
        throttle: LoginThrottle,
        repository: MfaRepository | None = None,
    ) -> None:
        self._ttl = timedelta(seconds=settings.mfa_token_ttl)
        self._opaque = opaque
        self._factors = factors
        self._audit = audit
        self._users = users
        self._throttle = throttle
        self._repo = repository or MfaRepository()

    async def required(self, db: AsyncSession, user_id: uuid.UUID) -> bool:
        """Whether a sign-in of the user needs a second factor (TOTP is on)."""
        return await self._repo.enabled(db, user_id)

    async def challenge(
        self, db: AsyncSession, user_id: uuid.UUID, method: str, client: ClientInfo | None
    ) -> str:
        """A new ``agm_`` token for a right first factor (``method``) of the user."""
        token, token_hash = self._opaque.new(TokenKind.mfa)
        now = utc_now()
        self._repo.add_challenge(
            db,
            user_id=user_id,
            token_hash=token_hash,
            method=method,
            now=now,
            expires_at=now + self._ttl,
        )
        self._audit.record(
            db, AuditType.mfa_required, user_id=user_id, client=client, detail={"method": method}
        )
        return token

    async def verify(
        self, db: AsyncSession, token: str, factor: Factor, code: str, client: ClientInfo
    ) -> PassedChallenge:
        """Check one code against a live challenge and spend both: 400 ``invalid_token`` for
        anything but a live ``agm_`` token with attempts left, 400 ``invalid_code`` for a wrong
        or used code, 429 while the account's throttle refuses."""
        if not OpaqueTokens.looks_like(TokenKind.mfa, token):
            raise InvalidToken()
        now = utc_now()
        claimed = await self._repo.claim_attempt(
            db, self._opaque.hash(token), now, self.MAX_ATTEMPTS
        )
        if claimed is None:
            raise InvalidToken()
        user = await self._users.by_id(db, claimed.user_id)
        row = await self._repo.totp(db, claimed.user_id)
        if (
            user is None
            or not user.is_active
            or not user.email_verified
            or row is None
            or row.confirmed_at is None  # the second factor was removed meanwhile
        ):
            raise InvalidToken()
        bucket = await self._throttle.bucket(account_key(user.email), client)
        await self._throttle.reserve(bucket)
        if not await self._factors.spend(db, row, factor, code, now):
            await security_write(
                db,
                partial(
                    self._wrong_code, claimed.id, claimed.user_id, claimed.method, factor, client
                ),
            )
            await self._throttle.failure(bucket)
            raise InvalidCode()
        if not await self._repo.spend_challenge(db, claimed.id, now):
            raise InvalidToken()  # not reachable: the claim holds the row
        await self._throttle.success(bucket)
        return PassedChallenge(user, claimed.method, factor, sign_in_amr(claimed.method, factor))

    async def _wrong_code(
        self,
        challenge_id: uuid.UUID,
        user_id: uuid.UUID,
        method: str,
        factor: Factor,
        client: ClientInfo,
        tx: AsyncSession,
    ) -> None:
        attempts = await self._repo.count_failed_attempt(tx, challenge_id)
        self._audit.record(
            tx,
            AuditType.login_failed,
            user_id=user_id,
            client=client,
            detail={
                "method": method,
                "reason": "wrong_code",
                "factor": factor,
                "attempts": attempts,
            },
        )
