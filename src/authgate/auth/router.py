"""HTTP for sign-up, sign-in and tokens. Handlers resolve dependencies and call one service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response, status
from fastapi.responses import JSONResponse

from authgate.auth.schemas import (
    Accepted,
    EmailRequest,
    IntrospectionResponse,
    IntrospectRequest,
    LoginRequest,
    OAuth2TokenResponse,
    RefreshRequest,
    RegisterRequest,
    ResetPasswordRequest,
    TokenPair,
    TokenRequest,
)
from authgate.core.errors import (
    AuthgateError,
    EmailNotVerified,
    InvalidAccessToken,
    NotAuthenticated,
    TokenExpired,
)
from authgate.core.limits import Limit
from authgate.deps import (
    ClientDep,
    CurrentPrincipal,
    IntrospectionClientId,
    RuntimeDep,
    SessionDep,
    SettingsDep,
    bearer_token,
    json_body,
    json_body_openapi,
    per_ip,
    per_ip_by_grant,
)
from authgate.problems import error_responses
from authgate.users.schemas import UserOut

router = APIRouter(prefix="/auth", tags=["auth"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

REGISTER_ACCEPTED = "If the address can be registered, a verification email is on its way."
RESEND_ACCEPTED = "If the address belongs to an unverified account, a new link is on its way."
FORGOT_ACCEPTED = "If the address belongs to an account, a reset link is on its way."


def _no_store(response: Response) -> None:
    response.headers.update(NO_STORE)


@router.post(
    "/register",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(422, 429),
    dependencies=[per_ip(Limit.register_ip)],
)
async def register(
    body: RegisterRequest, db: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> Accepted:
    await runtime.auth.register(db, body.email, body.password, body.name, client)
    return Accepted(detail=REGISTER_ACCEPTED)


@router.post(
    "/verify-email",
    status_code=status.HTTP_200_OK,
    response_model=UserOut,
    responses=error_responses(400, 422, 429, 503),
    dependencies=[per_ip(Limit.token_consume_ip)],
)
async def verify_email(
    body: TokenRequest, db: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> UserOut:
    user = await runtime.verification.verify(db, body.token, client)
    return UserOut.model_validate(user)


@router.post(
    "/verify-email/resend",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(422, 429),
    dependencies=[per_ip(Limit.verify_resend_ip)],
)
async def resend_verification(
    body: EmailRequest, db: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> Accepted:
    await runtime.auth.resend_verification(db, body.email, client)
    return Accepted(detail=RESEND_ACCEPTED)


@router.post(
    "/login",
    status_code=status.HTTP_200_OK,
    response_model=TokenPair,
    responses=error_responses(401, 403, 422, 429, 503),
    dependencies=[per_ip(Limit.login_ip)],
)
async def login(
    body: LoginRequest, response: Response, db: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> TokenPair:
    issued = await runtime.auth.login(db, body.email, body.password, client)
    _no_store(response)
    return TokenPair.of(issued)


def _oauth_error(error: str, description: str, status_code: int = 400) -> JSONResponse:
    headers = dict(NO_STORE)
    if status_code == 401:
        headers["WWW-Authenticate"] = 'Basic realm="authgate"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status_code, headers=headers
    )


@router.post(
    "/token",
    status_code=status.HTTP_200_OK,
    response_model=OAuth2TokenResponse,
    responses={400: {"description": "RFC 6749 §5.2 error"}, **error_responses(429, 503)},
    dependencies=[per_ip_by_grant({"password": Limit.login_ip, "refresh_token": Limit.refresh_ip})],
)
async def token(
    db: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
    response: Response,
    grant_type: Annotated[str, Form()],
    username: Annotated[str | None, Form()] = None,
    password: Annotated[str | None, Form()] = None,
    refresh_token: Annotated[str | None, Form()] = None,
    scope: Annotated[str | None, Form()] = None,
) -> OAuth2TokenResponse | JSONResponse:
    """OAuth2 token endpoint (password and refresh_token grants); used by Swagger UI's Authorize."""
    try:
        if grant_type == "password":
            if not username or password is None:
                return _oauth_error("invalid_request", "username and password are required.")
            issued = await runtime.auth.login(db, username, password, client)
        elif grant_type == "refresh_token":
            if not refresh_token:
                return _oauth_error("invalid_request", "refresh_token is required.")
            issued = await runtime.sessions.refresh(db, refresh_token, client)
        else:
            return _oauth_error("unsupported_grant_type", "Use password or refresh_token.")
    except EmailNotVerified as exc:
        await _settle(db, exc)
        return _oauth_error("invalid_grant", exc.detail)
    except AuthgateError as exc:
        await _settle(db, exc)
        if exc.status in (429, 503):
            raise
        return _oauth_error("invalid_grant", "The credentials or refresh token are invalid.")
    _no_store(response)
    pair = TokenPair.of(issued)
    return OAuth2TokenResponse(**pair.model_dump())


