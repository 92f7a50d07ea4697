"""HTTP for the admin API: superusers only (others 403, no token 401)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from authgate.admin.schemas import (
    MAX_CURSOR_LENGTH,
    AdminUser,
    AdminUserPage,
    AdminUserUpdate,
    AuditEventOut,
    AuditEventPage,
)
from authgate.admin.service import AdminService
from authgate.audit import AuditType
from authgate.core.text import OneLine
from authgate.deps import ClientDep, DbDep, RuntimeDep, Superuser
from authgate.problems import error_responses

router = APIRouter(prefix="/admin", tags=["admin"])


async def get_admin_service(runtime: RuntimeDep) -> AdminService:
    return AdminService(
        runtime.sessions,
        runtime.audit,
        runtime.users_repo,
        runtime.mfa,
        provider_tokens=runtime.provider_tokens,
        webhooks=runtime.webhooks,
        passkeys=runtime.passkeys,
    )


AdminServiceDep = Annotated[AdminService, Depends(get_admin_service)]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
CursorParam = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page."),
]


@router.get(
    "/users",
    status_code=status.HTTP_200_OK,
    response_model=AdminUserPage,
    responses=error_responses(401, 403, 422),
)
async def list_users(
    _admin: Superuser,
    db: DbDep,
    service: AdminServiceDep,
    q: Annotated[
        OneLine | None,
        Query(max_length=320, description="Case-insensitive substring of the email or name."),
    ] = None,
    limit: Limit = 50,
    cursor: CursorParam = None,
) -> AdminUserPage:
    page = await service.list_users(db, q=q, limit=limit, cursor=cursor)
    return AdminUserPage(
        items=[AdminUser.of(view.user, view.mfa) for view in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/users/{user_id}",
    status_code=status.HTTP_200_OK,
    response_model=AdminUser,
    responses=error_responses(401, 403, 404, 422),
)
async def get_user(
    user_id: uuid.UUID, _admin: Superuser, db: DbDep, service: AdminServiceDep
) -> AdminUser:
    view = await service.user_view(db, user_id)
    return AdminUser.of(view.user, view.mfa)


@router.patch(
    "/users/{user_id}",
    status_code=status.HTTP_200_OK,
    response_model=AdminUser,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def update_user(
    user_id: uuid.UUID,
    body: AdminUserUpdate,
    admin: Superuser,
    db: DbDep,
    service: AdminServiceDep,
    client: ClientDep,
) -> AdminUser:
    view = await service.update_user(db, admin, user_id, body, client)
    return AdminUser.of(view.user, view.mfa)


@router.delete(
    "/users/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    response_model=None,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def delete_user(
    user_id: uuid.UUID,
    admin: Superuser,
    db: DbDep,
    service: AdminServiceDep,
    client: ClientDep,
) -> Response:
    await service.delete_user(db, admin, user_id, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/users/{user_id}/mfa",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    response_model=None,
    responses=error_responses(401, 403, 404, 422),
)
async def reset_mfa(
    user_id: uuid.UUID,
    admin: Superuser,
    db: DbDep,
    service: AdminServiceDep,
    client: ClientDep,
) -> Response:
    """Removes the user's TOTP and recovery codes (for a lost authenticator): the next sign-in
    asks for the password only. Audited; the owner is mailed. 204 also when TOTP was off."""
    await service.reset_mfa(db, admin, user_id, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/users/{user_id}/passkeys",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    response_model=None,
    responses=error_responses(401, 403, 404, 422),
)
async def remove_passkeys(
    user_id: uuid.UUID,
    admin: Superuser,
    db: DbDep,
    service: AdminServiceDep,
    client: ClientDep,
) -> Response:
    """Removes every passkey of the user (a lost or stolen device): they no longer sign in.
    Audited (``passkeys_removed_by_admin``). 204 also when the user had none."""
    await service.remove_passkeys(db, admin, user_id, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users/{user_id}/sessions/revoke",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    response_model=None,
    responses=error_responses(401, 403, 404, 422),
)
async def revoke_sessions(
    user_id: uuid.UUID,
    admin: Superuser,
    db: DbDep,
    service: AdminServiceDep,
    client: ClientDep,
) -> Response:
    await service.revoke_sessions(db, admin, user_id, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/sessions/revoke-all",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    response_model=None,
    responses=error_responses(401, 403, 503),
)
async def revoke_all_sessions(
    admin: Superuser, db: DbDep, service: AdminServiceDep, client: ClientDep
) -> Response:
    """Emergency revocation: ends every session of every user (the caller's too) and refuses
    every access token issued before this moment, on every process within a second. A sign-in
    made right after works. Audited (`sessions_revoked_all`). 503 when the shared store is
    down: then nothing is changed."""
    await service.revoke_all_sessions(db, admin, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/audit-events",
    status_code=status.HTTP_200_OK,
    response_model=AuditEventPage,
    responses=error_responses(401, 403, 422),
)
async def list_audit_events(
    _admin: Superuser,
    db: DbDep,
    service: AdminServiceDep,
    user_id: Annotated[uuid.UUID | None, Query(description="Events about this user.")] = None,
    event_type: Annotated[AuditType | None, Query(alias="type")] = None,
    limit: Limit = 50,
    cursor: CursorParam = None,
) -> AuditEventPage:
    page = await service.list_audit_events(
        db, user_id=user_id, event_type=event_type, limit=limit, cursor=cursor
    )
    return AuditEventPage(
        items=[AuditEventOut.model_validate(event) for event in page.items],
        next_cursor=page.next_cursor,
    )
