"""Queries over the email outbox; the delivery rules (when to retry, when a message is dead,
how long a lease lasts) are the dispatcher's.

Every write that records the result of a claim is conditional on the claim still being held
(``status = sending`` and ``claimed_by`` this worker), so a worker that lost its lease changes
nothing; those methods return whether the row was still owned.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.models.email_outbox import EmailOutbox, OutboxStatus


@dataclass(frozen=True, slots=True)
class Claim:
    #: The rows now claimed by this worker, loaded.
    rows: list[EmailOutbox]
    #: Abandoned rows that used their last attempt and were moved to ``dead`` instead.
    abandoned_dead: int = 0


def _due(now: datetime) -> Any:
    """``pending`` and due, or ``sending`` with a lease that ran out (its worker died)."""
    return or_(
        and_(EmailOutbox.status == OutboxStatus.pending, EmailOutbox.next_attempt_at <= now),
        and_(EmailOutbox.status == OutboxStatus.sending, EmailOutbox.claimed_until < now),
    )


def _owned(outbox_id: uuid.UUID, worker_id: str) -> Any:
    return and_(
        EmailOutbox.id == outbox_id,
        EmailOutbox.status == OutboxStatus.sending,
        EmailOutbox.claimed_by == worker_id,
    )


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


class OutboxRepository:
    async def claim(
        self,
        db: AsyncSession,
        *,
        now: datetime,
        limit: int,
        worker_id: str,
        lease: timedelta,
        max_attempts: int,
        skip_locked: bool,
    ) -> Claim:
        """Claim up to ``limit`` due rows, oldest due first, for ``worker_id`` until
        ``now + lease``. Caller owns the (short) transaction.

        ``skip_locked`` (PostgreSQL) locks the candidates ``FOR UPDATE SKIP LOCKED``; either way
        the claim is a conditional UPDATE, so a row someone else claimed in between is left out.
        Taking over an abandoned claim counts as an attempt, and an abandoned row that used its
        last one (``max_attempts``) is moved to ``dead`` instead of being claimed.
        """
        candidates = (
            select(EmailOutbox.id)
            .where(_due(now))
            .order_by(EmailOutbox.next_attempt_at)
            .limit(limit)
        )
        if skip_locked:
            candidates = candidates.with_for_update(skip_locked=True)
        ids = list((await db.scalars(candidates)).all())
        if not ids:
            return Claim(rows=[])
        exhausted = await db.execute(
            update(EmailOutbox)
            .where(
                EmailOutbox.id.in_(ids),
                EmailOutbox.status == OutboxStatus.sending,
                EmailOutbox.claimed_until < now,
                EmailOutbox.attempts + 1 >= max_attempts,
            )
            .values(
                status=OutboxStatus.dead,
                attempts=EmailOutbox.attempts + 1,
                last_error="abandoned by its worker",
                claimed_by=None,
                claimed_until=None,
            )
            .execution_options(synchronize_session=False)
        )
        abandoned_dead = _rowcount(exhausted)
        # Conditional: a row someone else claimed in between no longer matches ``_due``.
        claimed = await db.execute(
            update(EmailOutbox)
            .where(EmailOutbox.id.in_(ids), _due(now))
            .values(
                status=OutboxStatus.sending,
                claimed_by=worker_id,
                claimed_until=now + lease,
                attempts=case(
                    (EmailOutbox.status == OutboxStatus.sending, EmailOutbox.attempts + 1),
                    else_=EmailOutbox.attempts,
                ),
            )
            .returning(EmailOutbox.id)
            .execution_options(synchronize_session=False)
        )
        claimed_ids = list(claimed.scalars().all())
        if not claimed_ids:
            return Claim(rows=[], abandoned_dead=abandoned_dead)
        rows = await db.scalars(select(EmailOutbox).where(EmailOutbox.id.in_(claimed_ids)))
        return Claim(rows=list(rows.all()), abandoned_dead=abandoned_dead)

    async def mark_sent(
        self,
        db: AsyncSession,
        outbox_id: uuid.UUID,
        worker_id: str,
        *,
        now: datetime,
        provider_message_id: str | None,
    ) -> bool:
        """Record a delivered message and wipe its payload; False when the claim was lost."""
        result = await db.execute(
            update(EmailOutbox)
            .where(_owned(outbox_id, worker_id))
            .values(
                status=OutboxStatus.sent,
                sent_at=now,
                attempts=EmailOutbox.attempts + 1,
                provider_message_id=(provider_message_id or "")[:256] or None,
                payload_ciphertext=None,
                claimed_by=None,
                claimed_until=None,
                last_error=None,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(_rowcount(result))

    async def mark_job_done(
        self, db: AsyncSession, outbox_id: uuid.UUID, worker_id: str, *, now: datetime
    ) -> bool:
        """Record a job row as done and wipe its payload (in the job's own transaction);
        False when the claim was lost. The same row state as a sent mail, with no message id."""
        return await self.mark_sent(db, outbox_id, worker_id, now=now, provider_message_id=None)

    async def mark_failed(
        self,
        db: AsyncSession,
        outbox_id: uuid.UUID,
        worker_id: str,
        *,
        error: str,
        retry_at: datetime | None,
    ) -> bool:
        """Count a failed attempt: ``pending`` again at ``retry_at``, or ``dead`` when it is
        None. False when the claim was lost."""
        values: dict[str, Any] = {
            "attempts": EmailOutbox.attempts + 1,
            "last_error": error,
            "claimed_by": None,
            "claimed_until": None,
        }
        if retry_at is None:
            values["status"] = OutboxStatus.dead
        else:
            values["status"] = OutboxStatus.pending
            values["next_attempt_at"] = retry_at
        result = await db.execute(
            update(EmailOutbox)
            .where(_owned(outbox_id, worker_id))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(_rowcount(result))

    async def release(self, db: AsyncSession, ids: Collection[uuid.UUID], worker_id: str) -> None:
        """Hand claimed-but-untried rows back: ``pending`` again, with no claim."""
        await db.execute(
            update(EmailOutbox)
            .where(
                EmailOutbox.id.in_(ids),
                EmailOutbox.status == OutboxStatus.sending,
                EmailOutbox.claimed_by == worker_id,
            )
            .values(status=OutboxStatus.pending, claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        )

    async def prune(self, db: AsyncSession, cutoff: datetime) -> int:
        """Delete rows sent before ``cutoff``; return how many."""
        result = await db.execute(
            delete(EmailOutbox)
            .where(EmailOutbox.status == OutboxStatus.sent, EmailOutbox.sent_at < cutoff)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result)

    async def backlog(self, db: AsyncSession) -> tuple[int, datetime | None]:
        """How many rows are not delivered yet (pending or being sent), and when the oldest of
        them was written (None when there is none)."""
        stmt = select(func.count(EmailOutbox.id), func.min(EmailOutbox.created_at)).where(
            EmailOutbox.status.in_((OutboxStatus.pending, OutboxStatus.sending))
        )
        count, oldest = (await db.execute(stmt)).one()
        return int(count), oldest

    async def dead_letters(self, db: AsyncSession, *, limit: int) -> Sequence[EmailOutbox]:
        """Dead rows, newest first."""
        stmt = (
            select(EmailOutbox)
            .where(EmailOutbox.status == OutboxStatus.dead)
            .order_by(EmailOutbox.created_at.desc())
            .limit(limit)
        )
        return (await db.scalars(stmt)).all()

    async def requeue_dead(self, db: AsyncSession, outbox_id: uuid.UUID, *, now: datetime) -> bool:
        """A dead row that still has its payload: ``pending`` with no attempts, due at ``now``.
        False when there is no such row."""
        result = await db.execute(
            update(EmailOutbox)
            .where(EmailOutbox.id == outbox_id, EmailOutbox.status == OutboxStatus.dead)
            .where(EmailOutbox.payload_ciphertext.is_not(None))
            .values(status=OutboxStatus.pending, attempts=0, next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(_rowcount(result))
