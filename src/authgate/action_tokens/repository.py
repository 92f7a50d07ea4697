"""Queries over single-use tokens (links and one-time codes); the rules are the service's."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.models import ActionKind, ActionToken


@dataclass(frozen=True, slots=True)
class SpentToken:
    id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime
    data: dict[str, Any] | None
    kind: ActionKind


class ActionTokenRepository:
    def add(
        self,
        db: AsyncSession,
        *,
        kind: ActionKind,
        user_id: uuid.UUID,
        token_hash: str,
        created_at: datetime,
        expires_at: datetime,
        data: dict[str, Any] | None,
    ) -> None:
        db.add(
            ActionToken(
                user_id=user_id,
                kind=kind.value,
                token_hash=token_hash,
                created_at=created_at,
                expires_at=expires_at,
                data=data,
            )
        )

    async def supersede(
        self, db: AsyncSession, kind: ActionKind, user_id: uuid.UUID, now: datetime
    ) -> None:
        """Mark every unused token of this kind and user used at ``now``."""
        await db.execute(
            update(ActionToken)
            .where(
                ActionToken.user_id == user_id,
                ActionToken.kind == kind.value,
                ActionToken.used_at.is_(None),
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )

    async def supersede_all(self, db: AsyncSession, kind: ActionKind, now: datetime) -> None:
        """Mark every unused token of this kind, of every user, used at ``now``."""
        await db.execute(
            update(ActionToken)
            .where(ActionToken.kind == kind.value, ActionToken.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )

    async def usable(
        self, db: AsyncSession, kind: ActionKind, token_hash: str, now: datetime
    ) -> ActionToken | None:
        """The unused, unexpired token of this kind with this hash, left as it is."""
        result = await db.execute(
            select(ActionToken).where(
                ActionToken.token_hash == token_hash,
                ActionToken.kind == kind.value,
                ActionToken.used_at.is_(None),
                ActionToken.expires_at > now,
            )
        )
        return result.scalar_one_or_none()

    async def spend(
        self, db: AsyncSession, kinds: Sequence[ActionKind], token_hash: str, now: datetime
    ) -> SpentToken | None:
        """Spend the unused, unexpired token of one of ``kinds`` with this hash: one atomic
        conditional UPDATE, so of concurrent callers exactly one gets it; None when there was
        nothing to spend."""
        result = await db.execute(
            update(ActionToken)
            .where(
                ActionToken.token_hash == token_hash,
                ActionToken.kind.in_([k.value for k in kinds]),
                ActionToken.used_at.is_(None),
                ActionToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(
                ActionToken.id,
                ActionToken.user_id,
                ActionToken.created_at,
                ActionToken.data,
                ActionToken.kind,
            )
            .execution_options(synchronize_session=False)
        )
        row = result.first()
        if row is None:
            return None
        return SpentToken(row[0], row[1], row[2], row[3], ActionKind(row[4]))

    async def purge(self, db: AsyncSession, now: datetime) -> int:
        """Delete the tokens that can never be used again (expired, spent or superseded)."""
        result = await db.execute(
            delete(ActionToken).where(
                (ActionToken.expires_at < now) | ActionToken.used_at.is_not(None)
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)
