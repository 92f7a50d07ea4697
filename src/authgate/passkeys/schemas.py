"""Shapes of the passkey API (docs/api.md, Passkeys). Options and credentials are the WebAuthn
Level 3 JSON serialisations (base64url without padding), passed through as objects."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from authgate.auth.schemas import TokenTransportChoice
from authgate.core.text import OneLine


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PasskeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None = Field(description="The last sign-in with it, if any.")


class RegistrationOptionsRequest(Strict):
    """No members: the options are the signed-in user's."""


class RegisterPasskeyRequest(Strict):
    credential: dict[str, Any] = Field(
        description=(
            "The new credential as `PublicKeyCredential.toJSON()` serialises it"
            " (`RegistrationResponseJSON`)."
        )
    )
    name: OneLine | None = Field(
        default=None, max_length=64, description="A label for the user; default `Passkey`."
    )


class RenamePasskeyRequest(Strict):
    name: OneLine = Field(min_length=1, max_length=64)


class SignInOptionsRequest(Strict):
    """No members: a sign-in with a passkey names no account (the passkey does)."""


class SignInOptionsOut(BaseModel):
    flow_token: str = Field(
        description="An `agw_` token naming this sign-in's challenge; give it back to"
        " `POST /auth/passkey/verify`."
    )
    options: dict[str, Any] = Field(
        description="`PublicKeyCredentialRequestOptionsJSON` for"
        " `PublicKeyCredential.parseRequestOptionsFromJSON`."
    )


class PasskeyVerifyRequest(Strict, TokenTransportChoice):
    flow_token: str = Field(max_length=512)
    credential: dict[str, Any] = Field(
        description=(
            "The assertion as `PublicKeyCredential.toJSON()` serialises it"
            " (`AuthenticationResponseJSON`)."
        )
    )
