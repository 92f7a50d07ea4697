from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from authgate.auth.schemas import TokenTransportChoice
from authgate.core.text import OneLine


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str | None
    email_verified: bool
    is_active: bool
    is_superuser: bool
    roles: list[str] = Field(
        description="Names the product gives meaning to; set by an admin, signed into every "
        "access token as the `roles` claim."
    )
    created_at: datetime
    updated_at: datetime


class UpdateMe(BaseModel):
    """Only the name is writable; server-owned fields are refused (extra=forbid)."""

    model_config = ConfigDict(extra="forbid")

    name: OneLine | None = Field(max_length=200)


class ChangePasswordRequest(TokenTransportChoice):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(max_length=10_000)
    new_password: str = Field(max_length=10_000)


class ChangeEmailRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    new_email: str = Field(max_length=320)
    password: str = Field(max_length=10_000)


class PasswordConfirmation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(max_length=10_000)
