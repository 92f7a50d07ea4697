"""Queries of the admin API: keyset-paginated listings of users and audit events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.admin.schemas import Cursor
from authgate.models import AuditEvent, User
from authgate.users.emails import ascii_lower


class AdminRepository:
    async def list_users(
        self, db: AsyncSession, *, q: str | None, limit: int, after: Cursor | None
    ) -> Sequence[User]:
        """Users oldest first by ``(created_at, id)``, strictly after ``after``; at most
        ``limit`` rows. ``q`` is a case-insensitive substring of the email or the name."""
        stmt = select(User)
        if q:
            # email_key lowers ASCII letters only (users/emails.py): fold the query the same way.
            stmt = stmt.where(
                or_(
                    User.email_key.contains(ascii_lower(q), autoescape=True),
                    User.name.icontains(q, autoescape=True),
                )
            )
        if after is not None:
            stmt = stmt.where(
                or_(
                    User.created_at > after.created_at,
                    and_(User.created_at == after.created_at, User.id > after.id),
                )
            )
        stmt = stmt.order_by(User.created_at, User.id).limit(limit)
        return (await db.execute(stmt)).scalars().all()

    async def list_audit_events(
        self,
        db: AsyncSession,
        *,
        user_id: uuid.UUID | None,
        event_type: str | None,
        limit: int,
        before: Cursor | None,
    ) -> Sequence[AuditEvent]:
        """Audit events newest first by ``(created_at, id)``, strictly before ``before``."""
        stmt = select(AuditEvent)
        if user_id is not None:
            stmt = stmt.where(AuditEvent.user_id == user_id)
        if event_type is not None:
            stmt = stmt.where(AuditEvent.type == event_type)
        if before is not None:
            stmt = stmt.where(
                or_(
                    AuditEvent.created_at < before.created_at,
                    and_(AuditEvent.created_at == before.created_at, AuditEvent.id < before.id),
                )
            )
        stmt = stmt.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(limit)
        return (await db.execute(stmt)).scalars().all()
