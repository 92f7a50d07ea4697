"""Queries over users."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from authgate.models import EmailOutbox, OutboxStatus, User
from authgate.users.emails import email_key

__all__ = ["UserRepository", "email_key"]  # email_key re-exported for existing importers


_BY_EMAIL_KEY = select(User).where(User.email_key == bindparam("email_key"))
_SET_LAST_LOGIN = (
    update(User).where(User.id == bindparam("user_id")).values(last_login_at=bindparam("at"))
)


class UserRepository:
    async def by_email(self, db: AsyncSession, normalized_email: str) -> User | None:
        result = await db.execute(_BY_EMAIL_KEY, {"email_key": email_key(normalized_email)})
        return result.scalar_one_or_none()

    async def set_last_login(self, db: AsyncSession, user: User, at: datetime) -> None:
        """One prebuilt UPDATE rather than a unit-of-work flush (the login hot path); the loaded
        object gets the same value without being marked changed."""
        conn = await db.connection()
        await conn.execute(_SET_LAST_LOGIN, {"user_id": user.id, "at": at})
        set_committed_value(user, "last_login_at", at)

    async def by_id(self, db: AsyncSession, user_id: uuid.UUID) -> User | None:
        return await db.get(User, user_id)

    async def delete(self, db: AsyncSession, user: User) -> None:
        """Remove the user; sessions, tokens and identities go by ON DELETE CASCADE, pending
        mail addressed to them is dropped here (sent rows are pruned by the dispatcher)."""
        await db.execute(
            delete(EmailOutbox).where(
                EmailOutbox.user_id == user.id, EmailOutbox.status == OutboxStatus.pending.value
            )
        )
        await db.execute(delete(User).where(User.id == user.id))
