from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from authgate.core.text import OneLine
from authgate.sessions.service import IssuedTokens


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: How the refresh token of an issued pair travels (``authgate.auth.transport``).
Transport = Literal["body", "cookie"]


class TokenTransportChoice(BaseModel):
    """The optional field of every request that issues a ``TokenPair``: a request model
    inherits it (``class LoginRequest(Strict, TokenTransportChoice)``)."""

    refresh_token_transport: Transport = Field(
        default="body",
        description=(
            "`body` (default): the refresh token is in the response's `refresh_token`. "
            "`cookie`: it is set only in the HttpOnly refresh cookie (`Set-Cookie`, "
            "`Path=/api/v1/auth`) and `refresh_token` is null; for SPAs that must never hold "
            "it in JavaScript."
        ),
    )


class RegisterRequest(Strict):
    email: str = Field(max_length=320, examples=["ada@example.com"])
    password: str = Field(max_length=10_000)
    name: OneLine | None = Field(default=None, max_length=200)


class EmailRequest(Strict):
    email: str = Field(max_length=320)


class TokenRequest(Strict):
    token: str = Field(max_length=512)


class LoginRequest(Strict, TokenTransportChoice):
    email: str = Field(max_length=320)
    password: str = Field(max_length=10_000)


class RefreshRequest(Strict, TokenTransportChoice):
    refresh_token: str | None = Field(
        default=None,
        max_length=512,
        description=(
            "The refresh token; leave it out to use the refresh cookie (accepted only from an "
            "allowed `Origin`, and then the answer is in cookie mode whatever "
            "`refresh_token_transport` says). A token here wins over the cookie."
        ),
    )


class LogoutRequest(Strict):
    refresh_token: str | None = Field(
        default=None,
        max_length=512,
        description=(
            "The refresh token of the session to end; leave it out to use the refresh cookie "
            "(accepted only from an allowed `Origin`). A token here wins over the cookie."
        ),
    )


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
    refresh_token: str | None = Field(
        description=(
            "The refresh token (`agr_…`). null in cookie mode: when the request asked for "
            '`refresh_token_transport: "cookie"`, or refreshed with the refresh cookie; the '
            "token is then only in the HttpOnly cookie of `Set-Cookie`."
        )
    )
    refresh_token_expires_in: int = Field(
        description="Seconds the refresh token stays usable (the cookie's `Max-Age` too)."
    )

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
    #: The token's ``roles`` claim (``[]`` for a token issued before the claim existed).
    roles: list[str] | None = None
    token_type: str | None = None
    client_id: str | None = None
    iss: str | None = None
    aud: str | None = None
