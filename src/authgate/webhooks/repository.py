"""Queries over the webhook outbox; the delivery rules (when to retry, when an event is dead,
how long a lease lasts) are the dispatcher's.

**The claim keeps one event in flight per endpoint, in order of creation.** An event is
claimable when it is due (``pending`` and ``next_attempt_at`` has come, or ``sending`` with a
lease that ran out because its worker died) and nothing of its endpoint stands before it: no
undelivered (``pending`` or ``sending``) event with a smaller ``seq``, and no other event of the
endpoint ``sending`` under a live lease (one committed late with a smaller ``seq`` waits for the
one in flight). The claim is one conditional ``UPDATE … WHERE seq IN (SELECT …) RETURNING``:

- SQLite: the statement takes the write lock before it reads, so two processes claim one after
  the other and the second sees the first's claim.
- PostgreSQL: a transaction-scoped advisory lock serialises the claims of every worker (each
  claim is a few milliseconds; delivery happens outside it), and the UPDATE's snapshot is taken
  after the lock is granted, so it sees every claim committed before. Inserting events and
  recording results never wait on that lock.

Every write that records the result of an attempt is conditional on the claim still being held
(``status = sending`` and ``claimed_by`` this worker): a worker that lost its lease changes
nothing, and those methods say whether the row was still owned.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from authgate.models.webhook_outbox import WebhookOutbox, WebhookStatus

#: ``pg_advisory_xact_lock`` key of the claim ("authgate" in ASCII).
CLAIM_LOCK = 0x6175746867617465

_UNDELIVERED = (WebhookStatus.pending.value, WebhookStatus.sending.value)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _due(row: Any, now: datetime) -> Any:
    """``pending`` and due, or ``sending`` with a lease that ran out (its worker died)."""
    return or_(
        and_(row.status == WebhookStatus.pending.value, row.next_attempt_at <= now),
        and_(row.status == WebhookStatus.sending.value, row.claimed_until < now),
    )


def _owned(seq: int, worker_id: str) -> Any:
    return and_(
        WebhookOutbox.seq == seq,
        WebhookOutbox.status == WebhookStatus.sending.value,
        WebhookOutbox.claimed_by == worker_id,
    )


class WebhookRepository:
    async def add(self, db: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
        """Insert events (one statement, however many rows) in the caller's transaction."""
        await db.execute(insert(WebhookOutbox).values(list(rows)))

    async def claim(
        self,
        db: AsyncSession,
        *,
        now: datetime,
        endpoint_keys: Collection[str],
        limit: int,
        worker_id: str,
        lease: timedelta,
        serialize: bool,
    ) -> list[WebhookOutbox]:
        """Claim, for ``worker_id`` until ``now + lease``, the first due event of up to
        ``limit`` endpoints among ``endpoint_keys`` that have nothing in flight (module
        docstring), oldest first. ``serialize`` (PostgreSQL) takes the claim's advisory lock.
        The caller owns the (short) transaction. Taking over an abandoned claim counts as an
        attempt."""
        if not endpoint_keys or limit <= 0:
            return []
        if serialize:
            await db.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK)))
        head = aliased(WebhookOutbox, name="head")
        other = aliased(WebhookOutbox, name="other")
        blocked = exists().where(
            other.endpoint_key == head.endpoint_key,
            other.seq != head.seq,
            or_(
                and_(other.seq < head.seq, other.status.in_(_UNDELIVERED)),
                and_(
                    other.status == WebhookStatus.sending.value,
                    other.claimed_until >= now,
                ),
            ),
        )
        candidates = (
            select(head.seq)
            .where(head.endpoint_key.in_(list(endpoint_keys)), _due(head, now), ~blocked)
            .order_by(head.seq)
            .limit(limit)
        )
        claimed = await db.execute(
            update(WebhookOutbox)
            .where(WebhookOutbox.seq.in_(candidates.scalar_subquery()), _due(WebhookOutbox, now))
            .values(
                status=WebhookStatus.sending.value,
                claimed_by=worker_id,
                claimed_until=now + lease,
                attempts=case(
                    (
                        WebhookOutbox.status == WebhookStatus.sending.value,
                        WebhookOutbox.attempts + 1,
                    ),
                    else_=WebhookOutbox.attempts,
                ),
            )
            .returning(WebhookOutbox.seq)
            .execution_options(synchronize_session=False)
        )
        seqs = list(claimed.scalars().all())
        if not seqs:
            return []
        rows = await db.scalars(
            select(WebhookOutbox).where(WebhookOutbox.seq.in_(seqs)).order_by(WebhookOutbox.seq)
        )
        return list(rows.all())

    async def mark_delivered(
        self, db: AsyncSession, seq: int, worker_id: str, *, now: datetime
    ) -> bool:
        """Record a delivered event and wipe its body; False when the claim was lost."""
        result = await db.execute(
            update(WebhookOutbox)
            .where(_owned(seq, worker_id))
            .values(
                status=WebhookStatus.delivered.value,
                delivered_at=now,
                attempts=WebhookOutbox.attempts + 1,
                payload_ciphertext=None,
                claimed_by=None,
                claimed_until=None,
                last_error=None,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(_rowcount(result))

    async def mark_failed(
        self,
        db: AsyncSession,
        seq: int,
        worker_id: str,
        *,
        error: str,
        retry_at: datetime | None,
    ) -> bool:
        """Count a failed attempt: ``pending`` again at ``retry_at``, or ``dead`` when it is
        None. False when the claim was lost."""
        values: dict[str, Any] = {
            "attempts": WebhookOutbox.attempts + 1,
            "last_error": error[:200],
            "claimed_by": None,
            "claimed_until": None,
        }
        if retry_at is None:
            values["status"] = WebhookStatus.dead.value
        else:
            values["status"] = WebhookStatus.pending.value
            values["next_attempt_at"] = retry_at
        result = await db.execute(
            update(WebhookOutbox)
            .where(_owned(seq, worker_id))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(_rowcount(result))

    async def release(self, db: AsyncSession, seqs: Collection[int], worker_id: str) -> None:
        """Hand claimed-but-untried events back: ``pending`` again, with no claim."""
        await db.execute(
            update(WebhookOutbox)
            .where(
                WebhookOutbox.seq.in_(list(seqs)),
                WebhookOutbox.status == WebhookStatus.sending.value,
                WebhookOutbox.claimed_by == worker_id,
            )
            .values(status=WebhookStatus.pending.value, claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        )

    async def oldest_undelivered(
        self, db: AsyncSession, endpoint_keys: Collection[str]
    ) -> dict[str, datetime]:
        """For each endpoint with undelivered events, when the oldest of them was written."""
        if not endpoint_keys:
            return {}
        result = await db.execute(
            select(WebhookOutbox.endpoint_key, func.min(WebhookOutbox.created_at))
            .where(
                WebhookOutbox.endpoint_key.in_(list(endpoint_keys)),
                WebhookOutbox.status.in_(_UNDELIVERED),
            )
            .group_by(WebhookOutbox.endpoint_key)
        )
        return {key: oldest for key, oldest in result if oldest is not None}

    async def prune(self, db: AsyncSession, cutoff: datetime) -> int:
        """Delete events delivered before ``cutoff``; return how many."""
        result = await db.execute(
            delete(WebhookOutbox)
            .where(
                WebhookOutbox.status == WebhookStatus.delivered.value,
                WebhookOutbox.delivered_at < cutoff,
            )
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result)

    async def dead_letters(self, db: AsyncSession, *, limit: int) -> Sequence[WebhookOutbox]:
        """Dead events, newest first."""
        stmt = (
            select(WebhookOutbox)
            .where(WebhookOutbox.status == WebhookStatus.dead.value)
            .order_by(WebhookOutbox.seq.desc())
            .limit(limit)
        )
        return (await db.scalars(stmt)).all()

    async def requeue_dead(
        self, db: AsyncSession, message_id: str, *, now: datetime, expires_at: datetime
    ) -> bool:
        """A dead event that still has its body: ``pending``, due at ``now``, no attempts, a
        new retry window. False when there is no such event."""
        result = await db.execute(
            update(WebhookOutbox)
            .where(
                WebhookOutbox.message_id == message_id,
                WebhookOutbox.status == WebhookStatus.dead.value,
                WebhookOutbox.payload_ciphertext.is_not(None),
            )
            .values(
                status=WebhookStatus.pending.value,
                attempts=0,
                next_attempt_at=now,
                expires_at=expires_at,
                last_error=None,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(_rowcount(result))
