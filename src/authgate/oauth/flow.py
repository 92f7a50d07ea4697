"""The browser flow's plain data: cookies, what ``start``/``callback``/``redeem`` hand back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from authgate.config import Settings
from authgate.sessions.service import IssuedTokens

#: How long a started sign-in may take at the provider (state row and binding cookie).
STATE_TTL = 600
COOKIE_PATH = "/api/v1/oauth"
COOKIE_PREFIX = "ag_oauth_"
#: RFC 6265bis: a ``__Host-`` cookie must be Secure, have ``Path=/`` and no Domain.
HOST_PREFIX = "__Host-"


def state_associated_data(state_id: uuid.UUID) -> bytes:
    return f"oauth_state:{state_id}".encode()


def binding_cookie_name(state_hash: str, *, secure: bool = False) -> str:
    """One cookie per pending sign-in, so two tabs do not overwrite each other's binding."""
    return (HOST_PREFIX if secure else "") + COOKIE_PREFIX + state_hash[:16]


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """Attributes of the binding and redemption cookies (HttpOnly, SameSite=Lax always)."""

    secure: bool
    path: str

    @classmethod
    def of(cls, settings: Settings) -> CookiePolicy:
        secure = settings.public_url.startswith("https://")
        return cls(secure=secure, path="/" if secure else COOKIE_PATH)


@dataclass(frozen=True, slots=True)
class FlowStart:
    authorization_url: str
    cookie_name: str
    cookie_value: str


@dataclass(frozen=True, slots=True)
class FlowEnd:
    location: str
    #: The binding cookie of the flow.
    cookie_name: str
    #: Set: replace the cookie's value by this redemption binding (a sign-in that issued a
    #: code). None: clear the cookie.
    cookie_value: str | None = None


@dataclass(frozen=True, slots=True)
class Redeemed:
    issued: IssuedTokens
    #: The redemption cookie to clear.
    cookie_name: str


@dataclass(frozen=True, slots=True)
class CallbackParams:
    state: str | None
    code: str | None
    error: str | None
    iss: str | None


@dataclass(frozen=True, slots=True)
class ProviderTokenRead:
    access_token: str
    token_type: str
    expires_at: datetime | None
    scope: str | None
