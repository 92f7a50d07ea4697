from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from authgate.auth.schemas import TokenTransportChoice


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderOut(BaseModel):
    name: str
    kind: Literal["oidc", "github"]


class AuthorizationUrl(BaseModel):
    authorization_url: str


class LinkRequest(Strict):
    #: The current password; an account without one needs a sign-in younger than 5 minutes.
    password: str | None = Field(default=None, max_length=10_000)
    #: Where the browser returns after linking; must be in the allowlist (default: its first entry).
    redirect_url: str | None = Field(default=None, max_length=2048)


class OAuthCodeRequest(Strict, TokenTransportChoice):
    code: str = Field(max_length=512)


class ConnectionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    provider: str
    email: str | None
    email_verified: bool
    created_at: datetime
    last_login_at: datetime | None


class ProviderTokenRequest(Strict):
    user_id: uuid.UUID
    provider: str = Field(max_length=32)


class ProviderTokenOut(BaseModel):
    """The provider's access token, for trusted internal callers only."""

    access_token: str
    token_type: str
    expires_at: datetime | None
    scope: str | None
