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
  after the lock is granted, so it sees every claim committed before. Inserting events never
  waits on that lock; results the dispatcher records in a claim's transaction (before the lock
  is taken) commit with that claim.

With each endpoint's head the claim takes the events that follow it, up to ``batch`` in all, as
long as each is due (a run of due events from the head, in ``seq`` order): the dispatcher sends
them one after the other, so a backlog costs one claim and one record per batch, not per event.
The statement is built once per ``(endpoints, limit, batch)`` with bound parameters (building
it cost more CPU than running it).

Every write that records the result of an attempt is conditional on the claim still being held
(``status = sending`` and ``claimed_by`` this worker): a worker that lost its lease changes
nothing, and those methods say whether the row was still owned.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Update

from authgate.models.webhook_outbox import WebhookOutbox, WebhookStatus

#: ``pg_advisory_xact_lock`` key of the claim ("authgate" in ASCII).
CLAIM_LOCK = 0x6175746867617465

_UNDELIVERED = (WebhookStatus.pending.value, WebhookStatus.sending.value)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _due(row: Any, now: Any) -> Any:
    """``pending`` and due, or ``sending`` with a lease that ran out (its worker died)."""
    return or_(
        and_(row.status == WebhookStatus.pending.value, row.next_attempt_at <= now),
        and_(row.status == WebhookStatus.sending.value, row.claimed_until < now),
    )


def _still_due(now: Any) -> Any:
    """``_due`` for the claim's UPDATE to check again on the row it changes, written as a CASE
    so that no index serves it: the planner then looks the claimed rows up by their key
    (SQLite would otherwise scan every due row of a long backlog through the status index)."""
    return case(
        (
            WebhookOutbox.status == WebhookStatus.pending.value,
            WebhookOutbox.next_attempt_at <= now,
        ),
        (
            WebhookOutbox.status == WebhookStatus.sending.value,
            WebhookOutbox.claimed_until < now,
        ),
        else_=false(),
    )


def _owned(seqs: Collection[int], worker_id: str) -> Any:
    return and_(
        WebhookOutbox.seq.in_(list(seqs)),
        WebhookOutbox.status == WebhookStatus.sending.value,
        WebhookOutbox.claimed_by == worker_id,
    )


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    """A claimed event, as the dispatcher needs it: a plain row (no ORM identity to build)."""

    seq: int
    message_id: str
    endpoint_key: str
    event_type: str
    payload_ciphertext: bytes | None
    #: Attempts before this claim's.
    attempts: int
    expires_at: datetime
    claimed_until: datetime | None


_CLAIMED = [getattr(WebhookOutbox, name) for name in ClaimedEvent.__slots__]

#: The claim's bound parameters (names distinct from the columns the UPDATE sets).
_NOW = bindparam("claim_now", type_=WebhookOutbox.__table__.c.next_attempt_at.type)
_UNTIL = bindparam("claim_until", type_=WebhookOutbox.__table__.c.claimed_until.type)
_WORKER = bindparam("claim_worker", type_=WebhookOutbox.__table__.c.claimed_by.type)


def _claim_statement(endpoint_keys: tuple[str, ...], limit: int, batch: int) -> Update:
    """``UPDATE … RETURNING`` claiming the heads of up to ``limit`` endpoints (module docstring)
    and the due events that follow each, up to ``batch`` per endpoint."""
    head = aliased(WebhookOutbox, name="head")
    other = aliased(WebhookOutbox, name="other")
    # Two probes of the (endpoint_key, status, seq) index: an earlier undelivered event of
    # the endpoint, or another of its events in flight under a live lease.
    earlier = exists().where(
        other.endpoint_key == head.endpoint_key,
        other.status.in_(_UNDELIVERED),
        other.seq < head.seq,
    )
    in_flight = exists().where(
        other.endpoint_key == head.endpoint_key,
        other.status == WebhookStatus.sending.value,
        other.seq != head.seq,
        other.claimed_until >= _NOW,
    )
    # Only the first pending and the first sending event of each endpoint can be its head:
    # one index probe each, however long a failing endpoint's backlog has grown.
    heads = (
        select(head.seq)
        .where(head.seq.in_(_firsts(WebhookOutbox.seq, endpoint_keys)), _due(head, _NOW))
        .where(~earlier, ~in_flight)
        .order_by(head.seq)
        .limit(limit)
    )
    claimed_keys = select(head.endpoint_key).where(head.seq.in_(heads.scalar_subquery()))
    # The first ``batch`` pending and ``batch`` sending events of each endpoint (index probes
    # with a limit) hold its first ``batch`` undelivered ones; number them per endpoint and
    # count the events not due up to each: the run to claim is numbered <= batch, none late.
    firsts = [
        select(WebhookOutbox.seq)
        .where(WebhookOutbox.endpoint_key == key, WebhookOutbox.status == status)
        .order_by(WebhookOutbox.seq)
        .limit(batch)
        .subquery()
        for key in endpoint_keys
        for status in _UNDELIVERED
    ]
    window = union_all(*(select(first.c.seq) for first in firsts)).subquery("window")
    row = aliased(WebhookOutbox, name="row")
    ranked = (
        select(
            row.seq,
            row.endpoint_key,
            func.row_number()
            .over(partition_by=row.endpoint_key, order_by=row.seq)
            .label("position"),
            func.sum(case((_due(row, _NOW), 0), else_=1))
            .over(partition_by=row.endpoint_key, order_by=row.seq)
            .label("late"),
        )
        .join_from(window, row, row.seq == window.c.seq)
        .subquery("ranked")
    )
    run = select(ranked.c.seq).where(
        ranked.c.endpoint_key.in_(claimed_keys),
        ranked.c.position <= batch,
        ranked.c.late == 0,
    )
    return (
        update(WebhookOutbox)
        .where(WebhookOutbox.seq.in_(run.scalar_subquery()), _still_due(_NOW))
        .values(
            status=WebhookStatus.sending.value,
            claimed_by=_WORKER,
            claimed_until=_UNTIL,
            attempts=case(
                (
                    WebhookOutbox.status == WebhookStatus.sending.value,
                    WebhookOutbox.attempts + 1,
                ),
                else_=WebhookOutbox.attempts,
            ),
        )
        .returning(*_CLAIMED)
        .execution_options(synchronize_session=False)
    )


