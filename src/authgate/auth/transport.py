"""How a ``TokenPair`` reaches the caller, and where the refresh token of a request comes from.

The refresh token travels in the JSON body (the default) or, for SPAs that must never hold it in
JavaScript, only in an HttpOnly cookie (``refresh_token_transport: "cookie"``, docs/api.md §3.9).
``/auth/refresh`` and ``/auth/logout`` take the body's token, else the cookie's; the cookie
authenticates a request only when its ``Origin`` is allowed (CSRF), checked before the token is
looked at.

This is HTTP only: services return ``IssuedTokens`` and never know how they travel. Every route
that answers a ``TokenPair`` adopts it the same way (a test holds every such route to it)::

    class MfaVerifyRequest(Strict, TokenTransportChoice):   # authgate.auth.schemas
        ...

    @router.post(..., response_model=TokenPair,
                 responses={**ISSUES_TOKENS, **error_responses(400, 422, 429)})
    async def verify(body: MfaVerifyRequest, transport: TokenTransportDep, ...) -> TokenPair:
        issued = await runtime.mfa.verify(...)
        return transport.issue(issued, body.refresh_token_transport)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request, Response

from authgate.auth.schemas import TokenPair, Transport
from authgate.config import CookieSameSite, Settings
from authgate.core.errors import CsrfFailed, InvalidRefreshToken
from authgate.deps import runtime_of
from authgate.problems import PROBLEM_JSON
from authgate.sessions.service import IssuedTokens

#: The refresh cookie is sent to ``/auth/refresh`` and ``/auth/logout`` only (the API prefix
#: is fixed: ``app.API_PREFIX``).
COOKIE_PATH = "/api/v1/auth"
DEFAULT_COOKIE_NAME = "authgate_refresh"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: RFC 6265 §4.1.1 ``cookie-octet``: what a value may hold unquoted (never ``;``, ``,``, space).
_COOKIE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class RefreshCookie:
    """The refresh cookie's name and attributes (``AUTHGATE_REFRESH_COOKIE_*``)."""

    name: str
    samesite: CookieSameSite
    secure: bool
    domain: str | None
    path: str = COOKIE_PATH

    @classmethod
    def of(cls, settings: Settings) -> RefreshCookie:
        return cls(
            name=settings.refresh_cookie_name,
            samesite=settings.refresh_cookie_samesite,
            secure=settings.refresh_cookie_secure,
            domain=settings.refresh_cookie_domain,
        )

    def setting(self, token: str, max_age: int) -> str:
        """The ``Set-Cookie`` value that stores ``token`` for ``max_age`` seconds."""
        if not _COOKIE_VALUE.fullmatch(token):
            raise ValueError("not a cookie-safe token")
        return self._header(token, max(0, max_age))

    def clearing(self) -> str:
        """The ``Set-Cookie`` value that removes the cookie (same name, Path and Domain)."""
        return self._header("", 0)

    def _header(self, value: str, max_age: int) -> str:
        parts = [f"{self.name}={value}", "HttpOnly"]
        if self.secure:
            parts.append("Secure")
        parts.append(f"SameSite={self.samesite.capitalize()}")
        parts.append(f"Path={self.path}")
        if self.domain:
            parts.append(f"Domain={self.domain}")
        parts.append(f"Max-Age={max_age}")
        return "; ".join(parts)


