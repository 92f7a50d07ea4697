"""Queries over users, and the one way a user row is made or changed.

Every change to a user goes through this class (``create``, ``update``, ``change_email``,
``delete``): the methods that change what an access check or ``GET /users/me`` reads call the
``on_changed`` hook, which drops the user's cached principal snapshots in this process
(``sessions.access.PrincipalCache.forget_user``). Call sites never invalidate by hand.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TypedDict, Unpack

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from authgate.models import EmailOutbox, OutboxStatus, User
from authgate.users.emails import email_key

__all__ = ["UserChanges", "UserRepository", "email_key"]  # email_key re-exported for importers


_BY_EMAIL_KEY = select(User).where(User.email_key == bindparam("email_key"))
_SET_LAST_LOGIN = (
    update(User).where(User.id == bindparam("user_id")).values(last_login_at=bindparam("at"))
)


class UserChanges(TypedDict, total=False):
    """The columns ``UserRepository.update`` may set (the address has ``change_email``)."""

    name: str | None
    password_hash: str | None
    password_changed_at: datetime | None
    email_verified: bool
    is_active: bool
    is_superuser: bool
    tokens_valid_after: datetime
    roles: list[str]


class UserRepository:
    def __init__(self, on_changed: Callable[[uuid.UUID], None] | None = None) -> None:
        #: Called with the user's id after every change an access check could see.
        self._changed = on_changed or (lambda _user_id: None)

    async def by_email(self, db: AsyncSession, normalized_email: str) -> User | None:
        result = await db.execute(_BY_EMAIL_KEY, {"email_key": email_key(normalized_email)})
        return result.scalar_one_or_none()

    async def by_id(self, db: AsyncSession, user_id: uuid.UUID) -> User | None:
        return await db.get(User, user_id)

    async def lock(self, db: AsyncSession, user_id: uuid.UUID) -> None:
        """Hold the user's row until the end of the transaction (``SELECT … FOR UPDATE`` on
        PostgreSQL; SQLite has one writer anyway), serialising changes of one user."""
        await db.execute(select(User.id).where(User.id == user_id).with_for_update())

    async def create(
        self,
        db: AsyncSession,
        *,
        email: str,
        name: str | None = None,
        password_hash: str | None = None,
        email_verified: bool = False,
    ) -> User | None:
        """Insert a user with a normalised address (``users.emails.normalize_email``); None
        when the address is taken, also by a concurrent insert that committed first (the unique
        index decides, in a savepoint, so the caller's transaction goes on)."""
        user = User(
            email=email,
            email_key=email_key(email),
            name=name,
            password_hash=password_hash,
            email_verified=email_verified,
        )
        try:
            async with db.begin_nested():
                db.add(user)
                await db.flush()
        except IntegrityError:
            return None
        return user

    async def update(self, db: AsyncSession, user: User, **changes: Unpack[UserChanges]) -> None:
        """Set the given columns and flush them (the row's ``updated_at`` follows)."""
        if not changes:
            return
        for column, value in changes.items():
            setattr(user, column, value)
        await db.flush()
        self._changed(user.id)

    async def change_email(self, db: AsyncSession, user: User, new_email: str) -> bool:
        """Move the account to a (normalised) new address, now verified; False when the address
        is taken (the unique index sees concurrent changes the caller's check could not; a
        savepoint undoes the change, leaving ``user`` expired, and keeps the rest of the
        transaction)."""
        try:
            async with db.begin_nested():
                user.email = new_email
                user.email_key = email_key(new_email)
                user.email_verified = True
                await db.flush()
        except IntegrityError:
            return False
        self._changed(user.id)
        return True

    async def set_last_login(self, db: AsyncSession, user: User, at: datetime) -> None:
        """One prebuilt UPDATE rather than a unit-of-work flush (the login hot path); the loaded
        object gets the same value without being marked changed. No access check reads the
        column, so no cached snapshot is dropped."""
        conn = await db.connection()
        await conn.execute(_SET_LAST_LOGIN, {"user_id": user.id, "at": at})
        set_committed_value(user, "last_login_at", at)

    async def delete(self, db: AsyncSession, user: User) -> None:
        """Remove the user; sessions, tokens and identities go by ON DELETE CASCADE, pending
        mail addressed to them is dropped here (sent rows are pruned by the dispatcher)."""
        await db.execute(
            delete(EmailOutbox).where(
                EmailOutbox.user_id == user.id, EmailOutbox.status == OutboxStatus.pending.value
            )
        )
        await db.execute(delete(User).where(User.id == user.id))
        self._changed(user.id)