def _firsts(column: Any, endpoint_keys: Collection[str]) -> list[Any]:
    """For each endpoint and each undelivered status, ``column`` of its first event in ``seq``
    order, as scalar subqueries (NULL when there is none): ``(key1, pending), (key1, sending),
    (key2, pending), …``. Each is one probe of ``ix_webhook_outbox_endpoint_status_seq``."""
    return [
        select(column)
        .where(WebhookOutbox.endpoint_key == key, WebhookOutbox.status == status)
        .order_by(WebhookOutbox.seq)
        .limit(1)
        .scalar_subquery()
        for key in endpoint_keys
        for status in _UNDELIVERED
    ]


class WebhookRepository:
    def __init__(self) -> None:
        self._claims: dict[tuple[tuple[str, ...], int, int], Update] = {}

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
        batch: int = 1,
    ) -> list[ClaimedEvent]:
        """Claim, for ``worker_id`` until ``now + lease``, the first due event of up to
        ``limit`` endpoints among ``endpoint_keys`` that have nothing in flight (module
        docstring) and the due events that follow it, up to ``batch`` per endpoint; in ``seq``
        order. ``serialize`` (PostgreSQL) takes the claim's advisory lock. The caller owns the
        (short) transaction. Taking over an abandoned claim counts as an attempt. Run on the
        session's connection: the ORM's handling of an UPDATE (and of its rows) is skipped,
        as it is in ``record``."""
        if not endpoint_keys or limit <= 0:
            return []
        if serialize:
            await db.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK)))
        shape = (tuple(endpoint_keys), limit, max(batch, 1))
        statement = self._claims.get(shape)
        if statement is None:
            statement = self._claims[shape] = _claim_statement(*shape)
        params = {"claim_now": now, "claim_until": now + lease, "claim_worker": worker_id}
        result = await (await db.connection()).execute(statement, params)
        return sorted((ClaimedEvent(*row) for row in result), key=lambda event: event.seq)

    async def record(
        self,
        db: AsyncSession,
        worker_id: str,
        *,
        now: datetime,
        delivered: Collection[int] = (),
        failed: Collection[tuple[int, str, datetime | None]] = (),
        untried: Collection[int] = (),
    ) -> int:
        """Record what became of claimed events: ``delivered`` ones (one statement, bodies
        wiped), ``failed`` attempts ``(seq, error, retry_at)`` (``pending`` again at
        ``retry_at``, or ``dead`` when it is None; a statement each) and ``untried`` ones handed
        back (one statement). Only events
        this worker still holds change; returns how many of the delivered ones it held."""
        owned = 0
        if delivered:
            result = await (await db.connection()).execute(
                update(WebhookOutbox)
                .where(_owned(delivered, worker_id))
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
            owned = _rowcount(result)
        for seq, error, retry_at in failed:
            await self.mark_failed(db, seq, worker_id, error=error, retry_at=retry_at)
        if untried:
            await self.release(db, untried, worker_id)
        return owned

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
        result = await (await db.connection()).execute(
            update(WebhookOutbox)
            .where(_owned((seq,), worker_id))
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
        """For each endpoint with undelivered events, when the first of them (in ``seq``
        order) was written; a few index probes per endpoint, whatever the backlog."""
        if not endpoint_keys:
            return {}
        keys = list(endpoint_keys)
        row = (await db.execute(select(*_firsts(WebhookOutbox.created_at, keys)))).one()
        oldest: dict[str, datetime] = {}
        for index, key in enumerate(keys):
            found = [at for at in row[2 * index : 2 * index + 2] if at is not None]
            if found:
                oldest[key] = min(found)
        return oldest

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
