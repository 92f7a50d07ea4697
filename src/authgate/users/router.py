"""HTTP for the signed-in user's own account."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from authgate.auth.schemas import Accepted, TokenPair
from authgate.auth.transport import ISSUES_TOKENS, TokenTransportDep
from authgate.deps import (
    BEARER_SECURITY,
    ClientDep,
    CurrentPrincipal,
    CurrentUser,
    DbDep,
    RuntimeDep,
    get_user_view,
)
from authgate.problems import error_responses
from authgate.users.schemas import (
    ChangeEmailRequest,
    ChangePasswordRequest,
    PasswordConfirmation,
    UpdateMe,
    UserOut,
)

router = APIRouter(prefix="/users", tags=["users"])

EMAIL_CHANGE_ACCEPTED = "If the new address is available, a confirmation link is on its way to it."


@router.get(
    "/me",
    status_code=status.HTTP_200_OK,
    response_model=UserOut,
    responses=error_responses(401, 503),
    openapi_extra=BEARER_SECURITY,
)
async def read_me(request: Request) -> UserOut:
    # The caller is resolved here rather than as a ``CurrentUserView`` parameter: this is the
    # hottest read, and FastAPI's solving of a sub-dependency (its cache key, the query
    # parameters parsed again, the recursion) cost more than the cached check itself
    # (python -m bench.inprocess users-me). The OpenAPI document is the same (BEARER_SECURITY).
    return UserOut.model_validate(await get_user_view(request))


@router.patch(
    "/me",
    status_code=status.HTTP_200_OK,
    response_model=UserOut,
    responses=error_responses(401, 422),
)
async def update_me(body: UpdateMe, user: CurrentUser, db: DbDep, runtime: RuntimeDep) -> UserOut:
    updated = await runtime.users.update_profile(db, user, body.name)
    return UserOut.model_validate(updated)


@router.post(
    "/me/password",
    status_code=status.HTTP_200_OK,
    response_model=TokenPair,
    responses={**ISSUES_TOKENS, **error_responses(400, 401, 422, 429)},
)
async def change_password(
    body: ChangePasswordRequest,
    principal: CurrentPrincipal,
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
    transport: TokenTransportDep,
) -> TokenPair:
    """Every other session ends; the caller continues in a new session, whose pair is returned
    (an SPA in cookie mode asks for ``refresh_token_transport: "cookie"``: the refresh cookie
    is not sent here, and its old session has ended)."""
    issued = await runtime.users.change_password(
        db, principal.user, principal.session, body.current_password, body.new_password, client
    )
    return transport.issue(issued, body.refresh_token_transport)


@router.post(
    "/me/email",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(400, 401, 422, 429),
)
async def change_email(
    body: ChangeEmailRequest,
    user: CurrentUser,
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> Accepted:
    await runtime.users.change_email(db, user, body.new_email, body.password, client)
    return Accepted(detail=EMAIL_CHANGE_ACCEPTED)


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(400, 401, 422, 429),
)
async def delete_me(
    body: PasswordConfirmation,
    user: CurrentUser,
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> Response:
    await runtime.users.delete_account(db, user, body.password, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
