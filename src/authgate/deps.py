"""Dependencies shared by the routers, as ``Annotated`` aliases that read like signatures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.config import Settings
from authgate.core.db import SECURITY_WRITE, commit_unit_of_work
from authgate.core.errors import (
    Forbidden,
    InvalidAccessToken,
    NotAuthenticated,
)
from authgate.core.http import ClientInfo
from authgate.core.security.jwt import AccessClaims
from authgate.models import AuthSession, User
from authgate.runtime import Runtime
from authgate.sessions.access import PrincipalSnapshot

#: Larger Authorization headers are refused before any parsing.
MAX_AUTHORIZATION_HEADER = 8 * 1024

oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/token", auto_error=False, scheme_name="BearerToken"
)


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request)


# The dependencies below take the request and read the runtime off it rather than depending on
# ``RuntimeDep``: FastAPI solves every sub-dependency of a dependency on each request, cached
# or not, and that bookkeeping is a measurable share of a refresh (docs/performance.md).
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings(request: Request) -> Settings:
    return runtime_of(request).settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed when the handler returns, before the response
    is sent (``scope="function"``); rolled back when the request fails. A write that must
    outlive the failure goes through ``core.db.security_write``, committed before the error
    is raised."""
    runtime = runtime_of(request)
    async with runtime.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            if session.info.get(SECURITY_WRITE):
                _notify(runtime, session)  # the security write may have queued a mail
            raise
        else:
            await commit_unit_of_work(session)
            _notify(runtime, session)


def _notify(runtime: Runtime, session: AsyncSession) -> None:
    if session.info.pop("outbox_dirty", False) and runtime.dispatcher is not None:
        runtime.dispatcher.notify()


SessionDep = Annotated[AsyncSession, Depends(get_db, scope="function")]


async def get_client(request: Request) -> ClientInfo:
    return runtime_of(request).clients.info(request)


ClientDep = Annotated[ClientInfo, Depends(get_client)]


def rate_limit(name: str) -> Any:
    """A route dependency that spends one unit of the named per-IP rate limit."""

    async def _hit(request: Request, client: ClientDep) -> None:
        await runtime_of(request).limiter.hit(name, client.ip_address or "unknown")

    return Depends(_hit)


@dataclass(frozen=True, slots=True)
class Principal:
    user: User
    session: AuthSession
    claims: AccessClaims


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if header is None:
        raise NotAuthenticated()
    if len(header) > MAX_AUTHORIZATION_HEADER:
        raise InvalidAccessToken("The Authorization header is too large.")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated()
    return token.strip()


async def optional_bearer_token(request: Request) -> str | None:
    """The bearer token if a well-formed one is sent, else None (never an error)."""
    if "authorization" not in request.headers:
        return None
    try:
        return bearer_token(request)
    except (NotAuthenticated, InvalidAccessToken):
        return None


OptionalBearerToken = Annotated[str | None, Depends(optional_bearer_token)]


async def get_principal(
    request: Request,
    db: SessionDep,
    _token: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    """The caller behind the bearer token (see ``SessionService.check_access``)."""
    user, session, claims = await runtime_of(request).sessions.check_access(
        db, bearer_token(request)
    )
    return Principal(user, session, claims)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


#: For routes whose principal dependency does not go through ``oauth2_scheme`` (the hot path:
#: FastAPI's security-scope bookkeeping costs more than the rest of the check there).
BEARER_SECURITY: dict[str, Any] = {"security": [{"BearerToken": []}]}


async def get_user_view(request: Request) -> PrincipalSnapshot:
    """The caller for read-only handlers: the same checks, from the short-lived snapshot cache
    (the hot path of ``GET /users/me``; a cache hit opens no database session at all)."""
    runtime = runtime_of(request)
    snapshot, _claims = await runtime.sessions.check_access_view(
        runtime.sessionmaker, bearer_token(request)
    )
    return snapshot


CurrentUserView = Annotated[PrincipalSnapshot, Depends(get_user_view)]


async def get_current_user(principal: CurrentPrincipal) -> User:
    return principal.user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_superuser(principal: CurrentPrincipal) -> User:
    if not principal.user.is_superuser:
        raise Forbidden("Administrator rights are required.")
    return principal.user


Superuser = Annotated[User, Depends(get_superuser)]
