"""HTTP for sign-up, sign-in and tokens. Handlers resolve dependencies and call one service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Response, status

from authgate.auth.schemas import (
    Accepted,
    EmailRequest,
    IntrospectionResponse,
    IntrospectRequest,
    LoginRequest,
    LogoutRequest,
    OAuth2TokenResponse,
    PasswordPolicyOut,
    RefreshRequest,
    RegisterRequest,
    ResetPasswordRequest,
    TokenPair,
    TokenRequest,
)
from authgate.auth.service import TokenGrant
from authgate.auth.transport import (
    CLEARS_COOKIE,
    CSRF_REFUSED,
    ISSUES_TOKENS,
    TokenTransportDep,
    cookie_parameter,
)
from authgate.core.limits import Limit
from authgate.deps import (
    ClientDep,
    CurrentPrincipal,
    DbDep,
    IntrospectionClientId,
    OptionalBearerToken,
    RuntimeDep,
    SettingsDep,
    json_body,
    json_body_openapi,
    per_ip,
    per_ip_by_grant,
)
from authgate.problems import error_responses, oauth2_error_responses, sign_in_forbidden_responses
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
    body: RegisterRequest, db: DbDep, runtime: RuntimeDep, client: ClientDep
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
    body: TokenRequest, db: DbDep, runtime: RuntimeDep, client: ClientDep
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
    body: EmailRequest, db: DbDep, runtime: RuntimeDep, client: ClientDep
) -> Accepted:
    await runtime.auth.resend_verification(db, body.email, client)
    return Accepted(detail=RESEND_ACCEPTED)


@router.post(
    "/login",
    status_code=status.HTTP_200_OK,
    response_model=TokenPair,
    responses={
        **ISSUES_TOKENS,
        **error_responses(401, 422, 429, 503),
        **sign_in_forbidden_responses(),
    },
    dependencies=[per_ip(Limit.login_ip)],
)
async def login(
    body: LoginRequest,
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
    transport: TokenTransportDep,
) -> TokenPair:
    issued = await runtime.auth.login(db, body.email, body.password, client)
    return transport.issue(issued, body.refresh_token_transport)


@router.post(
    "/token",
    status_code=status.HTTP_200_OK,
    response_model=OAuth2TokenResponse,
    responses={**error_responses(429, 503), **oauth2_error_responses()},
    dependencies=[per_ip_by_grant({"password": Limit.login_ip, "refresh_token": Limit.refresh_ip})],
)
async def token(
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
    response: Response,
    # Every field optional here: a missing one is the service's 400 ``invalid_request``
    # (RFC 6749 §5.2), never FastAPI's 422.
    grant_type: Annotated[str | None, Form()] = None,
    username: Annotated[str | None, Form()] = None,
    password: Annotated[str | None, Form()] = None,
    refresh_token: Annotated[str | None, Form()] = None,
    scope: Annotated[str | None, Form()] = None,
) -> OAuth2TokenResponse:
    """OAuth2 token endpoint (password and refresh_token grants); used by Swagger UI's Authorize."""
    grant = TokenGrant(grant_type, username, password, refresh_token)
    issued = await runtime.auth.token(db, grant, client)
    _no_store(response)
    pair = TokenPair.of(issued)
    return OAuth2TokenResponse(**pair.model_dump())


@router.post(
    "/refresh",
    status_code=status.HTTP_200_OK,
    response_model=TokenPair,
    responses={**ISSUES_TOKENS, **CSRF_REFUSED, **error_responses(401, 422, 429, 503)},
    dependencies=[per_ip(Limit.refresh_ip)],
    openapi_extra=cookie_parameter("rotated"),
)
async def refresh(
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
    transport: TokenTransportDep,
    body: RefreshRequest | None = None,
) -> TokenPair:
    """Rotates the refresh token of the body, else of the refresh cookie (then the answer is in
    cookie mode: the successor in a new cookie). Every refusal → 401 ``invalid_token``; the
    cookie without an allowed ``Origin`` → 403 ``csrf_failed`` (the token is not spent)."""
    body = body or RefreshRequest()
    token = transport.refresh_token(body.refresh_token)
    issued = await runtime.sessions.refresh(db, token, client)
    return transport.issue(issued, body.refresh_token_transport)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**CLEARS_COOKIE, **CSRF_REFUSED, **error_responses(401, 422)},
    openapi_extra=cookie_parameter("ended"),
)
async def logout(
    bearer: OptionalBearerToken,
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
    transport: TokenTransportDep,
    body: LogoutRequest | None = None,
) -> None:
    """Ends the session of the refresh token (body, else cookie), and that of the bearer token
    if one is sent; clears the refresh cookie. Idempotent: 204 for an unknown or ended session
    too. No refresh token in the body, no cookie and no bearer → 401 ``invalid_token``; the
    cookie without an allowed ``Origin`` → 403 ``csrf_failed`` (nothing ends)."""
    body = body or LogoutRequest()
    if bearer is None:
        token: str | None = transport.refresh_token(body.refresh_token)
    else:
        token = transport.refresh_token_if_any(body.refresh_token)
    await runtime.sessions.logout(db, token, bearer, client)
    transport.clear_cookie()


@router.post(
    "/logout-all",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**CLEARS_COOKIE, **error_responses(401)},
)
async def logout_all(
    principal: CurrentPrincipal,
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
    transport: TokenTransportDep,
) -> None:
    """Ends every session of the bearer's user and clears the refresh cookie (the bearer
    authenticates it: the cookie is not needed, nor read)."""
    await runtime.sessions.logout_all(db, principal.user, client)
    transport.clear_cookie()


@router.post(
    "/password/forgot",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(422, 429),
    dependencies=[per_ip(Limit.forgot_password_ip)],
)
async def forgot_password(
    body: EmailRequest, db: DbDep, runtime: RuntimeDep, client: ClientDep
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
    body: ResetPasswordRequest, db: DbDep, runtime: RuntimeDep, client: ClientDep
) -> Response:
    await runtime.password_reset.reset(db, body.token, body.new_password, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/introspect",
    status_code=status.HTTP_200_OK,
    response_model=IntrospectionResponse,
    response_model_exclude_none=True,
    responses=error_responses(401, 422, 429),
    openapi_extra=json_body_openapi(IntrospectRequest, form=True),
)
async def introspect(
    client_id: IntrospectionClientId,
    body: Annotated[IntrospectRequest, json_body(IntrospectRequest, form=True)],
    db: DbDep,
    runtime: RuntimeDep,
    settings: SettingsDep,
) -> IntrospectionResponse:
    """RFC 7662 for trusted services (HTTP Basic of an introspection client, authenticated
    before the body is read: no credentials → 401 whatever the body). The body is the §2.1
    form (``token=…&token_type_hint=…``) or the same fields as JSON."""
    introspection = await runtime.sessions.introspect(db, body.token, client_id)
    return IntrospectionResponse.model_validate(introspection, from_attributes=True)


@router.get(
    "/password-policy",
    status_code=status.HTTP_200_OK,
    response_model=PasswordPolicyOut,
    responses=error_responses(),
)
async def password_policy(runtime: RuntimeDep) -> PasswordPolicyOut:
    """The rules a new password must pass (docs/passwords.md), for sign-up and reset forms.
    A refused password is 422 ``weak_password`` with a ``reason``."""
    return PasswordPolicyOut.model_validate(runtime.passwords.policy)
