"""MfaService: the signed-in user's second factor (TOTP and recovery codes), and its reset by an
operator. The sign-in step it adds is ``challenges.MfaChallenges``; the stored secret and codes
are ``factors.SecondFactor``.

``start_totp`` (the owner re-confirmed) stores a new secret as a *pending* enrollment and shows it
once; ``confirm_totp`` turns it on with a code of that secret (whose time-step then counts as
used), hands out 10 recovery codes and ends every other session of the user. Turning it off and
making new recovery codes ask for the password (or a recent sign-in, without one) *and* a code, as
one throttled attempt (``PasswordReconfirmation``). Every change is audited and mailed to the
owner. The secret is never shown again, logged or stored in the clear.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from dataclasses import dataclass
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from authgate.audit import AuditService, AuditType
from authgate.config import Settings
from authgate.core.email import EmailService, EmailTemplate
from authgate.core.errors import Conflict, InvalidCode
from authgate.core.http import ClientInfo
from authgate.core.time import utc_now
from authgate.mfa.codes import new_totp_secret, provisioning_uri, qr_svg_data_uri
from authgate.mfa.factors import SecondFactor
from authgate.mfa.repository import MfaRepository, MfaSummary
from authgate.models import AuthSession, User
from authgate.passkeys.repository import PasskeyRepository
from authgate.sessions.service import SessionService
from authgate.users.reconfirm import PasswordReconfirmation
from authgate.webhooks import WebhookEvent, user_data
from authgate.webhooks.service import WebhookService


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


class MfaService:
    def __init__(
        self,
        settings: Settings,
        factors: SecondFactor,
        sessions: SessionService,
        email: EmailService,
        audit: AuditService,
        reconfirm: PasswordReconfirmation,
        repository: MfaRepository | None = None,
        *,
        webhooks: WebhookService | None = None,
    ) -> None:
        self._webhooks = webhooks or WebhookService.disabled()
        self._settings = settings
        self._factors = factors
        self._sessions = sessions
        self._email = email
        self._audit = audit
        self._reconfirm = reconfirm
        self._repo = repository or MfaRepository()
        self._passkeys = PasskeyRepository()

    # -- reading ----------------------------------------------------------------------------

    async def status(self, db: AsyncSession, user: User) -> MfaStatus:
        summary = (await self.summaries(db, [user.id]))[user.id]
        return MfaStatus(summary.totp, summary.passkeys, summary.recovery_codes_left)

    async def summaries(
        self, db: AsyncSession, user_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, MfaSummary]:
        """TOTP, recovery codes left and passkeys of each user (three queries in all)."""
        summaries = await self._repo.summaries(db, user_ids)
        passkeys = await self._passkeys.counts(db, user_ids)
        return {
            user_id: dataclasses.replace(summary, passkeys=passkeys[user_id])
            for user_id, summary in summaries.items()
        }

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
        ciphertext, key_id = self._factors.seal(user.id, secret)
        stored = await self._repo.put_pending(
            db, user_id=user.id, secret_ct=ciphertext, key_id=key_id, now=utc_now()
        )
        if not stored:
            raise Conflict("Two-step sign-in is already on, or being set up meanwhile.")
        self._audit.record(db, AuditType.mfa_enrollment_started, user_id=user.id, client=client)
        uri = provisioning_uri(secret, user.email, self._settings.totp_issuer)
        # Drawing the QR code takes about 10 ms of CPU: off the event loop.
        return Enrollment(secret, uri, await asyncio.to_thread(qr_svg_data_uri, uri))

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
        step = self._factors.step(row, code, now)
        if step is None:
            raise InvalidCode()
        if not await self._repo.confirm(db, row.id, step, now):
            raise Conflict("The set-up changed meanwhile: start again.")
        codes = await self._factors.new_recovery_codes(db, user.id, now)
        ended = await self._sessions.end_others(db, user, session.id, reason="mfa_enabled")
        await self._notify(db, user, EmailTemplate.mfa_enabled)
        await self._webhooks.emit(db, WebhookEvent.mfa_enabled, user_data(user.id, method="totp"))
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
        await self._confirm_with_code(db, user, session, password, code, client)
        await self._remove(db, user.id)
        await self._notify(db, user, EmailTemplate.mfa_disabled, by_admin=False)
        await self._webhooks.emit(
            db, WebhookEvent.mfa_disabled, user_data(user.id, method="totp", by="user")
        )
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
        await self._confirm_with_code(db, user, session, password, code, client)
        codes = await self._factors.new_recovery_codes(db, user.id, utc_now())
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
            await self._webhooks.emit(
                db, WebhookEvent.mfa_disabled, user_data(user.id, method="totp", by=by)
            )
        detail: dict[str, object] = {"by": by, "was_on": was_on}
        if admin_id is not None:
            detail["admin_id"] = str(admin_id)
        self._audit.record(
            db, AuditType.mfa_disabled, user_id=user.id, client=client, detail=detail
        )
        return was_on

    async def _confirm_with_code(
        self,
        db: AsyncSession,
        user: User,
        session: AuthSession,
        password: str | None,
        code: str,
        client: ClientInfo,
    ) -> None:
        """TOTP is on (else 409), and the owner gave the password (or signed in recently,
        without one) and a right, unused code of either factor: one throttled attempt."""
        row = await self._repo.totp(db, user.id)
        if row is None or row.confirmed_at is None:
            raise Conflict("Two-step sign-in is not on.")
        await self._reconfirm.confirm_owner(
            user,
            session,
            password,
            client,
            second_factor=partial(self._factors.spend_any, db, row, code),
        )

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
