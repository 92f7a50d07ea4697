"""Queries over passkeys and WebAuthn challenges; the rules are the service's. Spending a
challenge is one conditional UPDATE … RETURNING, so of concurrent answers exactly one wins."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.models import Passkey, WebAuthnChallenge

REGISTER = "register"
AUTHENTICATE = "authenticate"


@dataclass(frozen=True, slots=True)
class SpentChallenge:
    id: uuid.UUID
    challenge: bytes


@dataclass(frozen=True, slots=True)
class NewPasskey:
    user_id: uuid.UUID
    credential_id: bytes
    public_key: bytes
    sign_count: int
    aaguid: str
    name: str
    transports: list[str]
    backup_eligible: bool
    backed_up: bool


class PasskeyRepository:
    # -- passkeys ---------------------------------------------------------------------------

    async def list_for(self, db: AsyncSession, user_id: uuid.UUID) -> Sequence[Passkey]:
        result = await db.execute(
            select(Passkey)
            .where(Passkey.user_id == user_id)
            .order_by(Passkey.created_at, Passkey.id)
        )
        return result.scalars().all()

    async def get(
        self, db: AsyncSession, user_id: uuid.UUID, passkey_id: uuid.UUID
    ) -> Passkey | None:
        """The user's passkey ``passkey_id``; None for an unknown one or another user's."""
        result = await db.execute(
            select(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user_id)
        )
        return result.scalar_one_or_none()

    async def by_credential_id(self, db: AsyncSession, credential_id: bytes) -> Passkey | None:
        result = await db.execute(select(Passkey).where(Passkey.credential_id == credential_id))
        return result.scalar_one_or_none()

    async def create(self, db: AsyncSession, new: NewPasskey, now: datetime) -> Passkey | None:
        """The new passkey; None when its credential id is registered already (to anyone)."""
        passkey = Passkey(
            user_id=new.user_id,
            credential_id=new.credential_id,
            public_key=new.public_key,
            sign_count=new.sign_count,
            aaguid=new.aaguid,
            name=new.name,
            transports=new.transports,
            backup_eligible=new.backup_eligible,
            backed_up=new.backed_up,
            created_at=now,
        )
        try:
            async with db.begin_nested():
                db.add(passkey)
                await db.flush()
        except IntegrityError:
            return None
        return passkey

    async def rename(self, db: AsyncSession, passkey: Passkey, name: str) -> None:
        passkey.name = name
        await db.flush()

    async def delete(self, db: AsyncSession, user_id: uuid.UUID, passkey_id: uuid.UUID) -> bool:
        result = await db.execute(
            delete(Passkey)
            .where(Passkey.id == passkey_id, Passkey.user_id == user_id)
            .returning(Passkey.id)
            .execution_options(synchronize_session=False)
        )
        return result.first() is not None

    async def delete_all(self, db: AsyncSession, user_id: uuid.UUID) -> int:
        result = await db.execute(
            delete(Passkey)
            .where(Passkey.user_id == user_id)
            .returning(Passkey.id)
            .execution_options(synchronize_session=False)
        )
        return len(result.all())

    async def record_use(
        self,
        db: AsyncSession,
        passkey_id: uuid.UUID,
        old_count: int,
        new_count: int,
        backed_up: bool,
        now: datetime,
    ) -> bool:
        """Store a sign-in's counter and time, unless another sign-in with the credential
        moved the counter meanwhile (False: the two raced, refuse the later one)."""
        result = await db.execute(
            update(Passkey)
            .where(Passkey.id == passkey_id, Passkey.sign_count == old_count)
            .values(sign_count=new_count, backed_up=backed_up, last_used_at=now)
            .returning(Passkey.id)
            .execution_options(synchronize_session=False)
        )
        return result.first() is not None

    async def counts(self, db: AsyncSession, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        """How many passkeys each user has (one query whatever the number of users)."""
        if not user_ids:
            return {}
        result = await db.execute(
            select(Passkey.user_id, func.count())
            .where(Passkey.user_id.in_(user_ids))
            .group_by(Passkey.user_id)
        )
        found = {user_id: int(count) for user_id, count in result}
        return {user_id: found.get(user_id, 0) for user_id in user_ids}

    # -- challenges -------------------------------------------------------------------------

    def add_challenge(
        self,
        db: AsyncSession,
        *,
        purpose: str,
        challenge: bytes,
        now: datetime,
        expires_at: datetime,
        user_id: uuid.UUID | None = None,
        token_hash: str | None = None,
    ) -> None:
        db.add(
            WebAuthnChallenge(
                purpose=purpose,
                challenge=challenge,
                user_id=user_id,
                token_hash=token_hash,
                created_at=now,
                expires_at=expires_at,
            )
        )

    async def spend_sign_in_challenge(
        self, db: AsyncSession, token_hash: str, now: datetime
    ) -> SpentChallenge | None:
        """Spend the live sign-in challenge of a flow token; None when there is none such."""
        result = await db.execute(
            update(WebAuthnChallenge)
            .where(
                WebAuthnChallenge.token_hash == token_hash,
                WebAuthnChallenge.purpose == AUTHENTICATE,
                WebAuthnChallenge.used_at.is_(None),
                WebAuthnChallenge.expires_at > now,
            )
            .values(used_at=now)
            .returning(WebAuthnChallenge.id, WebAuthnChallenge.challenge)
            .execution_options(synchronize_session=False)
        )
        row = result.first()
        return None if row is None else SpentChallenge(row[0], row[1])

    async def spend_registration_challenge(
        self, db: AsyncSession, user_id: uuid.UUID, now: datetime
    ) -> SpentChallenge | None:
        """Spend the user's newest registration challenge if it is still live; None when the
        newest one is used or expired (an older one never counts)."""
        newest = (
            select(WebAuthnChallenge.id)
            .where(
                WebAuthnChallenge.user_id == user_id,
                WebAuthnChallenge.purpose == REGISTER,
            )
            .order_by(WebAuthnChallenge.created_at.desc(), WebAuthnChallenge.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        result = await db.execute(
            update(WebAuthnChallenge)
            .where(
                WebAuthnChallenge.id == newest,
                WebAuthnChallenge.used_at.is_(None),
                WebAuthnChallenge.expires_at > now,
            )
            .values(used_at=now)
            .returning(WebAuthnChallenge.id, WebAuthnChallenge.challenge)
            .execution_options(synchronize_session=False)
        )
        row = result.first()
        return None if row is None else SpentChallenge(row[0], row[1])

    async def burn_challenge(
        self, db: AsyncSession, challenge_id: uuid.UUID, now: datetime
    ) -> None:
        """Mark a challenge used (the security write of a failed answer)."""
        await db.execute(
            update(WebAuthnChallenge)
            .where(WebAuthnChallenge.id == challenge_id, WebAuthnChallenge.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )

    async def purge_challenges(self, db: AsyncSession, now: datetime) -> int:
        """Delete the challenges that can never be answered again (expired or used)."""
        result = await db.execute(
            delete(WebAuthnChallenge).where(
                (WebAuthnChallenge.expires_at < now) | WebAuthnChallenge.used_at.is_not(None)
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)
