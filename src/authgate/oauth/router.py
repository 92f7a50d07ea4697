"""HTTP for sign-in with external providers. Handlers resolve dependencies and call one service."""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import RedirectResponse

from authgate.auth.schemas import TokenPair
from authgate.core.errors import InvalidClient
from authgate.deps import ClientDep, CurrentUser, RuntimeDep, SessionDep, SettingsDep
from authgate.oauth.schemas import (
    AuthorizationUrl,
    ConnectionOut,
    LinkRequest,
    OAuthCodeRequest,
    ProviderOut,
    ProviderTokenOut,
    ProviderTokenRequest,
)
from authgate.oauth.service import COOKIE_PATH, STATE_TTL, CallbackParams, FlowStart
from authgate.problems import error_responses

router = APIRouter(prefix="/oauth", tags=["oauth"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
REDIRECT: dict[int | str, dict[str, Any]] = {302: {"description": "Redirect (Location header)"}}
Param = Annotated[str | None, Query(max_length=2048)]


def _set_binding_cookie(response: Response, start: FlowStart, secure: bool) -> None:
    response.set_cookie(
        start.cookie_name,
        start.cookie_value,
        max_age=STATE_TTL,
        path=COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="lax",
    )


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
async def connections(
    user: CurrentUser, db: SessionDep, runtime: RuntimeDep
) -> list[ConnectionOut]:
    return [ConnectionOut.model_validate(i) for i in await runtime.oauth.connections(db, user)]


@router.delete(
    "/connections/{provider}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 404, 409),
)
async def unlink(
    provider: str, user: CurrentUser, db: SessionDep, runtime: RuntimeDep, client: ClientDep
) -> Response:
    """Removes a connection and revokes its tokens at the provider; 409 if it is the last way
    to sign in (no password and no other connection)."""
    await runtime.oauth.unlink(db, user, provider, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/token",
    status_code=status.HTTP_200_OK,
    response_model=TokenPair,
    responses=error_responses(400, 422, 429),
)
async def token(
    body: OAuthCodeRequest,
    response: Response,
    db: SessionDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> TokenPair:
    """Exchanges the one-time ``ago_`` code from the callback redirect for a session."""
    await runtime.limiter.hit("token_consume_ip", client.ip_address or "unknown")
    issued = await runtime.oauth.redeem(db, body.code, client)
    response.headers.update(NO_STORE)
    return TokenPair.of(issued)


def _internal_client(request: Request, settings: SettingsDep) -> str:
    """HTTP Basic of an introspection client (AUTHGATE_INTROSPECTION_CLIENTS), constant time."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or len(value) > 1024:
        raise InvalidClient()
    try:
        client_id, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient() from None
    expected = settings.introspection_credentials.get(client_id)
    matches = secrets.compare_digest((expected or "\x00").encode(), secret.encode())
    if expected is None or not matches:
        raise InvalidClient()
    return client_id


@router.post(
    "/internal/provider-token",
    status_code=status.HTTP_200_OK,
    response_model=ProviderTokenOut,
    responses=error_responses(401, 404, 409, 422, 429, 503),
)
async def provider_token(
    request: Request,
    body: ProviderTokenRequest,
    response: Response,
    db: SessionDep,
    runtime: RuntimeDep,
    settings: SettingsDep,
    client: ClientDep,
) -> ProviderTokenOut:
    """For trusted back-end services only (HTTP Basic of an introspection client): a valid access
    token of the user at the provider, refreshed when needed. Every call is audited."""
    caller = _internal_client(request, settings)
    await runtime.limiter.hit("introspect_client", caller)
    runtime.oauth.providers.config(body.provider)
    access = await runtime.oauth.tokens.get_valid_access_token(
        db, body.user_id, body.provider, client=client, caller=caller
    )
    info = await runtime.oauth.tokens.token_info(db, body.user_id, body.provider)
    response.headers.update(NO_STORE)
    return ProviderTokenOut(
        access_token=access,
        token_type=(info.token_type if info and info.token_type else "Bearer"),
        expires_at=info.expires_at if info else None,
        scope=info.scope if info else None,
    )


@router.get(
    "/{provider}/authorize",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={**REDIRECT, **error_responses(400, 404, 422, 429, 503)},
)
async def authorize(
    provider: str,
    redirect_url: Annotated[str, Query(max_length=2048)],
    db: SessionDep,
    runtime: RuntimeDep,
    settings: SettingsDep,
    client: ClientDep,
) -> RedirectResponse:
    """Starts a sign-in: 302 to the provider. ``redirect_url`` must be in
    AUTHGATE_ALLOWED_REDIRECT_URLS exactly (400 ``invalid_redirect_url`` otherwise)."""
    await runtime.limiter.hit("oauth_ip", client.ip_address or "unknown")
    start = await runtime.oauth.start(db, provider, redirect_url)
    response = RedirectResponse(start.authorization_url, status_code=status.HTTP_302_FOUND)
    _set_binding_cookie(response, start, settings.public_url.startswith("https://"))
    return response


@router.get(
    "/{provider}/callback",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={**REDIRECT, **error_responses(400, 404, 422, 429)},
)
async def callback(
    provider: str,
    request: Request,
    db: SessionDep,
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
    await runtime.limiter.hit("oauth_ip", client.ip_address or "unknown")
    end = await runtime.oauth.callback(
        db, provider, CallbackParams(state, code, error, iss), dict(request.cookies), client
    )
    response = RedirectResponse(end.location, status_code=status.HTTP_302_FOUND)
    if end.cookie_name is not None:
        response.delete_cookie(
            end.cookie_name,
            path=COOKIE_PATH,
            secure=settings.public_url.startswith("https://"),
            httponly=True,
            samesite="lax",
        )
    return response


@router.post(
    "/{provider}/link",
    status_code=status.HTTP_200_OK,
    response_model=AuthorizationUrl,
    responses=error_responses(400, 401, 404, 422, 429, 503),
)
async def link(
    provider: str,
    user: CurrentUser,
    response: Response,
    db: SessionDep,
    runtime: RuntimeDep,
    settings: SettingsDep,
    client: ClientDep,
    body: LinkRequest | None = None,
) -> AuthorizationUrl:
    """Starts connecting a provider to the signed-in account: open ``authorization_url`` in the
    browser. Sets the same binding cookie as /authorize, so call it with credentials."""
    await runtime.limiter.hit("oauth_ip", client.ip_address or "unknown")
    start = await runtime.oauth.start(
        db, provider, body.redirect_url if body else None, link_user=user
    )
    _set_binding_cookie(response, start, settings.public_url.startswith("https://"))
    response.headers.update(NO_STORE)
    return AuthorizationUrl(authorization_url=start.authorization_url)
