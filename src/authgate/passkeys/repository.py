"""Queries over passkeys and WebAuthn challenges; the rules are the service's. Spending a
challenge is one conditional UPDATE … RETURNING, so of concurrent answers exactly one wins.

A sign-in's statements are built once (no per-request construction or cache-key work) and run
as Core on the unit of work's connection, except the one that loads the user: on PostgreSQL
the challenge is spent and the passkey and its user are found in one round trip."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.core.db import UTCDateTime
from authgate.models import Passkey, User, WebAuthnChallenge

REGISTER = "register"
AUTHENTICATE = "authenticate"

# Bind names never equal a column name: an UPDATE would take such a parameter as a SET clause.
_NOW = bindparam("b_now", type_=UTCDateTime())
_SPEND_SIGN_IN = (
    update(WebAuthnChallenge)
    .where(
        WebAuthnChallenge.token_hash == bindparam("b_token_hash"),
        WebAuthnChallenge.purpose == AUTHENTICATE,
        WebAuthnChallenge.used_at.is_(None),
        WebAuthnChallenge.expires_at > _NOW,
    )
    .values(used_at=_NOW)
    .returning(WebAuthnChallenge.id, WebAuthnChallenge.challenge)
)
#: What a sign-in needs of the passkey: the ORM object is never loaded (nothing reads it back).
_KEY_COLUMNS = (Passkey.id, Passkey.user_id, Passkey.public_key, Passkey.sign_count)
_CREDENTIAL_ID = bindparam("b_credential_id", type_=Passkey.__table__.c.credential_id.type)


def _spend_and_find_postgresql() -> Select[Any]:
    """Spend the challenge and find the credential's passkey and user, as one statement: the
    UPDATE is a data-modifying CTE, the passkey and the user are outer-joined to the row it
    returns (no row: nothing was spent; NULL passkey columns: no such credential)."""
    spent = _SPEND_SIGN_IN.cte("spent")
    return (
        select(spent.c.id, spent.c.challenge, *_KEY_COLUMNS, User)
        .select_from(spent)
        .outerjoin(Passkey, Passkey.credential_id == _CREDENTIAL_ID)
        .outerjoin(User, User.id == Passkey.user_id)
    )


_SPEND_AND_FIND_PG = _spend_and_find_postgresql()
# SQLite has no data-modifying CTEs: the spend, then the lookup.
_FIND_KEY = (
    select(*_KEY_COLUMNS, User)
    .outerjoin(User, User.id == Passkey.user_id)
    .where(Passkey.credential_id == _CREDENTIAL_ID)
)
_RECORD_USE = (
    update(Passkey)
    .where(Passkey.id == bindparam("b_id"), Passkey.sign_count == bindparam("b_old_count"))
    .values(
        sign_count=bindparam("b_new_count"),
        backed_up=bindparam("b_backed_up"),
        last_used_at=_NOW,
    )
    .returning(Passkey.id)
)


@dataclass(frozen=True, slots=True)
class SpentChallenge:
    id: uuid.UUID
    challenge: bytes


@dataclass(frozen=True, slots=True)
class PasskeyKey:
    """What a sign-in reads of a passkey: the key that checks the assertion and its counter."""

    id: uuid.UUID
    user_id: uuid.UUID
    public_key: bytes
    sign_count: int


@dataclass(frozen=True, slots=True)
class SignInAttempt:
    """A spent sign-in challenge and what the answer's credential id found."""

    challenge_id: uuid.UUID
    challenge: bytes
    #: None: no passkey has the credential id (or the answer named none).
    passkey: PasskeyKey | None
    #: The passkey's user (None when there is no passkey).
    user: User | None


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
        conn = await db.connection()
        params = {
            "b_id": passkey_id,
            "b_old_count": old_count,
            "b_new_count": new_count,
            "b_backed_up": backed_up,
            "b_now": now,
        }
        return (await conn.execute(_RECORD_USE, params)).first() is not None

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

    async def spend_sign_in(
        self, db: AsyncSession, token_hash: str, credential_id: bytes | None, now: datetime
    ) -> SignInAttempt | None:
        """Spend the live sign-in challenge of a flow token and find the passkey of
        ``credential_id`` (None: look for none) with its user; None when no live challenge has
        that token. One round trip on PostgreSQL, two on SQLite; the user is loaded as the
        ORM object the session's opening goes on with."""
        params = {"b_token_hash": token_hash, "b_now": now, "b_credential_id": credential_id}
        conn = await db.connection()
        if conn.dialect.name == "postgresql":
            row = (await db.execute(_SPEND_AND_FIND_PG, params)).first()
            if row is None:
                return None
            challenge_id, challenge, *found = row
        else:
            spent = (await conn.execute(_SPEND_SIGN_IN, params)).first()
            if spent is None:
                return None
            challenge_id, challenge = spent
            match = None
            if credential_id is not None:
                match = (await db.execute(_FIND_KEY, params)).first()
            found = [None] * 5 if match is None else list(match)
        passkey_id, user_id, public_key, sign_count, user = found
        passkey = None
        if passkey_id is not None:
            passkey = PasskeyKey(passkey_id, user_id, public_key, sign_count)
        return SignInAttempt(challenge_id, challenge, passkey, user)

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
