"""Shapes of the second-factor API (docs/api.md §3.10)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from authgate.auth.schemas import TokenTransportChoice


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MfaStatusOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    totp: bool = Field(description="Whether TOTP is on (confirmed).")
    passkeys: int = Field(ge=0, description="Registered passkeys.")
    recovery_codes_left: int = Field(ge=0, description="Unused recovery codes.")


class StartTotpRequest(Strict):
    #: The current password; an account without one needs a sign-in younger than 5 minutes.
    password: str | None = Field(default=None, max_length=10_000)


class TotpEnrollmentOut(BaseModel):
    """Shown once: the secret is never shown again (it is stored encrypted)."""

    model_config = ConfigDict(from_attributes=True)

    secret: str = Field(description="The base32 secret, for typing into an authenticator app.")
    otpauth_uri: str = Field(description="`otpauth://totp/…` for authenticator apps.")
    qr_svg: str = Field(description="`otpauth_uri` as a QR code: an SVG `data:` URI.")


class CodeRequest(Strict):
    code: str = Field(max_length=64, description="A 6-digit code from the authenticator app.")


class PasswordAndCodeRequest(Strict):
    #: The current password; an account without one needs a sign-in younger than 5 minutes.
    password: str | None = Field(default=None, max_length=10_000)
    code: str = Field(max_length=64, description="A current TOTP code or an unused recovery code.")


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(
        description="Single-use codes, shown this once; each replaces a TOTP code once."
    )


class MfaVerifyRequest(Strict, TokenTransportChoice):
    mfa_token: str = Field(max_length=512, description="The `agm_` token of `mfa_required`.")
    method: Literal["totp", "recovery_code"]
    code: str = Field(max_length=64)