def origin_of(url: str) -> str | None:
    """The origin (RFC 6454 serialisation) of an http(s) URL: lower-case scheme and host, the
    default port left out, so ``https://App.example.com:443/`` is ``https://app.example.com``;
    None for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    if ":" in host:  # IPv6
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def allowed_origins(settings: Settings) -> frozenset[str]:
    """Where a request may come from to use the refresh cookie: the CORS allowlist
    (``AUTHGATE_CORS_ORIGINS``, default ``[FRONTEND_URL]``) and the service's own origin (that of
    ``AUTHGATE_PUBLIC_URL``, port included: Swagger UI at ``/docs``)."""
    found = (origin_of(url) for url in [*settings.cors_allowlist, settings.public_url])
    return frozenset(origin for origin in found if origin is not None)


def origin_allowed(header: str | None, allowed: frozenset[str]) -> bool:
    """Whether an ``Origin`` header names an allowed origin. No header, ``null``, or anything
    with a path, query or fragment is not."""
    if not header:
        return False
    if header in allowed:  # a browser's serialisation, as the allowlist holds it: no parsing
        return True
    parts = urlsplit(header.strip())
    if parts.path or parts.query or parts.fragment:
        return False
    origin = origin_of(header)
    return origin is not None and origin in allowed


@dataclass(frozen=True, slots=True)
class CookieRules:
    """The refresh cookie and the origins that may use it, worked out once per runtime
    (``Runtime.cookie_rules``) rather than on every request."""

    cookie: RefreshCookie
    origins: frozenset[str]

    @classmethod
    def of(cls, settings: Settings) -> CookieRules:
        return cls(cookie=RefreshCookie.of(settings), origins=allowed_origins(settings))


class TokenTransport:
    """The transport of one request (the ``TokenTransportDep`` dependency): renders an issued
    pair into the response, finds the refresh token the request presents, clears the cookie.

    Cookie operations are written on the request's ``Response`` parameter, which FastAPI copies
    into the answer only when the handler returns normally: an error answer never sets or clears
    the cookie."""

    __slots__ = ("_by_cookie", "_cookie", "_origins", "_request", "_response")

    def __init__(self, request: Request, response: Response, rules: CookieRules) -> None:
        self._request = request
        self._response = response
        self._cookie = rules.cookie
        self._origins = rules.origins
        self._by_cookie = False

    @property
    def cookie(self) -> RefreshCookie:
        return self._cookie

    def issue(self, issued: IssuedTokens, transport: Transport = "body") -> TokenPair:
        """The response body for ``issued`` (with ``Cache-Control: no-store``).

        Cookie mode — asked for with ``transport``, or forced because this request presented
        its refresh token in the cookie (so a script can never trade the cookie for a token it
        can read) — puts the refresh token in ``Set-Cookie`` with ``Max-Age`` =
        ``refresh_token_expires_in`` and answers ``refresh_token: null``."""
        pair = TokenPair.of(issued)
        self._response.headers.update(NO_STORE)
        if transport == "body" and not self._by_cookie:
            return pair
        setting = self._cookie.setting(issued.refresh_token, pair.refresh_token_expires_in)
        self._response.headers.append("set-cookie", setting)
        return pair.model_copy(update={"refresh_token": None})

    def refresh_token(self, body_token: str | None) -> str:
        """The refresh token this request presents (``refresh_token_if_any``); neither a body
        token nor a cookie: 401 ``invalid_token``."""
        token = self.refresh_token_if_any(body_token)
        if token is None:
            raise InvalidRefreshToken("No refresh token: none in the body and no refresh cookie.")
        return token

    def refresh_token_if_any(self, body_token: str | None) -> str | None:
        """The refresh token this request presents, or None.

        - a token in the body wins (no ``Origin`` needed: a browser never sends a JSON body
          cross-site without a CORS preflight, and non-browser clients send no ``Origin``);
        - else the cookie's, only from an allowed ``Origin`` (``allowed_origins``): otherwise
          403 ``csrf_failed``, raised before anything looks at the token. A request that uses
          the cookie answers in cookie mode (``issue``)."""
        if body_token is not None:
            return body_token
        cookie = self._request.cookies.get(self._cookie.name)
        if not cookie:
            return None
        if not origin_allowed(self._request.headers.get("origin"), self._origins):
            raise CsrfFailed()
        self._by_cookie = True
        return cookie

    @property
    def by_cookie(self) -> bool:
        """Whether this request presented its refresh token in the cookie."""
        return self._by_cookie

    def clear_cookie(self) -> None:
        """Remove the refresh cookie (``Max-Age=0``, same Path, Domain and attributes)."""
        self._response.headers.append("set-cookie", self._cookie.clearing())


async def token_transport(request: Request, response: Response) -> TokenTransport:
    return TokenTransport(request, response, runtime_of(request).cookie_rules)


TokenTransportDep = Annotated[TokenTransport, Depends(token_transport)]


# -- /openapi.json ------------------------------------------------------------------------------

_PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _set_cookie_header(description: str) -> dict[str, Any]:
    return {
        "Set-Cookie": {"description": description, "required": False, "schema": {"type": "string"}}
    }


#: ``responses=`` entry of a route answering a ``TokenPair``: its 200 may set the cookie.
ISSUES_TOKENS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "The token pair. In cookie mode `refresh_token` is null and the refresh token is "
            "only in the cookie."
        ),
        "headers": _set_cookie_header(
            f"Cookie mode only: `{DEFAULT_COOKIE_NAME}=agr_…; HttpOnly; Secure; SameSite=Strict;"
            f" Path={COOKIE_PATH}; Max-Age=<refresh_token_expires_in>` (name and attributes from"
            " the `AUTHGATE_REFRESH_COOKIE_*` settings)."
        ),
    }
}

#: ``responses=`` entry of logout and logout-all: their 204 clears the cookie.
CLEARS_COOKIE: dict[int | str, dict[str, Any]] = {
    204: {
        "description": "The session(s) ended; the refresh cookie is cleared.",
        "headers": _set_cookie_header(
            f"`{DEFAULT_COOKIE_NAME}=; …; Path={COOKIE_PATH}; Max-Age=0`: removes the refresh "
            "cookie."
        ),
    }
}

#: ``responses=`` entry of a route the cookie authenticates: 403 ``csrf_failed``.
CSRF_REFUSED: dict[int | str, dict[str, Any]] = {
    403: {
        "description": (
            "`csrf_failed`: the refresh cookie was used without an allowed `Origin` (nothing was "
            "spent or revoked; the cookie is neither set nor cleared)."
        ),
        "content": _PROBLEM,
    }
}


def cookie_parameter(purpose: str) -> dict[str, Any]:
    """``openapi_extra`` documenting the refresh cookie as an optional cookie parameter."""
    return {
        "parameters": [
            {
                "name": DEFAULT_COOKIE_NAME,
                "in": "cookie",
                "required": False,
                "schema": {"type": "string"},
                "description": (
                    f"The refresh cookie (`AUTHGATE_REFRESH_COOKIE_NAME`), {purpose} when the body "
                    "has no `refresh_token`; accepted only from an allowed `Origin` (else 403 "
                    "`csrf_failed`)."
                ),
            }
        ]
    }
