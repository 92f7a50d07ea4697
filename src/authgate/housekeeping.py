"""Operator tasks run from the CLI: create an admin, purge expired rows, re-encrypt secrets,
look at and retry dead email."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select

from authgate.config import Settings
from authgate.core.db import make_engine, make_sessionmaker
from authgate.core.email import dead_letters, requeue_dead
from authgate.core.errors import NotFound
from authgate.core.security.crypto import EncryptionService
from authgate.core.security.passwords import PasswordService
from authgate.core.security.secrets import encryption_keys
from authgate.core.time import utc_now
from authgate.models import ActionToken, AuthSession, OAuthState, User
from authgate.users.emails import normalize_email
from authgate.users.repository import email_key


async def create_admin(settings: Settings, email: str, password: str) -> None:
    passwords = PasswordService(settings)
    engine = make_engine(settings)
    try:
        address = normalize_email(email)
        password = passwords.validate(password, context=[address, address.split("@", 1)[0]])
        password_hash = await passwords.hash(password)
        async with make_sessionmaker(engine)() as db, db.begin():
            user = (
                await db.execute(select(User).where(User.email_key == email_key(address)))
            ).scalar_one_or_none()
            if user is None:
                user = User(email=address, email_key=email_key(address))
                db.add(user)
            user.password_hash = password_hash
            user.password_changed_at = utc_now()
            user.email_verified = True
            user.is_active = True
            user.is_superuser = True
    finally:
        await passwords.close()
        await engine.dispose()


async def purge_expired(settings: Settings) -> dict[str, int]:
    """Delete what can never be used again: expired or spent one-time tokens, ended sessions."""
    engine = make_engine(settings)
    now = utc_now()
    try:
        async with make_sessionmaker(engine)() as db, db.begin():
            tokens = await db.execute(
                delete(ActionToken).where(
                    (ActionToken.expires_at < now) | ActionToken.used_at.is_not(None)
                )
            )
            sessions = await db.execute(
                delete(AuthSession).where(
                    (AuthSession.expires_at < now) | AuthSession.revoked_at.is_not(None)
                )
            )
            states = await db.execute(delete(OAuthState).where(OAuthState.expires_at < now))
        return {
            "action_tokens": tokens.rowcount or 0,  # type: ignore[attr-defined]
            "sessions": sessions.rowcount or 0,  # type: ignore[attr-defined]
            "oauth_states": states.rowcount or 0,  # type: ignore[attr-defined]
        }
    finally:
        await engine.dispose()


async def reencrypt_all(settings: Settings) -> int:
    """Move every provider-token ciphertext to the current encryption key."""
    from authgate.oauth.tokens import reencrypt_provider_tokens

    encryption = EncryptionService(encryption_keys(settings))
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as db, db.begin():
            return await reencrypt_provider_tokens(db, encryption)
    finally:
        await engine.dispose()


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
