"""MfaService: the second factor (TOTP and recovery codes) and the sign-in step it adds.

Enrollment: ``start_totp`` (the owner re-confirmed) stores a new secret, encrypted and bound to
the user, as a *pending* enrollment and shows it once; ``confirm_totp`` turns it on with a code of
that secret (whose time-step then counts as used), hands out 10 recovery codes (keyed hashes
stored) and ends every other session of the user. Turning it off and making new recovery codes
ask for the password (or a recent sign-in without one) *and* a code, as one throttled attempt.
Every change is audited and mailed to the owner.

Sign-in: a right first factor of an account with TOTP on gets a challenge (``challenge``: an
``agm_`` token, keyed hash stored, ``AUTHGATE_MFA_TOKEN_TTL``) instead of tokens; ``verify``
checks one code against it. Each attempt is counted on the challenge before the code is
looked at (a conditional UPDATE that also locks the row), and in the per-account sign-in
throttle; a wrong code's count is kept by a security write although the request fails. After
``MAX_ATTEMPTS`` wrong codes, once used, or expired, the token is refused as ``invalid_token``.
A TOTP code is accepted at most once per account: its time-step must be later than the last one
accepted (one conditional UPDATE, so two concurrent uses of a code cannot both win).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from authgate.audit import AuditService, AuditType
from authgate.config import Settings
from authgate.core.db import security_write
from authgate.core.email import EmailService, EmailTemplate
from authgate.core.errors import Conflict, InvalidCode, InvalidToken
from authgate.core.http import ClientInfo
from authgate.core.limits import account_key
from authgate.core.security.crypto import DecryptionError, EncryptionService
from authgate.core.security.opaque import OpaqueTokens, TokenKind
from authgate.core.throttle import LoginThrottle
from authgate.core.time import utc_now
from authgate.mfa.codes import (
    new_recovery_codes,
    new_totp_secret,
    normalize_recovery_code,
    normalize_totp_code,
    provisioning_uri,
    qr_svg_data_uri,
    totp_step,
)
from authgate.mfa.repository import MfaRepository, MfaSummary
from authgate.models import AuthSession, TotpSecret, User
from authgate.sessions.service import SessionService
from authgate.users.reconfirm import PasswordReconfirmation
from authgate.users.repository import UserRepository

logger = logging.getLogger("authgate.mfa")

Factor = Literal["totp", "recovery_code"]


def totp_associated_data(user_id: uuid.UUID) -> bytes:
    """Binds a TOTP secret's ciphertext to its user: copied to another user's row, it does not
    decrypt."""
    return f"totp:{user_id}".encode()


def sign_in_amr(method: str, factor: Factor) -> tuple[str, ...]:
    """RFC 8176 ``amr`` of a sign-in completed with a second factor: the first factor (``pwd``
    for a password, ``fed`` for a provider sign-in), ``otp`` for a TOTP code, and ``mfa``."""
    first = "pwd" if method == "password" else "fed"
    return (first, "otp", "mfa") if factor == "totp" else (first, "mfa")


@dataclass(frozen=True, slots=True)
class Enrollment:
    secret: str
    otpauth_uri: str
    qr_svg: str


@dataclass(frozen=True, slots=True)
class MfaStatus:
    totp: bool
    passkeys: int
    recovery_codes_left: int


@dataclass(frozen=True, slots=True)
class PassedChallenge:
    """A second factor checked against a live challenge, which is now spent."""

    user: User
    #: The first factor's sign-in method ("password", "oauth:<provider>").
    method: str
    factor: Factor
    amr: tuple[str, ...]


class MfaService:
    #: Wrong codes a challenge survives; the next attempt is ``invalid_token``.
    MAX_ATTEMPTS = 5

    def __init__(
        self,
        settings: Settings,
        encryption: EncryptionService,
        opaque: OpaqueTokens,
        sessions: SessionService,
        email: EmailService,
        audit: AuditService,
        users: UserRepository,
        throttle: LoginThrottle,
        reconfirm: PasswordReconfirmation,
        repository: MfaRepository | None = None,
    ) -> None:
        self._settings = settings
        self._encryption = encryption
        self._opaque = opaque
        self._sessions = sessions
        self._email = email
        self._audit = audit
        self._users = users
        self._throttle = throttle
        self._reconfirm = reconfirm
        self._repo = repository or MfaRepository()

    # -- reading ----------------------------------------------------------------------------

    async def status(self, db: AsyncSession, user: User) -> MfaStatus:
        summary = (await self._repo.summaries(db, [user.id]))[user.id]
        return MfaStatus(summary.totp, 0, summary.recovery_codes_left if summary.totp else 0)

    async def summaries(
        self, db: AsyncSession, user_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, MfaSummary]:
        return await self._repo.summaries(db, user_ids)

    async def required(self, db: AsyncSession, user_id: uuid.UUID) -> bool:
        """Whether a sign-in of the user needs a second factor (TOTP is on)."""
        return await self._repo.enabled(db, user_id)

    # -- enrollment and management ----------------------------------------------------------

    async def start_totp(
        self,
        db: AsyncSession,
        user: User,
        session: AuthSession,
        password: str | None,
        client: ClientInfo,
    ) -> Enrollment:
        """A new pending secret, shown this once (a pending one is replaced); 409 while TOTP
        is on. Nothing changes for signing in until ``confirm_totp``."""
        if await self._repo.enabled(db, user.id):
            raise Conflict("Two-step sign-in is already on.")
        await self._reconfirm.confirm_owner(user, session, password, client)
        secret = new_totp_secret()
        stored = await self._repo.put_pending(
            db,
            user_id=user.id,
            secret_ct=self._encryption.encrypt(secret.encode(), totp_associated_data(user.id)),
            key_id=self._encryption.current_kid,
            now=utc_now(),
        )
        if not stored:
            raise Conflict("Two-step sign-in is already on, or being set up meanwhile.")
        self._audit.record(db, AuditType.mfa_enrollment_started, user_id=user.id, client=client)
        uri = provisioning_uri(secret, user.email, self._settings.totp_issuer)
        return Enrollment(secret, uri, qr_svg_data_uri(uri))

    async def confirm_totp(
        self, db: AsyncSession, user: User, session: AuthSession, code: str, client: ClientInfo
    ) -> list[str]:
        """Turn the pending enrollment on with a code of its secret; the recovery codes, shown
        this once. Every other session of the user ends (the current one stays)."""
        row = await self._repo.totp(db, user.id)
        if row is None:
            raise Conflict("No two-step sign-in set-up is pending: start one first.")
        if row.confirmed_at is not None:
            raise Conflict("Two-step sign-in is already on.")
        now = utc_now()
        step = self._step(row, code, now)
        if step is None:
            raise InvalidCode()
        if not await self._repo.confirm(db, row.id, step, now):
            raise Conflict("The set-up changed meanwhile: start again.")
        codes = await self._new_recovery_codes(db, user.id, now)
        ended = await self._sessions.end_others(db, user, session.id, reason="mfa_enabled")
        await self._notify(db, user, EmailTemplate.mfa_enabled)
        self._audit.record(
            db,
            AuditType.mfa_enabled,
            user_id=user.id,
            session_id=session.id,
            client=client,
            detail={"sessions_ended": len(ended)},
        )
        return codes

    async def disable_totp(
        self,
        db: AsyncSession,
        user: User,
        session: AuthSession,
        password: str | None,
        code: str,
        client: ClientInfo,
    ) -> None:
        """TOTP and the recovery codes go, once the owner gave the password (or signed in
        recently, without one) and a current TOTP code or an unused recovery code."""
        row = await self._confirmed(db, user.id)
        await self._reconfirm.confirm_owner(
            user, session, password, client, second_factor=partial(self._any_code, db, row, code)
        )
        await self._remove(db, user.id)
        await self._notify(db, user, EmailTemplate.mfa_disabled, by_admin=False)
        self._audit.record(
            db, AuditType.mfa_disabled, user_id=user.id, session_id=session.id, client=client
        )

    async def regenerate_recovery_codes(
        self,
        db: AsyncSession,
        user: User,
        session: AuthSession,
        password: str | None,
        code: str,
        client: ClientInfo,
    ) -> list[str]:
        """A new set of recovery codes (the old set stops working), checked like ``disable_totp``."""
        row = await self._confirmed(db, user.id)
        await self._reconfirm.confirm_owner(
            user, session, password, client, second_factor=partial(self._any_code, db, row, code)
        )
        codes = await self._new_recovery_codes(db, user.id, utc_now())
        await self._notify(db, user, EmailTemplate.mfa_recovery_codes)
        self._audit.record(
            db,
            AuditType.mfa_recovery_codes_regenerated,
            user_id=user.id,
            session_id=session.id,
            client=client,
        )
        return codes

    async def reset(
        self,
        db: AsyncSession,
        user: User,
        client: ClientInfo | None,
        *,
        by: str,
        admin_id: uuid.UUID | None = None,
    ) -> bool:
        """An operator removes the user's TOTP and recovery codes (``by``: ``admin`` through the
        API, ``cli``); the owner is mailed when TOTP was on. Whether it was."""
        was_on = await self._remove(db, user.id)
        if was_on:
            await self._notify(db, user, EmailTemplate.mfa_disabled, by_admin=True)
        detail: dict[str, object] = {"by": by, "was_on": was_on}
        if admin_id is not None:
            detail["admin_id"] = str(admin_id)
        self._audit.record(
            db, AuditType.mfa_disabled, user_id=user.id, client=client, detail=detail
        )
        return was_on

    # -- signing in -------------------------------------------------------------------------

    async def challenge(
        self, db: AsyncSession, user_id: uuid.UUID, method: str, client: ClientInfo
    ) -> str:
        """A new ``agm_`` token for a right first factor (``method``) of the user. Called in
        the security write of the refused sign-in, so the row outlives its 403."""
        token, token_hash = self._opaque.new(TokenKind.mfa)
        now = utc_now()
        self._repo.add_challenge(
            db,
            user_id=user_id,
            token_hash=token_hash,
            method=method,
            now=now,
            expires_at=now + timedelta(seconds=self._settings.mfa_token_ttl),
        )
        self._audit.record(
            db, AuditType.mfa_required, user_id=user_id, client=client, detail={"method": method}
        )
        return token

    async def verify(
        self, db: AsyncSession, token: str, factor: Factor, code: str, client: ClientInfo
    ) -> PassedChallenge:
        """Check one code against a live challenge and spend it: 400 ``invalid_token`` for
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
        if not await self._code_ok(db, row, factor, code, now):
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

    # -- codes ------------------------------------------------------------------------------

    def _step(self, row: TotpSecret, code: str, now: datetime) -> int | None:
        """The time-step of ``code`` under the row's secret (None: not a code of it)."""
        try:
            secret = self._encryption.decrypt(row.secret_ct, totp_associated_data(row.user_id))
        except DecryptionError:
            # A key dropped from the ring too early: recovery codes still work.
            logger.error("mfa.totp.undecryptable", extra={"user_id": str(row.user_id)})
            return None
        return totp_step(secret.decode(), code, now)

    async def _code_ok(
        self, db: AsyncSession, row: TotpSecret, factor: Factor, code: str, now: datetime
    ) -> bool:
        """Spend the code if it is a right, unused one of the user's: a TOTP code whose step is
        later than the last accepted, or an unused recovery code."""
        if factor == "totp":
            step = self._step(row, code, now)
            return step is not None and await self._repo.use_step(db, row.user_id, step)
        normalized = normalize_recovery_code(code)
        return normalized is not None and await self._repo.use_recovery_code(
            db, row.user_id, self.recovery_code_hash(row.user_id, normalized), now
        )

    async def _any_code(self, db: AsyncSession, row: TotpSecret, code: str) -> None:
        """The second factor of turning TOTP off and of new recovery codes: six digits are a
        TOTP code, anything else a recovery code; ``InvalidCode`` unless right and unused."""
        factor: Factor = "totp" if normalize_totp_code(code) is not None else "recovery_code"
        if not await self._code_ok(db, row, factor, code, utc_now()):
            raise InvalidCode()

    def recovery_code_hash(self, user_id: uuid.UUID, normalized: str) -> str:
        """The stored form of a recovery code (``normalize_recovery_code``): a keyed hash bound
        to its user."""
        return self._opaque.hash(f"recovery:{user_id}:{normalized}")

    async def _new_recovery_codes(
        self, db: AsyncSession, user_id: uuid.UUID, now: datetime
    ) -> list[str]:
        codes = new_recovery_codes()
        hashes = [self.recovery_code_hash(user_id, code.replace("-", "")) for code in codes]
        await self._repo.replace_recovery_codes(db, user_id, hashes, now)
        return codes

    async def _confirmed(self, db: AsyncSession, user_id: uuid.UUID) -> TotpSecret:
        row = await self._repo.totp(db, user_id)
        if row is None or row.confirmed_at is None:
            raise Conflict("Two-step sign-in is not on.")
        return row

    async def _remove(self, db: AsyncSession, user_id: uuid.UUID) -> bool:
        was_on = await self._repo.delete_totp(db, user_id)
        await self._repo.delete_recovery_codes(db, user_id)
        return was_on

    async def _notify(
        self, db: AsyncSession, user: User, template: EmailTemplate, **context: object
    ) -> None:
        await self._email.enqueue(
            db,
            to=user.email,
            template=template,
            context={"name": user.name, **context},
            user_id=user.id,
        )


async def reencrypt_totp_secrets(db: AsyncSession, encryption: EncryptionService) -> int:
    """Move every TOTP secret to the current key (``authgate keys reencrypt``); each row is
    rewritten only if it did not change meanwhile. Raises DecryptionError if a ciphertext's key
    is no longer in the ring. Returns the number of rows rewritten."""
    repo = MfaRepository()
    count = 0
    for row in await repo.all_totp(db):
        if not encryption.needs_reencrypt(row.secret_ct):
            continue
        new = encryption.reencrypt(row.secret_ct, totp_associated_data(row.user_id))
        if await repo.replace_ciphertext(db, row.id, row.secret_ct, new, encryption.current_kid):
            count += 1
    return count
