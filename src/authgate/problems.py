"""RFC 9457 rendering: every non-2xx response (outside /auth/token) is problem+json."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError
from starlette.exceptions import HTTPException as StarletteHTTPException

from authgate.core.errors import MFA_METHODS, AuthgateError, OAuth2TokenError, problem_body

logger = logging.getLogger("authgate.http")

PROBLEM_JSON = "application/problem+json"

_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    429: ("rate_limited", "Too many requests"),
}


def problem_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without the offending input (it may be a password)."""
    cleaned: list[dict[str, Any]] = []
    for error in errors:
        cleaned.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "")),
            }
        )
    return cleaned


async def _authgate_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthgateError)  # noqa: S101
    return problem_response(exc.status, exc.to_problem(), exc.headers)


async def _oauth2_token_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OAuth2TokenError)  # noqa: S101
    return JSONResponse(exc.to_oauth2(), status_code=exc.status, headers=exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    body = problem_body(
        422,
        "validation_error",
        "Validation error",
        "The request is not valid.",
        errors=_clean_errors(exc.errors()),
    )
    return problem_response(422, body)


def _routes(routes: Any) -> Iterator[Any]:
    """Every route with a path and methods, through FastAPI's included routers (whose own
    ``matches`` answers for the first route of the path only)."""
    for route in routes:
        if getattr(route, "path_regex", None) is not None and getattr(route, "methods", None):
            yield route
        # FastAPI ≥ 0.13x keeps an included router's routes as resolved candidates.
        yield from _routes(getattr(route, "_effective_candidates", None) or ())


def _allowed_methods(request: Request) -> str:
    """Every method of the request's path. Starlette's 405 names only the methods of the first
    route matching the path, and FastAPI makes one route per operation (RFC 9110 §15.5.6)."""
    path = request.scope["path"]
    methods: set[str] = set()
    for route in _routes(request.app.router.routes):
        if route.path_regex.match(path):
            methods.update(route.methods)
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    if exc.status_code == 404:
        detail = "The resource does not exist."
    headers = dict(exc.headers or {})
    if exc.status_code == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return problem_response(
        exc.status_code, problem_body(exc.status_code, code, title, detail), headers
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A lost or refused database connection is an outage (503), not a bug (500)."""
    assert isinstance(exc, DBAPIError)  # noqa: S101
    # Only a lost connection: SQLite reports programming errors as OperationalError too.
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        logger.warning("http.database_unavailable", extra={"error_type": type(exc.orig).__name__})
        body = problem_body(
            503,
            "service_unavailable",
            "Service unavailable",
            "The service is temporarily unavailable; try again shortly.",
        )
        return problem_response(503, body, {"Retry-After": "5"})
    return await _unhandled(request, exc)


async def _unhandled(_request: Request, exc: Exception) -> JSONResponse:
    # Logged with its type only: a message may carry SQL or values; never sent to the client.
    logger.error("http.unhandled_error", extra={"error_type": type(exc).__name__}, exc_info=exc)
    body = problem_body(
        500, "internal_error", "Internal server error", "An unexpected error occurred."
    )
    return problem_response(500, body)


def install(app: FastAPI) -> None:
    app.add_exception_handler(AuthgateError, _authgate_error)
    app.add_exception_handler(OAuth2TokenError, _oauth2_token_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unhandled)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status documented as a problem+json body."""
    descriptions = {
        400: "Bad request (a body that is not JSON, an invalid Content-Length)",
        401: "Not authenticated or invalid token",
        403: "Forbidden",
        404: "Not found",
        409: "Conflict",
        413: "Payload too large",
        415: "Unsupported media type",
        422: "Validation error",
        429: "Rate limited",
        503: "Service unavailable",
    }
    return {
        status: {
            "description": descriptions.get(status, "Error"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def sign_in_forbidden_responses() -> dict[int | str, dict[str, Any]]:
    """``responses=`` for the 403 of a route that signs in: ``email_not_verified``, or
    ``mfa_required`` with the two members that complete the sign-in (``mfa_token``,
    ``methods``)."""
    members = {
        "type": "object",
        "properties": {
            "mfa_token": {"type": "string", "description": "For `POST /auth/mfa/verify`."},
            "methods": {"type": "array", "items": {"type": "string", "enum": list(MFA_METHODS)}},
        },
    }
    return {
        403: {
            "description": "`email_not_verified`, or `mfa_required` (with `mfa_token` and"
            " `methods`)",
            "content": {
                PROBLEM_JSON: {
                    "schema": {"allOf": [{"$ref": "#/components/schemas/Problem"}, members]}
                }
            },
        }
    }


#: RFC 6749 §5.2 error codes ``POST /auth/token`` answers with.
OAUTH2_ERRORS = ["invalid_request", "invalid_grant", "unsupported_grant_type"]


def oauth2_error_responses() -> dict[int | str, dict[str, Any]]:
    """``responses=`` for the OAuth 2 token endpoint: its 400 is the RFC 6749 §5.2 form
    (``application/json``); a form body that cannot be parsed at all is a 400 problem."""
    oauth2_error = {
        "type": "object",
        "title": "OAuth2Error",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "enum": OAUTH2_ERRORS},
            "error_description": {"type": "string"},
        },
    }
    mfa_required = {
        "type": "object",
        "title": "OAuth2MfaRequired",
        "required": ["error", "mfa_token"],
        "properties": {
            "error": {"type": "string", "enum": ["mfa_required"]},
            "error_description": {"type": "string"},
            "mfa_token": {"type": "string", "description": "For `POST /auth/mfa/verify`."},
        },
    }
    return {
        400: {
            "description": "RFC 6749 §5.2 error (or a problem for a body that cannot be parsed)",
            "content": {
                "application/json": {"schema": oauth2_error},
                PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}},
            },
        },
        403: {
            "description": "A right password of an account with a second factor: no token, an"
            " `mfa_token` for `POST /auth/mfa/verify`",
            "content": {"application/json": {"schema": mfa_required}},
        },
    }
