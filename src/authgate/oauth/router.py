"""HTTP for sign-in with external providers. Handlers resolve dependencies and call one service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import RedirectResponse

from authgate.auth.schemas import TokenPair
from authgate.auth.transport import ISSUES_TOKENS, TokenTransportDep
from authgate.config import ProviderTokenClient
from authgate.core.errors import InvalidClient
from authgate.core.limits import Limit
from authgate.deps import (
    ClientDep,
    CurrentPrincipal,
    CurrentUser,
    DbDep,
    ProviderTokenClientId,
    RuntimeDep,
    SettingsDep,
    json_body,
    json_body_openapi,
    per_ip,
)
from authgate.oauth.flow import STATE_TTL, CallbackParams, CookiePolicy, FlowStart
from authgate.oauth.schemas import (
    AuthorizationUrl,
    ConnectionOut,
    LinkRequest,
    OAuthCodeRequest,
    ProviderOut,
    ProviderTokenOut,
    ProviderTokenRequest,
)
from authgate.problems import error_responses, sign_in_forbidden_responses

router = APIRouter(prefix="/oauth", tags=["oauth"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
REDIRECT: dict[int | str, dict[str, Any]] = {302: {"description": "Redirect (Location header)"}}
Param = Annotated[str | None, Query(max_length=2048)]


def _set_cookie(
    response: Response, policy: CookiePolicy, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=policy.path,
        secure=policy.secure,
        httponly=True,
        samesite="lax",
    )


def _clear_cookie(response: Response, policy: CookiePolicy, name: str) -> None:
    response.delete_cookie(
        name, path=policy.path, secure=policy.secure, httponly=True, samesite="lax"
    )


def _set_binding_cookie(response: Response, policy: CookiePolicy, start: FlowStart) -> None:
    _set_cookie(response, policy, start.cookie_name, start.cookie_value, STATE_TTL)


@router.get(
    "/providers",
    status_code=status.HTTP_200_OK,
    response_model=list[ProviderOut],
)
async def providers(runtime: RuntimeDep) -> list[ProviderOut]:
    return [ProviderOut(name=p.name, kind=p.kind) for p in runtime.oauth.providers.configs()]


@router.get(
    "/connections",
    status_code=status.HTTP_200_OK,
    response_model=list[ConnectionOut],
    responses=error_responses(401),
)
async def connections(user: CurrentUser, db: DbDep, runtime: RuntimeDep) -> list[ConnectionOut]:
    return [ConnectionOut.model_validate(i) for i in await runtime.oauth.connections(db, user)]


@router.delete(
    "/connections/{provider}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 404, 409),
)
async def unlink(
    provider: str, user: CurrentUser, db: DbDep, runtime: RuntimeDep, client: ClientDep
) -> Response:
    """Removes a connection and revokes its tokens at the provider; 409 if it is the last way
    to sign in (no password and no other connection)."""
    await runtime.oauth.unlink(db, user, provider, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/token",
    status_code=status.HTTP_200_OK,
    response_model=TokenPair,
    responses={
        **ISSUES_TOKENS,
        **error_responses(400, 422, 429),
        **sign_in_forbidden_responses(),
    },
    dependencies=[per_ip(Limit.token_consume_ip)],
)
async def token(
    body: OAuthCodeRequest,
    request: Request,
    response: Response,
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
    transport: TokenTransportDep,
) -> TokenPair:
    """Exchanges the one-time ``ago_`` code from the callback redirect for a session. The
    redemption cookie set by the callback must come along (send the request with credentials);
    without it the code is spent and the answer is 400 ``invalid_token``. An account with
    TOTP on gets 403 ``mfa_required`` instead of a session (``POST /auth/mfa/verify``)."""
    redeemed = await runtime.oauth.redeem(db, body.code, request.cookies, client)
    _clear_cookie(response, runtime.oauth.cookies, redeemed.cookie_name)
    return transport.issue(redeemed.issued, body.refresh_token_transport)


async def provider_token_client(
    client_id: ProviderTokenClientId, settings: SettingsDep
) -> ProviderTokenClient:
    """The AUTHGATE_PROVIDER_TOKEN_CLIENTS client authenticated by ``deps.client_auth`` (404
    while none is configured, 401 ``invalid_client`` otherwise). Introspection clients are not
    accepted here."""
    found = next((c for c in settings.provider_token_clients if c.client_id == client_id), None)
    if found is None:  # not reachable: client_auth took the id from this very list
        raise InvalidClient()
    return found


ProviderTokenCaller = Annotated[ProviderTokenClient, Depends(provider_token_client)]


@router.post(
    "/internal/provider-token",
    status_code=status.HTTP_200_OK,
    response_model=ProviderTokenOut,
    responses=error_responses(401, 403, 404, 409, 422, 429, 503),
    openapi_extra=json_body_openapi(ProviderTokenRequest),
)
async def provider_token(
    caller: ProviderTokenCaller,
    body: Annotated[ProviderTokenRequest, json_body(ProviderTokenRequest)],
    response: Response,
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> ProviderTokenOut:
    """For the product's own back-end services (HTTP Basic of an AUTHGATE_PROVIDER_TOKEN_CLIENTS
    client; 404 while none is configured): a valid access token of the user at the provider,
    refreshed when needed. A provider not listed for the client → 403 ``forbidden``. Every read
    is audited with the client id."""
    read = await runtime.oauth.read_provider_token(db, caller, body.user_id, body.provider, client)
    response.headers.update(NO_STORE)
    return ProviderTokenOut.model_validate(read, from_attributes=True)


@router.get(
    "/{provider}/authorize",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={**REDIRECT, **error_responses(400, 404, 422, 429, 503)},
    dependencies=[per_ip(Limit.oauth_ip)],
)
async def authorize(
    provider: str,
    redirect_url: Annotated[str, Query(max_length=2048)],
    db: DbDep,
    runtime: RuntimeDep,
    settings: SettingsDep,
) -> RedirectResponse:
    """Starts a sign-in: 302 to the provider. ``redirect_url`` must be in
    AUTHGATE_ALLOWED_REDIRECT_URLS exactly (400 ``invalid_redirect_url`` otherwise)."""
    start = await runtime.oauth.start(db, provider, redirect_url)
    response = RedirectResponse(start.authorization_url, status_code=status.HTTP_302_FOUND)
    _set_binding_cookie(response, runtime.oauth.cookies, start)
    return response


@router.get(
    "/{provider}/callback",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={**REDIRECT, **error_responses(400, 404, 422, 429)},
    dependencies=[per_ip(Limit.oauth_ip)],
)
async def callback(
    provider: str,
    request: Request,
    db: DbDep,
    runtime: RuntimeDep,
    settings: SettingsDep,
    client: ClientDep,
    state: Param = None,
    code: Param = None,
    error: Param = None,
    iss: Param = None,
) -> RedirectResponse:
    """The provider sends the browser here; 302 to ``redirect_url?code=ago_…`` (one-time,
    AUTHGATE_OAUTH_CODE_TTL) or ``redirect_url?error=…``; 400 when the state is unknown."""
    runtime.oauth.providers.config(provider)
    end = await runtime.oauth.callback(
        db, provider, CallbackParams(state, code, error, iss), dict(request.cookies), client
    )
    response = RedirectResponse(end.location, status_code=status.HTTP_302_FOUND)
    policy = runtime.oauth.cookies
    if end.cookie_value is not None:
        ttl = settings.oauth_code_ttl
        _set_cookie(response, policy, end.cookie_name, end.cookie_value, ttl)
    else:
        _clear_cookie(response, policy, end.cookie_name)
    return response


@router.post(
    "/{provider}/link",
    status_code=status.HTTP_200_OK,
    response_model=AuthorizationUrl,
    responses=error_responses(400, 401, 403, 404, 422, 429, 503),
    dependencies=[per_ip(Limit.oauth_ip)],
)
async def link(
    provider: str,
    principal: CurrentPrincipal,
    body: LinkRequest,
    response: Response,
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> AuthorizationUrl:
    """Starts connecting a provider to the signed-in account: open ``authorization_url`` in the
    browser. Body ``{password, redirect_url?}``: the current password (wrong → 400
    ``invalid_password``, counted in the per-account login throttle); an account without a
    password needs a sign-in younger than 5 minutes instead (else 403
    ``reauthentication_required``). The owner is emailed now and when the link completes. Sets
    the same binding cookie as /authorize, so call it with credentials."""
    start = await runtime.oauth.start_link(
        db,
        principal.user,
        principal.session,
        provider,
        body.password,
        body.redirect_url,
        client,
    )
    _set_binding_cookie(response, runtime.oauth.cookies, start)
    response.headers.update(NO_STORE)
    return AuthorizationUrl(authorization_url=start.authorization_url)
