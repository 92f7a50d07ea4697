"""Operator tasks run from the CLI: create an admin, purge expired rows, re-encrypt secrets,
look at and retry dead email, reset a user's second factor; and the ``Housekeeper``, which purges expired pending OAuth
sign-ins periodically in the process that delivers mail (``serve`` or ``authgate worker``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authgate.action_tokens.repository import ActionTokenRepository
from authgate.config import Settings
from authgate.core.db import make_engine, make_sessionmaker
from authgate.core.email import dead_letters, requeue_dead
from authgate.core.errors import NotFound
from authgate.core.security.breaches import BreachChecker, make_breach_http_client
from authgate.core.security.crypto import EncryptionService
from authgate.core.security.passwords import PasswordService
from authgate.core.security.secrets import encryption_keys
from authgate.core.tasks import finish
from authgate.core.time import utc_now
from authgate.mfa.repository import MfaRepository
from authgate.oauth.repository import OAuthRepository
from authgate.passkeys.repository import PasskeyRepository
from authgate.sessions.repository import SessionRepository
from authgate.sign_in_alerts.repository import SignInPairRepository
from authgate.sign_in_alerts.service import KNOWN_FOR
from authgate.users.emails import normalize_email
from authgate.users.repository import UserRepository
from authgate.webhooks import WebhookEvent, user_data
from authgate.webhooks.service import WebhookService


async def create_admin(settings: Settings, email: str, password: str) -> None:
    http = make_breach_http_client() if settings.checks_breaches else None
    breaches = BreachChecker(settings, http) if http is not None else None
    passwords = PasswordService(settings, breaches=breaches)
    engine = make_engine(settings)
    try:
        address = normalize_email(email)
        password = await passwords.validate(password, context=[address, address.split("@", 1)[0]])
        password_hash = await passwords.hash(password)
        users = UserRepository()
        webhooks = (
            WebhookService.from_settings(settings, EncryptionService(encryption_keys(settings)))
            if settings.webhooks
            else WebhookService.disabled()
        )
        async with make_sessionmaker(engine)() as db, db.begin():
            user = await users.by_email(db, address)
            if user is None:
                user = await users.create(db, email=address)
                if user is None:
                    raise RuntimeError(
                        f"{address} was registered concurrently; run the command again"
                    )
                created = user_data(user.id, user.email, email_verified=True, method="create-admin")
                await webhooks.emit(db, WebhookEvent.user_created, created)
            await users.update(
                db,
                user,
                password_hash=password_hash,
                password_changed_at=utc_now(),
                email_verified=True,
                is_active=True,
                is_superuser=True,
            )
    finally:
        await passwords.close()
        await engine.dispose()
        if http is not None:
            await http.aclose()


async def purge_expired(settings: Settings) -> dict[str, int]:
    """Delete what can never be used again: expired or spent one-time tokens, ended sessions,
    expired pending OAuth sign-ins, MFA and WebAuthn challenges, and the sign-in pairs the new-sign-in
    alert no longer counts as familiar."""
    engine = make_engine(settings)
    now = utc_now()
    try:
        async with make_sessionmaker(engine)() as db, db.begin():
            tokens = await ActionTokenRepository().purge(db, now)
            sessions = await SessionRepository().purge_ended(db, now)
            states = await OAuthRepository().purge_expired_states(db, now)
            challenges = await MfaRepository().purge_challenges(db, now)
            pairs = await SignInPairRepository().purge(db, now - KNOWN_FOR)
            webauthn = await PasskeyRepository().purge_challenges(db, now)
        return {
            "action_tokens": tokens,
            "sessions": sessions,
            "oauth_states": states,
            "mfa_challenges": challenges,
            "sign_in_pairs": pairs,
            "webauthn_challenges": webauthn,
        }
    finally:
        await engine.dispose()


async def reencrypt_all(settings: Settings) -> int:
    """Move every provider-token ciphertext and TOTP secret to the current encryption key."""
    from authgate.mfa.factors import reencrypt_totp_secrets
    from authgate.oauth.vault import reencrypt_provider_tokens

    encryption = EncryptionService(encryption_keys(settings))
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as db, db.begin():
            tokens = await reencrypt_provider_tokens(db, encryption)
            return tokens + await reencrypt_totp_secrets(db, encryption)
    finally:
        await engine.dispose()


async def reset_mfa(settings: Settings, email: str) -> bool:
    """Remove a user's TOTP and recovery codes (``authgate users reset-mfa``), audited and mailed
    like an admin's reset; NotFound for an unknown address. Whether TOTP was on."""
    from authgate.runtime import Runtime

    runtime = Runtime.build(settings, with_dispatcher=False)
    try:
        async with runtime.sessionmaker() as db, db.begin():
            user = await runtime.users_repo.by_email(db, normalize_email(email))
            if user is None:
                raise NotFound(f"No account has the address {email}.")
            return await runtime.mfa.reset(db, user, None, by="cli")
    finally:
        await runtime.close()


async def revoke_all_sessions(settings: Settings) -> int:
    """End every session of every user and refuse every access token issued before now on
    every process (``authgate sessions revoke-all``); the number of sessions ended. Audited
    like the admin API's. Raises ``ServiceUnavailable`` (nothing changed) without the store."""
    from authgate.runtime import Runtime

    runtime = Runtime.build(settings, with_dispatcher=False)
    try:
        async with runtime.sessionmaker() as db, db.begin():
            return await runtime.sessions.revoke_all(db, None, by="cli", admin_id=None)
    finally:
        await runtime.close()


async def list_dead_email(settings: Settings, limit: int) -> list[dict[str, Any]]:
    """Dead outbox messages, newest first: who, which template, how often tried and why not."""
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as db:
            return [
                {
                    "id": str(row.id),
                    "to": row.to_address,
                    "template": row.template,
                    "attempts": row.attempts,
                    "last_error": row.last_error,
                    "created_at": row.created_at.isoformat(),
                    # A message whose payload is gone (wiped or lost) cannot be sent again.
                    "retryable": row.payload_ciphertext is not None,
                }
                for row in await dead_letters(db, limit=limit)
            ]
    finally:
        await engine.dispose()


async def retry_dead_email(settings: Settings, outbox_id: uuid.UUID) -> None:
    """Give one dead message a fresh set of attempts; NotFound when it is not a retryable dead
    message. A running dispatcher picks it up at its next poll."""
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as db, db.begin():
            if not await requeue_dead(db, outbox_id):
                raise NotFound(f"{outbox_id} is not a dead message that can be sent again.")
    finally:
        await engine.dispose()


logger = logging.getLogger("authgate.housekeeping")

#: Seconds between two purges of expired pending OAuth sign-ins (a state lives 10 minutes).
HOUSEKEEPING_INTERVAL = 600.0


class Housekeeper:
    """Deletes expired ``oauth_states`` rows every ``interval`` seconds, so they do not pile up
    between runs of ``authgate purge-expired``. Only expired states: sessions, one-time tokens and
    sign-in pairs stay for the CLI."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        interval: float = HOUSEKEEPING_INTERVAL,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._interval = interval
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        async with self._sessionmaker() as db, db.begin():
            count = await OAuthRepository().purge_expired_states(db, utc_now())
        if count:
            logger.info("housekeeping.oauth_states_purged", extra={"count": count})
        return count

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._stop.clear()
            self._task = asyncio.create_task(self._loop(), name="housekeeping")

    async def stop(self) -> None:
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            await finish(task)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except (SQLAlchemyError, OSError) as exc:
                logger.warning("housekeeping.failed", extra={"error": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval)
