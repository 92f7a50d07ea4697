"""Queries over TOTP secrets, recovery codes and MFA sign-in challenges; the rules are the
service's. Every "use once" step is one conditional UPDATE … RETURNING, so of concurrent
callers exactly one wins."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.models import MfaChallenge, RecoveryCode, TotpSecret

# The login hot path asks this of every right password: one indexed lookup, built once.
_ENABLED = select(TotpSecret.id).where(
    TotpSecret.user_id == bindparam("user_id"), TotpSecret.confirmed_at.is_not(None)
)


@dataclass(frozen=True, slots=True)
class ClaimedChallenge:
    """A live challenge one attempt of which was just counted."""

    id: uuid.UUID
    user_id: uuid.UUID
    method: str


@dataclass(frozen=True, slots=True)
class MfaSummary:
    totp: bool
    recovery_codes_left: int
    #: Registered passkeys (filled in by ``MfaService.summaries``).
    passkeys: int = 0


class MfaRepository:
    # -- TOTP secrets -----------------------------------------------------------------------

    async def totp(self, db: AsyncSession, user_id: uuid.UUID) -> TotpSecret | None:
        """The user's secret row, pending or confirmed."""
        result = await db.execute(select(TotpSecret).where(TotpSecret.user_id == user_id))
        return result.scalar_one_or_none()

    async def enabled(self, db: AsyncSession, user_id: uuid.UUID) -> bool:
        """Whether the user has confirmed TOTP (the second factor is on)."""
        conn = await db.connection()
        return (await conn.execute(_ENABLED, {"user_id": user_id})).first() is not None

    async def put_pending(
        self,
        db: AsyncSession,
        *,
        user_id: uuid.UUID,
        secret_ct: bytes,
        key_id: str,
        now: datetime,
    ) -> bool:
        """Replace the user's pending enrollment (if any) by a new one; False when a row of the
        user is still there (TOTP on, or a concurrent enrollment won the unique index)."""
        await db.execute(
            delete(TotpSecret).where(
                TotpSecret.user_id == user_id, TotpSecret.confirmed_at.is_(None)
            )
        )
        try:
            async with db.begin_nested():
                db.add(
                    TotpSecret(user_id=user_id, secret_ct=secret_ct, key_id=key_id, created_at=now)
                )
                await db.flush()
        except IntegrityError:
            return False
        return True

    async def confirm(self, db: AsyncSession, totp_id: uuid.UUID, step: int, now: datetime) -> bool:
        """Turn a pending enrollment on, its confirming code's step spent; False when it is no
        longer pending (confirmed or replaced meanwhile)."""
        result = await db.execute(
            update(TotpSecret)
            .where(TotpSecret.id == totp_id, TotpSecret.confirmed_at.is_(None))
            .values(confirmed_at=now, last_used_step=step)
            .returning(TotpSecret.id)
            .execution_options(synchronize_session=False)
        )
        return result.first() is not None

    async def use_step(self, db: AsyncSession, user_id: uuid.UUID, step: int) -> bool:
        """Spend the time-step ``step`` of the user's confirmed secret: False when a code of
        this step or a later one was accepted before (a replay, or a concurrent use)."""
        result = await db.execute(
            update(TotpSecret)
            .where(
                TotpSecret.user_id == user_id,
                TotpSecret.confirmed_at.is_not(None),
                or_(TotpSecret.last_used_step.is_(None), TotpSecret.last_used_step < step),
            )
            .values(last_used_step=step)
            .returning(TotpSecret.id)
            .execution_options(synchronize_session=False)
        )
        return result.first() is not None

    async def delete_totp(self, db: AsyncSession, user_id: uuid.UUID) -> bool:
        """Remove the user's secret, pending or confirmed; True when TOTP was on."""
        result = await db.execute(
            delete(TotpSecret)
            .where(TotpSecret.user_id == user_id)
            .returning(TotpSecret.confirmed_at)
            .execution_options(synchronize_session=False)
        )
        return any(confirmed is not None for (confirmed,) in result)

    async def all_totp(self, db: AsyncSession) -> Sequence[TotpSecret]:
        return (await db.execute(select(TotpSecret))).scalars().all()

    async def replace_ciphertext(
        self, db: AsyncSession, totp_id: uuid.UUID, old: bytes, new: bytes, key_id: str
    ) -> bool:
        """Swap a secret's ciphertext, unless the row changed meanwhile (re-encryption)."""
        result = await db.execute(
            update(TotpSecret)
            .where(TotpSecret.id == totp_id, TotpSecret.secret_ct == old)
            .values(secret_ct=new, key_id=key_id)
            .returning(TotpSecret.id)
            .execution_options(synchronize_session=False)
        )
        return result.first() is not None

    # -- recovery codes ---------------------------------------------------------------------

    async def replace_recovery_codes(
        self, db: AsyncSession, user_id: uuid.UUID, code_hashes: Iterable[str], now: datetime
    ) -> None:
        """The user's recovery codes become exactly these (the old set stops working)."""
        await self.delete_recovery_codes(db, user_id)
        rows = [
            {"id": uuid.uuid4(), "user_id": user_id, "code_hash": h, "created_at": now}
            for h in code_hashes
        ]
        await db.execute(insert(RecoveryCode), rows)

    async def delete_recovery_codes(self, db: AsyncSession, user_id: uuid.UUID) -> None:
        await db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))

    async def use_recovery_code(
        self, db: AsyncSession, user_id: uuid.UUID, code_hash: str, now: datetime
    ) -> bool:
        """Spend an unused recovery code of the user; False when there is none such."""
        result = await db.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user_id,
                RecoveryCode.code_hash == code_hash,
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=now)
            .returning(RecoveryCode.id)
            .execution_options(synchronize_session=False)
        )
        return result.first() is not None

    async def summaries(
        self, db: AsyncSession, user_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, MfaSummary]:
        """Whether TOTP is on and how many recovery codes are left (0 while it is off), for
        each user (two queries whatever the number of users)."""
        if not user_ids:
            return {}
        enabled = set(
            (
                await db.execute(
                    select(TotpSecret.user_id).where(
                        TotpSecret.user_id.in_(user_ids), TotpSecret.confirmed_at.is_not(None)
                    )
                )
            ).scalars()
        )
        counts = await db.execute(
            select(RecoveryCode.user_id, func.count())
            .where(RecoveryCode.user_id.in_(user_ids), RecoveryCode.used_at.is_(None))
            .group_by(RecoveryCode.user_id)
        )
        left = {user_id: int(count) for user_id, count in counts}
        summaries: dict[uuid.UUID, MfaSummary] = {}
        for user_id in user_ids:
            on = user_id in enabled
            summaries[user_id] = MfaSummary(on, left.get(user_id, 0) if on else 0)
        return summaries

    # -- sign-in challenges -----------------------------------------------------------------

    def add_challenge(
        self,
        db: AsyncSession,
        *,
        user_id: uuid.UUID,
        token_hash: str,
        method: str,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        db.add(
            MfaChallenge(
                user_id=user_id,
                token_hash=token_hash,
                method=method,
                created_at=now,
                expires_at=expires_at,
            )
        )

    async def claim_attempt(
        self, db: AsyncSession, token_hash: str, now: datetime, max_attempts: int
    ) -> ClaimedChallenge | None:
        """Count one attempt of an unused, unexpired challenge that has attempts left; None
        when there is no such challenge. The row stays locked for the rest of the transaction
        (PostgreSQL; SQLite has one writer), so concurrent attempts are counted one by one."""
        result = await db.execute(
            update(MfaChallenge)
            .where(
                MfaChallenge.token_hash == token_hash,
                MfaChallenge.used_at.is_(None),
                MfaChallenge.expires_at > now,
                MfaChallenge.attempts < max_attempts,
            )
            .values(attempts=MfaChallenge.attempts + 1)
            .returning(MfaChallenge.id, MfaChallenge.user_id, MfaChallenge.method)
            .execution_options(synchronize_session=False)
        )
        row = result.first()
        return None if row is None else ClaimedChallenge(row[0], row[1], row[2])

    async def count_failed_attempt(self, db: AsyncSession, challenge_id: uuid.UUID) -> int | None:
        """Count a wrong code of an unused challenge (the attempts so far), committed by the
        caller's security write although the request fails."""
        result = await db.execute(
            update(MfaChallenge)
            .where(MfaChallenge.id == challenge_id, MfaChallenge.used_at.is_(None))
            .values(attempts=MfaChallenge.attempts + 1)
            .returning(MfaChallenge.attempts)
            .execution_options(synchronize_session=False)
        )
        row = result.first()
        return None if row is None else int(row[0])

    async def spend_challenge(
        self, db: AsyncSession, challenge_id: uuid.UUID, now: datetime
    ) -> bool:
        result = await db.execute(
            update(MfaChallenge)
            .where(MfaChallenge.id == challenge_id, MfaChallenge.used_at.is_(None))
            .values(used_at=now)
            .returning(MfaChallenge.id)
            .execution_options(synchronize_session=False)
        )
        return result.first() is not None

    async def purge_challenges(self, db: AsyncSession, now: datetime) -> int:
        """Delete the challenges that can never be used again (expired or used)."""
        result = await db.execute(
            delete(MfaChallenge).where(
                (MfaChallenge.expires_at < now) | MfaChallenge.used_at.is_not(None)
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)
