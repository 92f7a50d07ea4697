from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from authgate.core.text import OneLine
from authgate.sessions.service import IssuedTokens


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(Strict):
    email: str = Field(max_length=320, examples=["ada@example.com"])
    password: str = Field(max_length=10_000)
    name: OneLine | None = Field(default=None, max_length=200)


class EmailRequest(Strict):
    email: str = Field(max_length=320)


class TokenRequest(Strict):
    token: str = Field(max_length=512)


class LoginRequest(Strict):
    email: str = Field(max_length=320)
    password: str = Field(max_length=10_000)


class RefreshRequest(Strict):
    refresh_token: str = Field(max_length=512)


class ResetPasswordRequest(Strict):
    token: str = Field(max_length=512)
    new_password: str = Field(max_length=10_000)


class Accepted(BaseModel):
    detail: str


class PasswordPolicyOut(BaseModel):
    """The password rules a sign-up or reset form can check before submitting."""

    model_config = ConfigDict(from_attributes=True)

    min_length: int = Field(description="Fewest code points (after NFKC normalisation).")
    max_length: int = Field(description="Most code points (after NFKC normalisation).")
    min_strength: int = Field(
        ge=0, le=4, description="Lowest zxcvbn score accepted (0 = strength not checked)."
    )
    breach_check: Literal["off", "hibp"] = Field(
        description="Whether passwords known from breaches are refused (Pwned Passwords)."
    )


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105
    expires_in: int
    refresh_token: str
    refresh_token_expires_in: int

    @classmethod
    def of(cls, issued: IssuedTokens) -> TokenPair:
        return cls(
            access_token=issued.access_token,
            expires_in=issued.expires_in(),
            refresh_token=issued.refresh_token,
            refresh_token_expires_in=issued.refresh_expires_in(),
        )


class OAuth2TokenResponse(BaseModel):
    """RFC 6749 §5.1."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105
    expires_in: int
    refresh_token: str
    refresh_token_expires_in: int
    scope: str = ""


class IntrospectRequest(Strict):
    token: str = Field(max_length=16_384)
    token_type_hint: OneLine | None = Field(default=None, max_length=64)


class IntrospectionResponse(BaseModel):
    active: bool
    sub: str | None = None
    exp: int | None = None
    iat: int | None = None
    sid: str | None = None
    scope: str | None = None
    #: The token's ``amr`` claim (``[]`` for a token issued before the claim existed).
    amr: list[str] | None = None
    token_type: str | None = None
    client_id: str | None = None
    iss: str | None = None
    aud: str | None = None
