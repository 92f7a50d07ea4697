"""The audit trail: one row per security event, written in the transaction of the change."""

from __future__ import annotations

import logging
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.core.http import ClientInfo
from authgate.core.time import utc_now
from authgate.models import AuditEvent

logger = logging.getLogger("authgate.audit")


class AuditType(StrEnum):
    register = "register"
    email_verified = "email_verified"
    login_succeeded = "login_succeeded"
    login_failed = "login_failed"
    refresh = "refresh"
    refresh_reuse_detected = "refresh_reuse_detected"
    logout = "logout"
    logout_all = "logout_all"
    session_revoked = "session_revoked"
    password_reset_requested = "password_reset_requested"
    password_reset_completed = "password_reset_completed"
    password_changed = "password_changed"
    email_change_requested = "email_change_requested"
    email_change_confirmed = "email_change_confirmed"
    account_deleted = "account_deleted"
    user_updated_by_admin = "user_updated_by_admin"
    oauth_login = "oauth_login"
    oauth_link_started = "oauth_link_started"
    oauth_linked = "oauth_linked"
    oauth_unlinked = "oauth_unlinked"
    provider_token_stored = "provider_token_stored"
    provider_token_refreshed = "provider_token_refreshed"
    provider_token_revoked = "provider_token_revoked"
    provider_token_accessed = "provider_token_accessed"
    mfa_enrollment_started = "mfa_enrollment_started"
    mfa_enabled = "mfa_enabled"
    mfa_disabled = "mfa_disabled"
    mfa_recovery_codes_regenerated = "mfa_recovery_codes_regenerated"
    #: A right first factor of an account with TOTP on: an ``agm_`` token instead of tokens.
    mfa_required = "mfa_required"
    passkey_added = "passkey_added"
    passkey_removed = "passkey_removed"
    #: An admin removed every passkey of a user (``DELETE /admin/users/{id}/passkeys``).
    passkeys_removed_by_admin = "passkeys_removed_by_admin"
    #: Every session of every user ended (``POST /admin/sessions/revoke-all``, CLI).
    sessions_revoked_all = "sessions_revoked_all"


_INSERT = insert(AuditEvent)


class AuditService:
    async def insert(
        self,
        db: AsyncSession,
        type_: AuditType,
        *,
        user_id: uuid.UUID | None = None,
        session_id: uuid.UUID | None = None,
        client: ClientInfo | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """``record`` as one prebuilt Core INSERT on the unit of work's connection, for hot
        paths (a sign-in): no ORM object, no unit-of-work flush at commit. Pending ORM changes
        are not flushed first: the rows it refers to must be written already."""
        conn = await db.connection()
        await conn.execute(
            _INSERT,
            {
                "id": uuid.uuid4(),
                "created_at": utc_now(),
                "type": type_.value,
                "user_id": user_id,
                "session_id": session_id,
                "ip_address": client.ip_address if client else None,
                "user_agent": client.user_agent if client else None,
                "detail": detail or None,
            },
        )
        self.log(type_, user_id=user_id, session_id=session_id)

    def record(
        self,
        db: AsyncSession,
        type_: AuditType,
        *,
        user_id: uuid.UUID | None = None,
        session_id: uuid.UUID | None = None,
        client: ClientInfo | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        db.add(
            AuditEvent(
                type=type_.value,
                user_id=user_id,
                session_id=session_id,
                ip_address=client.ip_address if client else None,
                user_agent=client.user_agent if client else None,
                detail=detail or None,
            )
        )
        self.log(type_, user_id=user_id, session_id=session_id)

    def log(
        self,
        type_: AuditType,
        *,
        user_id: uuid.UUID | None = None,
        session_id: uuid.UUID | None = None,
    ) -> None:
        """The event's log line, for a row written by a caller's own statement (the refresh
        rotation) and by the two methods above."""
        logger.info(
            "audit.%s",
            type_.value,
            extra={
                "user_id": str(user_id) if user_id else None,
                "session_id": str(session_id) if session_id else None,
            },
        )