async def _settle(db: SessionDep, exc: AuthgateError) -> None:
    # The unit of work commits after a returned response; keep only what the error allows.
    if not exc.commit:
        await db.rollback()


@router.post(
    "/refresh",
    status_code=status.HTTP_200_OK,
    response_model=TokenPair,
    responses=error_responses(401, 422, 429, 503),
    dependencies=[per_ip(Limit.refresh_ip)],
)
async def refresh(
    body: RefreshRequest, response: Response, db: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> TokenPair:
    issued = await runtime.sessions.refresh(db, body.refresh_token, client)
    _no_store(response)
    return TokenPair.of(issued)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(422),
)
async def logout(
    body: RefreshRequest, request: Request, db: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> Response:
    """Ends the session of the refresh token (and of the bearer token, if one is sent)."""
    await runtime.sessions.logout(db, body.refresh_token, client)
    if "authorization" in request.headers:
        try:
            claims = runtime.jwt.decode(bearer_token(request))
        except (InvalidAccessToken, TokenExpired, NotAuthenticated):
            claims = None
        if claims is not None:
            await runtime.sessions.end_session_of(db, claims.sid, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/logout-all",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401),
)
async def logout_all(
    principal: CurrentPrincipal, db: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> Response:
    await runtime.sessions.logout_all(db, principal.user, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/password/forgot",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(422, 429),
    dependencies=[per_ip(Limit.forgot_password_ip)],
)
async def forgot_password(
    body: EmailRequest, db: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> Accepted:
    await runtime.auth.forgot_password(db, body.email, client)
    return Accepted(detail=FORGOT_ACCEPTED)


@router.post(
    "/password/reset",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(400, 422, 429, 503),
    dependencies=[per_ip(Limit.token_consume_ip)],
)
async def reset_password(
    body: ResetPasswordRequest, db: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> Response:
    await runtime.password_reset.reset(db, body.token, body.new_password, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/introspect",
    status_code=status.HTTP_200_OK,
    response_model=IntrospectionResponse,
    response_model_exclude_none=True,
    responses=error_responses(401, 422, 429),
    openapi_extra=json_body_openapi(IntrospectRequest),
)
async def introspect(
    client_id: IntrospectionClientId,
    body: Annotated[IntrospectRequest, json_body(IntrospectRequest)],
    db: SessionDep,
    runtime: RuntimeDep,
    settings: SettingsDep,
) -> IntrospectionResponse:
    """RFC 7662 for trusted services (HTTP Basic of an introspection client, authenticated
    before the body is read: no credentials → 401 whatever the body)."""
    claims = await runtime.sessions.introspect(db, body.token)
    if claims is None:
        return IntrospectionResponse(active=False)
    return IntrospectionResponse(
        active=True,
        sub=str(claims.sub),
        exp=claims.exp,
        iat=claims.iat,
        sid=str(claims.sid),
        scope=claims.scope,
        token_type="Bearer",  # noqa: S106
        client_id=client_id,
        iss=settings.public_url,
        aud=settings.jwt_audience,
    )
