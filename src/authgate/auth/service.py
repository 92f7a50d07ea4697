"""AuthService: the orchestrator of sign-up and sign-in. It sequences; the specialists decide.

Enumeration: register answers the same whatever the address; login takes the same path (a
password verification against a dummy hash for unknown emails) and gives the same 401 for an
unknown email, a wrong password and a disabled account; 403 ``email_not_verified`` only after
a correct password.

Second factor: after a correct password of a verified account with TOTP on, login issues no
token but an ``agm_`` challenge (403 ``mfa_required``, ``MfaChallenges.challenge``), and
``verify_mfa`` opens the session once ``MfaChallenges.verify`` accepted a code. Check order:
password → verified → second factor.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from authgate.audit import AuditService, AuditType
from authgate.config import Settings
from authgate.core.db import security_write
from authgate.core.email import EmailService, EmailTemplate
from authgate.core.errors import (
    AuthgateError,
    EmailNotVerified,
    InvalidCredentials,
    MfaRequired,
    OAuth2MfaRequired,
    OAuth2TokenError,
)
from authgate.core.http import ClientInfo
from authgate.core.limits import Limit, account_key
from authgate.core.metrics import LOGINS
from authgate.core.ratelimit import RateLimiter
from authgate.core.security.passwords import PasswordService
from authgate.core.throttle import LoginThrottle
from authgate.core.time import utc_now
from authgate.mfa.challenges import MfaChallenges
from authgate.mfa.factors import Factor
from authgate.models import User
from authgate.passkeys.service import PASSKEY_AMR, PasskeyService
from authgate.password_reset.service import PasswordResetService
from authgate.sessions.service import IssuedTokens, SessionService
from authgate.users.emails import normalize_email, try_normalize_email
from authgate.users.repository import UserRepository
from authgate.verification.service import Registration, VerificationService
from authgate.webhooks import WebhookEvent, user_data
from authgate.webhooks.service import WebhookService

logger = logging.getLogger("authgate.auth")


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """The form of ``POST /auth/token``."""

    grant_type: str | None
    username: str | None = None
    password: str | None = None
    refresh_token: str | None = None


@dataclass(frozen=True, slots=True)
class PasswordChecked:
    """A right password: its user, a stronger hash of it if one is due, and the throttle bucket
    the attempt was reserved in (the caller reports how the sign-in ends)."""

    user: User
    new_hash: str | None
    bucket: str


class AuthService:
    """The orchestrator of sign-up and sign-in: it sequences the specialists (passwords,
    sessions, verification, reset, throttle, rate limits, audit) and decides nothing they own.
    """

    def __init__(
        self,
        settings: Settings,
        passwords: PasswordService,
        sessions: SessionService,
        verification: VerificationService,
        password_reset: PasswordResetService,
        email: EmailService,
        audit: AuditService,
        users: UserRepository,
        limiter: RateLimiter,
        throttle: LoginThrottle,
        mfa: MfaChallenges,
        passkeys: PasskeyService,
        *,
        webhooks: WebhookService | None = None,
    ) -> None:
        self._webhooks = webhooks or WebhookService.disabled()
        self._settings = settings
        self._mfa = mfa
        self._passkeys = passkeys
        self._limiter = limiter
        self._throttle = throttle
        self._passwords = passwords
        self._sessions = sessions
        self._verification = verification
        self._reset = password_reset
        self._email = email
        self._audit = audit
        self._users = users

    async def register(
        self, db: AsyncSession, email: str, password: str, name: str | None, client: ClientInfo
    ) -> None:
        """Register an address, answering the same way whether or not it has an account.

        A new address gets an account and a verification link; the owner of a verified (or
        disabled) account gets a notice instead; a second sign-up of an unverified address gets a
        link of its own and changes nothing until it is followed (docs/api.md).

        Args:
            db: The request's unit of work.
            email: The address as typed.
            password: The new password; checked against the policy and hashed in every case, so
                an existing address costs the same time as a new one.
            name: The display name, or None.
            client: The caller's IP address and User-Agent.

        Raises:
            PasswordPolicyError: The password is refused (``weak_password``).
            RateLimited: A per-address limit is spent.
        """
        address = normalize_email(
            email, check_deliverability=self._settings.email_check_deliverability
        )
        password = await self._passwords.validate(
            password, context=[address, address.split("@", 1)[0], name]
        )
        # Hash whatever happens next, so an existing address costs the same time as a new one.
        password_hash = await self._passwords.hash(password)
        existing = await self._users.by_email(db, address)
        if existing is None:
            existing = await self._create(db, address, name, password_hash)
            if existing is None:
                self._audit.record(db, AuditType.register, client=client)
                return
        await self._register_again(db, existing, name, password_hash, client)

    async def _create(
        self, db: AsyncSession, address: str, name: str | None, password_hash: str
    ) -> User | None:
        """Insert a new user; on a concurrent insert of the same address return that user."""
        user = await self._users.create(db, email=address, name=name, password_hash=password_hash)
        if user is None:
            return await self._users.by_email(db, address)
        await self._webhooks.emit(
            db, WebhookEvent.user_created, user_data(user.id, user.email, email_verified=False)
        )
        await self._verification.send_verification(db, user)
        return None

    async def _register_again(
        self,
        db: AsyncSession,
        user: User,
        name: str | None,
        password_hash: str,
        client: ClientInfo,
    ) -> None:
        if user.email_verified or not user.is_active:
            # The owner hears about it; the caller learns nothing.
            await self._email.enqueue(
                db,
                to=user.email,
                template=EmailTemplate.register_existing,
                context={
                    "name": user.name,
                    "login_url": f"{self._settings.frontend_url}/login",
                    "reset_url": f"{self._settings.frontend_url}/forgot-password",
                },
                user_id=user.id,
            )
            return
        # Unverified: nothing changes now. This sign-up gets its own link, carrying its
        # password and name; they become the account's only if that link is followed.
        await self._verification.send_registration_link(
            db, user, Registration(password_hash, name, utc_now(), client)
        )
        self._audit.record(
            db, AuditType.register, user_id=user.id, client=client, detail={"again": True}
        )

    async def resend_verification(self, db: AsyncSession, email: str, client: ClientInfo) -> None:
        """Queue a fresh verification link for ``email``, whatever the address.

        The work happens after the answer (an outbox job), so neither the answer nor its timing
        tells whether the address has an unverified account.

        Args:
            db: The request's unit of work.
            email: The address as typed.
            client: The caller's IP address and User-Agent.

        Raises:
            RateLimited: ``verify_resend_email`` is spent for this address.
        """
        address = try_normalize_email(email)
        await self._limiter.per_address(Limit.verify_resend_email, address, email)
        self._verification.request_resend(db, address)

    async def authenticate(
        self, db: AsyncSession, email: str, password: str, client: ClientInfo
    ) -> PasswordChecked:
        """The user whose password this is (and a stronger hash of it, if one is due), or
        InvalidCredentials (same for every failure, its audit row kept by a security write).

        The per-account throttle is consulted before any password work (the per-IP limit is
        the route's), keyed on the address whether or not an account has it. A device that signed in to the
        account before has a throttle bucket of its own, which strangers' failures never fill.
        A failure is reported to the throttle here; the caller reports a right password's
        outcome (``success``, or ``pass_first_factor`` while a second factor is pending)."""
        address = try_normalize_email(email)
        account = account_key(address, email)
        bucket = await self._throttle.bucket(account, client)
        await self._throttle.reserve(bucket)
        user = await self._users.by_email(db, address) if address else None
        ok, new_hash = await self._passwords.verify(password, user.password_hash if user else None)
        if user is None or not ok or not user.is_active:
            await self._throttle.failure(bucket)
            user_id = user.id if user else None
            reason = "unknown" if user is None else "password" if not ok else "disabled"

            async def audit_failure(tx: AsyncSession) -> None:
                self._audit.record(
                    tx,
                    AuditType.login_failed,
                    user_id=user_id,
                    client=client,
                    detail={"reason": reason},
                )

            await security_write(db, audit_failure)
            LOGINS.labels("failed").inc()
            raise InvalidCredentials()
        return PasswordChecked(user, new_hash, bucket)

    async def login(
        self, db: AsyncSession, email: str, password: str, client: ClientInfo
    ) -> IssuedTokens:
        """Sign in with email and password and open a session.

        Args:
            db: The request's unit of work.
            email: The address as typed.
            password: The password as typed.
            client: The caller's IP address and User-Agent (remembered as a known device).

        Returns:
            The new session's access and refresh tokens (``amr`` ``["pwd"]``).

        Raises:
            InvalidCredentials: Unknown address, wrong password or disabled account, alike.
            EmailNotVerified: The password is right but the address is not verified yet.
            MfaRequired: The account has TOTP on: no tokens yet, the problem carries the
                ``agm_`` token for ``verify_mfa``.
            RateLimited: The per-account throttle refuses the attempt.
        """
        checked = await self.authenticate(db, email, password, client)
        user, new_hash = checked.user, checked.new_hash
        if not user.email_verified:
            await self._throttle.success(checked.bucket)
            LOGINS.labels("unverified").inc()
            if new_hash is not None:
                # The right password was given: its stronger hash is kept all the same.
                await security_write(db, partial(self._rehash, user.id, new_hash))
            raise EmailNotVerified()
        if await self._mfa.required(db, user.id):
            # No token until the second factor; the throttle's failures stay counted till then.
            await self._throttle.pass_first_factor(checked.bucket)
            token = await security_write(db, partial(self._challenge, user.id, new_hash, client))
            LOGINS.labels("mfa_required").inc()
            raise MfaRequired(token)
        await self._throttle.success(checked.bucket)
        if new_hash is not None:
            await self._users.update(db, user, password_hash=new_hash)
        return await self._signed_in(db, user, client, method="password", amr=("pwd",))

    async def verify_mfa(
        self, db: AsyncSession, mfa_token: str, factor: Factor, code: str, client: ClientInfo
    ) -> IssuedTokens:
        """``POST /auth/mfa/verify``: the session of a sign-in whose second factor was just
        accepted, opened like the first factor's would have been (its method, ``amr``)."""
        passed = await self._mfa.verify(db, mfa_token, factor, code, client)
        return await self._signed_in(
            db,
            passed.user,
            client,
            method=passed.method,
            amr=passed.amr,
            detail={"method": passed.method, "second_factor": passed.factor},
        )

    async def verify_passkey(
        self,
        db: AsyncSession,
        flow_token: str,
        credential: dict[str, Any],
        client: ClientInfo,
    ) -> IssuedTokens:
        """``POST /auth/passkey/verify``: the session of a sign-in with a passkey, which
        ``PasskeyService.authenticate`` accepted (401 ``invalid_credentials`` otherwise). A
        passkey with user verification is both factors: no TOTP step follows."""
        user = await self._passkeys.authenticate(db, flow_token, credential, client)
        return await self._signed_in(
            db, user, client, method="passkey", amr=PASSKEY_AMR, detail={"method": "passkey"}
        )

    async def _signed_in(
        self,
        db: AsyncSession,
        user: User,
        client: ClientInfo,
        *,
        method: str,
        amr: tuple[str, ...],
        detail: dict[str, str] | None = None,
    ) -> IssuedTokens:
        """Open the session and record the sign-in: last login, the device of a password
        sign-in (its own throttle bucket from now on), the audit row and the metric."""
        issued = await self._sessions.open(db, user, client, method=method, amr=amr)
        if method == "password":
            await self._throttle.remember_device(account_key(user.email), client)
        await self._users.set_last_login(db, user, utc_now())
        await self._audit.insert(
            db,
            AuditType.login_succeeded,
            user_id=user.id,
            session_id=issued.session_id,
            client=client,
            detail=detail,
        )
        LOGINS.labels("succeeded").inc()
        return issued

    async def _challenge(
        self, user_id: uuid.UUID, new_hash: str | None, client: ClientInfo, tx: AsyncSession
    ) -> str:
        """The security write of a right password that needs a second factor: the challenge
        (and the password's stronger hash, if one is due) outlive the 403."""
        if new_hash is not None:
            await self._rehash(user_id, new_hash, tx)
        return await self._mfa.challenge(tx, user_id, "password", client)

    async def _rehash(self, user_id: uuid.UUID, password_hash: str, tx: AsyncSession) -> None:
        user = await self._users.by_id(tx, user_id)
        if user is not None:
            await self._users.update(tx, user, password_hash=password_hash)

    async def token(self, db: AsyncSession, grant: TokenGrant, client: ClientInfo) -> IssuedTokens:
        """``POST /auth/token`` (RFC 6749 §4.3 and §6): the password and refresh_token grants.
        Every refusal is an ``OAuth2TokenError`` (§5.2), except 429 and 503, which stay
        problems. What a refusal must keep (the failed sign-in's audit row, a revocation on
        refresh-token reuse) was committed by its security write before it was raised."""
        if not grant.grant_type:
            raise OAuth2TokenError("invalid_request", "grant_type is required.")
        if grant.grant_type == "password":
            if not grant.username or grant.password is None:
                raise OAuth2TokenError("invalid_request", "username and password are required.")
            issue = self.login(db, grant.username, grant.password, client)
        elif grant.grant_type == "refresh_token":
            if not grant.refresh_token:
                raise OAuth2TokenError("invalid_request", "refresh_token is required.")
            issue = self._sessions.refresh(db, grant.refresh_token, client)
        else:
            raise OAuth2TokenError("unsupported_grant_type", "Use password or refresh_token.")
        try:
            return await issue
        except MfaRequired as exc:
            raise OAuth2MfaRequired(exc.detail, exc.mfa_token) from exc
        except EmailNotVerified as exc:
            raise OAuth2TokenError("invalid_grant", exc.detail) from exc
        except AuthgateError as exc:
            if exc.status in (429, 503):
                raise
            raise OAuth2TokenError(
                "invalid_grant", "The credentials or refresh token are invalid."
            ) from exc

    async def forgot_password(self, db: AsyncSession, email: str, client: ClientInfo) -> None:
        """Queue a password reset for ``email``, answering the same way for every address.

        The link is issued and mailed after the answer (an outbox job), and only to an active
        account.

        Args:
            db: The request's unit of work.
            email: The address as typed.
            client: The caller's IP address and User-Agent.

        Raises:
            RateLimited: ``forgot_password_email`` is spent for this address.
        """
        # Limited per normalised address whether or not it exists (a 429 says nothing), and
        # per IP on the route.
        address = try_normalize_email(email)
        await self._limiter.per_address(Limit.forgot_password_email, address, email)
        await self._reset.request(db, address, client)


__all__ = ["AuthService", "account_key"]
