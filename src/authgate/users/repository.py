"""Queries over users."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.models import EmailOutbox, OutboxStatus, User


def email_key(normalized_email: str) -> str:
    """Addresses are unique case-insensitively: the key is the case-folded normalised address."""
    return normalized_email.casefold()


class UserRepository:
    async def by_email(self, db: AsyncSession, normalized_email: str) -> User | None:
        result = await db.execute(select(User).where(User.email_key == email_key(normalized_email)))
        return result.scalar_one_or_none()

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
