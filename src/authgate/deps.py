"""Dependencies shared by the routers, as ``Annotated`` aliases that read like signatures."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.config import Settings
from authgate.core.client_auth import POLICIES, ClientKind, authenticate_basic, registered_clients
from authgate.core.db import SECURITY_WRITE, commit_unit_of_work
from authgate.core.errors import (
    Forbidden,
    InvalidAccessToken,
    InvalidClient,
    NotAuthenticated,
    NotFound,
)
from authgate.core.http import ClientInfo
from authgate.core.limits import Limit, Per
from authgate.core.security.jwt import AccessClaims
from authgate.models import AuthSession, User
from authgate.runtime import Runtime
from authgate.sessions.access import PrincipalSnapshot
from authgate.webhooks.service import WEBHOOKS_DIRTY

M = TypeVar("M", bound=BaseModel)

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
    if session.info.pop(WEBHOOKS_DIRTY, False) and runtime.webhook_dispatcher is not None:
        runtime.webhook_dispatcher.notify()


DbDep = Annotated[AsyncSession, Depends(get_db, scope="function")]


async def get_client(request: Request) -> ClientInfo:
    return runtime_of(request).clients.info(request)


ClientDep = Annotated[ClientInfo, Depends(get_client)]


def per_ip(limit: Limit) -> Any:
    """A route dependency spending one unit of a per-address limit for the client IP:
    ``dependencies=[per_ip(Limit.login_ip)]``. Runs before the body is validated, so malformed
    requests count too. Only limits the registry counts per client IP are accepted."""
    if limit.spec.per is not Per.client_ip:
        raise ValueError(f"rate limit {limit.value!r} is not counted per client IP")

    async def _per_ip(request: Request, client: ClientDep) -> None:
        await runtime_of(request).limiter.per_ip(limit, client.ip_address)

    return Depends(_per_ip)


def per_ip_by_grant(limits: Mapping[str, Limit]) -> Any:
    """``per_ip`` for a form endpoint whose limit depends on its ``grant_type`` field (the
    OAuth2 token endpoint); another grant type spends nothing (it is refused anyway)."""
    for limit in limits.values():
        if limit.spec.per is not Per.client_ip:
            raise ValueError(f"rate limit {limit.value!r} is not counted per client IP")

    async def _per_ip(request: Request, client: ClientDep) -> None:
        # FastAPI has parsed (and cached) the form before it solves the dependencies.
        grant_type = (await request.form()).get("grant_type")
        limit = limits.get(grant_type) if isinstance(grant_type, str) else None
        if limit is not None:
            await runtime_of(request).limiter.per_ip(limit, client.ip_address)

    return Depends(_per_ip)


def client_auth(kind: ClientKind) -> Callable[[Request, ClientInfo], Awaitable[str]]:
    """The dependency authenticating a service client of ``kind`` (HTTP Basic); its client id.

    - 404 while no client of a kind that needs them is configured (the endpoint is off);
    - 429 while the caller's address has spent ``client_auth_ip`` on failed attempts (checked
      before the credentials, so a spent address learns nothing about a guess);
    - 401 ``invalid_client`` with ``WWW-Authenticate: Basic`` for missing or wrong credentials,
      each failure spending one unit of ``client_auth_ip``;
    - a valid client spends one unit of its kind's per-client limit.

    Declare it before the body (see ``json_body``), so a caller without credentials gets 401
    whatever the body."""
    policy = POLICIES[kind]

    async def _authenticate(request: Request, client: ClientDep) -> str:
        runtime = runtime_of(request)
        clients = registered_clients(runtime.settings, kind)
        if policy.absent_when_unconfigured and not clients:
            raise NotFound()
        await runtime.limiter.check_per_ip(Limit.client_auth_ip, client.ip_address)
        client_id = authenticate_basic(request.headers.get("authorization"), clients)
        if client_id is None:
            await runtime.limiter.per_ip(Limit.client_auth_ip, client.ip_address)
            raise InvalidClient()
        await runtime.limiter.per_client(policy.limit, client_id)
        return client_id

    return _authenticate


#: The authenticated introspection client's id (``/auth/introspect``).
IntrospectionClientId = Annotated[str, Depends(client_auth(ClientKind.introspection))]
#: The authenticated provider-token client's id (``/oauth/internal/provider-token``).
ProviderTokenClientId = Annotated[str, Depends(client_auth(ClientKind.provider_token))]


FORM_URLENCODED = "application/x-www-form-urlencoded"


def _invalid(errors: list[dict[str, Any]]) -> RequestValidationError:
    return RequestValidationError(errors)


def _validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)
        ]
        raise _invalid(errors) from None


async def _read_form(request: Request, model: type[M]) -> M:
    """The form fields ``model`` knows (others are ignored, RFC 6749 §3.2); a field sent twice
    is refused (§3.1)."""
    form = await request.form()
    data: dict[str, Any] = {}
    for name in model.model_fields:
        values = form.getlist(name)
        if len(values) > 1:
            raise _invalid(
                [{"type": "repeated", "loc": ("body", name), "msg": "Sent more than once"}]
            )
        if values:
            value = values[0]
            if not isinstance(value, str):
                raise _invalid(
                    [{"type": "string_type", "loc": ("body", name), "msg": "Not a string"}]
                )
            data[name] = value
    return _validate(model, data)


def json_body(model: type[M], *, form: bool = False) -> Any:
    """The JSON body as ``model``, read as a dependency: unlike a body parameter (which FastAPI
    decodes before any dependency runs) it comes after the dependencies declared before it, so
    client authentication answers 401 before a malformed body gets 422. Errors are the same
    422 ``validation_error`` as FastAPI's. With ``form=True`` an
    ``application/x-www-form-urlencoded`` body is read too (RFC 7662 §2.1). Pair with
    ``openapi_extra=json_body_openapi(model, form=...)``."""

    async def _read(request: Request) -> M:
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if form and ctype == FORM_URLENCODED:
            return await _read_form(request, model)
        raw = await request.body()
        if not raw:
            raise _invalid(
                [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
            )
        # A body of another type never gets here: the middleware answers 415 for it.
        try:
            data = json.loads(raw)
        except ValueError as exc:
            pos = exc.pos if isinstance(exc, json.JSONDecodeError) else 0
            raise _invalid(
                [{"type": "json_invalid", "loc": ("body", pos), "msg": "JSON decode error"}]
            ) from None
        return _validate(model, data)

    return Depends(_read)


def json_body_openapi(model: type[BaseModel], *, form: bool = False) -> dict[str, Any]:
    """``openapi_extra`` declaring the request body ``json_body(model, form=...)`` reads."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    content = {"application/json": {"schema": schema}}
    if form:
        content[FORM_URLENCODED] = {"schema": schema}
    return {"requestBody": {"required": True, "content": content}}


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
    db: DbDep,
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
