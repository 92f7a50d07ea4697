"""HTTP for the signed-in user's sessions."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from authgate.deps import ClientDep, CurrentPrincipal, DbDep, RuntimeDep
from authgate.problems import error_responses
from authgate.sessions.schemas import SessionOut

router = APIRouter(prefix="/sessions", tags=["sessions"])


@router.get(
    "",
    status_code=status.HTTP_200_OK,
    response_model=list[SessionOut],
    responses=error_responses(401),
)
async def list_sessions(
    principal: CurrentPrincipal, db: DbDep, runtime: RuntimeDep
) -> list[SessionOut]:
    sessions = await runtime.sessions.list_active(db, principal.user)
    return [
        SessionOut(
            id=s.id,
            created_at=s.created_at,
            last_used_at=s.last_used_at,
            expires_at=s.expires_at,
            ip_address=s.ip_address,
            user_agent=s.user_agent,
            amr=list(s.amr),
            current=s.id == principal.session.id,
        )
        for s in sessions
    ]


@router.delete(
    "/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 404, 422),
)
async def end_session(
    session_id: uuid.UUID,
    principal: CurrentPrincipal,
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> Response:
    await runtime.sessions.end_for_user(db, principal.user, session_id, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
