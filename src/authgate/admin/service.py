"""AdminService: what a superuser may do to other accounts, and the audit trail it leaves.

Every change is audited with the admin's id and the *names* of the changed fields, never their
values. An admin cannot lock themselves out through this API (no self-deactivation, self-demotion
or self-deletion: 409); deleting one's own account goes through ``DELETE /users/me``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from authgate.admin.repository import AdminRepository
from authgate.admin.schemas import AdminUserUpdate, Cursor
from authgate.audit import AuditService, AuditType
from authgate.core.errors import Conflict, NotFound
from authgate.core.http import ClientInfo
from authgate.mfa.repository import MfaSummary
from authgate.mfa.service import MfaService
from authgate.models import AuditEvent, User
from authgate.passkeys.service import PasskeyService
from authgate.sessions.service import SessionService
from authgate.users.repository import UserRepository
from authgate.users.service import ProviderTokenRevoker
from authgate.webhooks import WebhookEvent, user_data
from authgate.webhooks.service import WebhookService

#: What a listing pages through (ordered by ``(created_at, id)``).
R = TypeVar("R", User, AuditEvent)
T = TypeVar("T")

USERS_CURSOR = "users"
AUDIT_CURSOR = "audit"


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class UserView:
    """A user as the admin API shows it: the row and its second factor."""

    user: User
    mfa: MfaSummary


def _page(rows: Sequence[R], limit: int, kind: str) -> Page[R]:
    """``rows`` were fetched with ``limit + 1``: the extra row only says that a next page exists."""
    if len(rows) <= limit:
        return Page(rows, None)
    items = rows[:limit]
    last = items[-1]
    return Page(items, Cursor(kind, last.created_at, last.id).encode())


class AdminService:
    def __init__(
        self,
        sessions: SessionService,
        audit: AuditService,
        users: UserRepository,
        mfa: MfaService,
        repository: AdminRepository | None = None,
        provider_tokens: ProviderTokenRevoker | None = None,
        webhooks: WebhookService | None = None,
        passkeys: PasskeyService | None = None,
    ) -> None:
        self._mfa = mfa
        self._webhooks = webhooks or WebhookService.disabled()
        self._passkeys = passkeys
        self._provider_tokens = provider_tokens
        self._sessions = sessions
        self._audit = audit
        self._users = users
        self._repo = repository or AdminRepository()

    # -- reading ---------------------------------------------------------------------------

    async def list_users(
        self, db: AsyncSession, *, q: str | None, limit: int, cursor: str | None
    ) -> Page[UserView]:
        after = Cursor.decode(cursor, USERS_CURSOR) if cursor is not None else None
        query = q.strip() if q else None
        rows = await self._repo.list_users(db, q=query or None, limit=limit + 1, after=after)
        page = _page(rows, limit, USERS_CURSOR)
        return Page(await self._views(db, page.items), page.next_cursor)

    async def user_view(self, db: AsyncSession, user_id: uuid.UUID) -> UserView:
        return (await self._views(db, [await self.get_user(db, user_id)]))[0]

    async def _views(self, db: AsyncSession, users: Sequence[User]) -> list[UserView]:
        """The users with their second factor (one lookup for all of them)."""
        summaries = await self._mfa.summaries(db, [user.id for user in users])
        return [UserView(user, summaries[user.id]) for user in users]

    async def get_user(self, db: AsyncSession, user_id: uuid.UUID) -> User:
        user = await self._users.by_id(db, user_id)
        if user is None:
            raise NotFound("No such user.")
        return user

    async def list_audit_events(
        self,
        db: AsyncSession,
        *,
        user_id: uuid.UUID | None,
        event_type: AuditType | None,
        limit: int,
        cursor: str | None,
    ) -> Page[AuditEvent]:
        before = Cursor.decode(cursor, AUDIT_CURSOR) if cursor is not None else None
        rows = await self._repo.list_audit_events(
            db,
            user_id=user_id,
            event_type=event_type.value if event_type is not None else None,
            limit=limit + 1,
            before=before,
        )
        return _page(rows, limit, AUDIT_CURSOR)

    # -- changing --------------------------------------------------------------------------

    async def update_user(
        self,
        db: AsyncSession,
        admin: User,
        user_id: uuid.UUID,
        update: AdminUserUpdate,
        client: ClientInfo,
    ) -> UserView:
        """Apply the fields sent. Deactivation ends every session of the user at once."""
        user = await self.get_user(db, user_id)
        requested = update.changes()
        if user.id == admin.id:
            if requested.get("is_superuser") is False:
                raise Conflict("You cannot remove your own administrator rights.")
            if requested.get("is_active") is False:
                raise Conflict("You cannot deactivate your own account.")
        changed = [name for name, value in requested.items() if getattr(user, name) != value]
        if not changed:
            return (await self._views(db, [user]))[0]
        await self._users.update(db, user, **{name: requested[name] for name in changed})
        await self._webhooks.emit(
            db, WebhookEvent.user_updated, user_data(user.id, changes=changed)
        )
        if "email_verified" in changed and user.email_verified:
            await self._webhooks.emit(
                db, WebhookEvent.user_verified, user_data(user.id, user.email, reason="admin")
            )
        detail: dict[str, Any] = {"by_admin": True, "admin_id": str(admin.id), "fields": changed}
        if "is_active" in changed and not user.is_active:
            ended = await self._sessions.end_all(db, user, reason="deactivated_by_admin")
            detail["sessions_ended"] = len(ended)
        self._audit.record(
            db, AuditType.user_updated_by_admin, user_id=user.id, client=client, detail=detail
        )
        await db.flush()
        return (await self._views(db, [user]))[0]

    async def revoke_sessions(
        self, db: AsyncSession, admin: User, user_id: uuid.UUID, client: ClientInfo
    ) -> None:
        user = await self.get_user(db, user_id)
        ended = await self._sessions.end_all(db, user, reason="revoked_by_admin")
        self._audit.record(
            db,
            AuditType.session_revoked,
            user_id=user.id,
            client=client,
            detail={"by_admin": True, "admin_id": str(admin.id), "sessions_ended": len(ended)},
        )
        await db.flush()

    async def revoke_all_sessions(self, db: AsyncSession, admin: User, client: ClientInfo) -> int:
        """Emergency revocation: every session of every user, the admin's own included."""
        return await self._sessions.revoke_all(db, client, by="admin", admin_id=admin.id)

    async def reset_mfa(
        self, db: AsyncSession, admin: User, user_id: uuid.UUID, client: ClientInfo
    ) -> None:
        """Remove the user's TOTP and recovery codes (a lost authenticator); audited with the
        admin's id, the owner mailed. Idempotent."""
        user = await self.get_user(db, user_id)
        await self._mfa.reset(db, user, client, by="admin", admin_id=admin.id)
        await db.flush()

    async def remove_passkeys(
        self, db: AsyncSession, admin: User, user_id: uuid.UUID, client: ClientInfo
    ) -> None:
        """Remove every passkey of the user (a lost or compromised device); audited with the
        admin's id and how many went. Idempotent."""
        user = await self.get_user(db, user_id)
        if self._passkeys is None:
            raise RuntimeError("AdminService was built without passkeys")
        removed = await self._passkeys.delete_all(db, user.id)
        self._audit.record(
            db,
            AuditType.passkeys_removed_by_admin,
            user_id=user.id,
            client=client,
            detail={"admin_id": str(admin.id), "passkeys_removed": removed},
        )
        await db.flush()

    async def delete_user(
        self, db: AsyncSession, admin: User, user_id: uuid.UUID, client: ClientInfo
    ) -> None:
        """End the sessions first (so the revocations are published to every process), then
        remove the user and everything tied to it."""
        user = await self.get_user(db, user_id)
        if user.id == admin.id:
            raise Conflict("Delete your own account with DELETE /users/me.")
        await self._sessions.end_all(db, user, reason="deleted_by_admin")
        if self._provider_tokens is not None:
            await self._provider_tokens.revoke_all(db, user.id, client)
        self._audit.record(
            db,
            AuditType.account_deleted,
            user_id=user.id,
            client=client,
            detail={"by_admin": True, "admin_id": str(admin.id)},
        )
        # Flush the pending session/user changes before the bulk DELETE removes the row.
        await db.flush()
        deleted = user_data(user.id, user.email, reason="deleted_by_admin")
        await self._users.delete(db, user)
        await self._webhooks.emit(db, WebhookEvent.user_deleted, deleted)
