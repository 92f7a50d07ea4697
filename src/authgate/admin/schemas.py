"""Admin API shapes, and the opaque keyset cursor shared by its listings."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from authgate.core.errors import ValidationFailed
from authgate.core.text import OneLine
from authgate.mfa.repository import MfaSummary
from authgate.models import User
from authgate.users.schemas import UserOut

#: Longer cursors are refused before any decoding.
MAX_CURSOR_LENGTH = 512
#: What a role looks like (contract §11), and how many a user may have.
ROLE_PATTERN: Final = r"^[a-z][a-z0-9_.:-]{0,63}$"
MAX_ROLES: Final = 32

Role = Annotated[str, StringConstraints(pattern=ROLE_PATTERN)]


class AdminUser(UserOut):
    last_login_at: datetime | None
    mfa: bool = Field(description="Whether the user has TOTP on.")
    recovery_codes_left: int = Field(ge=0, description="The user's unused recovery codes.")
    passkeys: int = Field(ge=0, description="The user's registered passkeys.")

    @classmethod
    def of(cls, user: User, mfa: MfaSummary) -> AdminUser:
        return cls.model_validate(
            {
                **UserOut.model_validate(user).model_dump(),
                "last_login_at": user.last_login_at,
                "mfa": mfa.totp,
                "recovery_codes_left": mfa.recovery_codes_left,
                "passkeys": mfa.passkeys,
            }
        )


class AdminUserPage(BaseModel):
    items: list[AdminUser]
    next_cursor: str | None


class AdminUserUpdate(BaseModel):
    """Only these fields are writable by an admin; anything else (email, password_hash, …) is
    refused (extra=forbid). Strict, so ``"false"`` is not taken for ``false``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: OneLine | None = Field(default=None, max_length=200)
    is_active: bool | None = None
    is_superuser: bool | None = None
    email_verified: bool | None = None
    roles: list[Role] | None = Field(
        default=None,
        max_length=MAX_ROLES,
        description="The user's roles, replacing the current list (duplicates are dropped; "
        "`[]` removes every role). Each matches `^[a-z][a-z0-9_.:-]{0,63}$`; at most 32.",
    )

    @field_validator("is_active", "is_superuser", "email_verified")
    @classmethod
    def _not_null(cls, value: bool | None) -> bool:
        # Defaults are not validated, so this only refuses an explicit null.
        if value is None:
            raise ValueError("must be true or false")
        return value

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, value: list[str] | None) -> list[str]:
        if value is None:
            raise ValueError("must be a list of roles")
        return list(dict.fromkeys(value))  # the first occurrence of each, in order

    def changes(self) -> dict[str, Any]:
        """The fields the request actually sent (an omitted field is left alone)."""
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    type: str
    user_id: uuid.UUID | None
    session_id: uuid.UUID | None
    ip_address: str | None
    user_agent: str | None
    detail: dict[str, Any] | None


class AuditEventPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in a listing ordered by ``(created_at, id)``: base64url of a small JSON
    document naming the listing it belongs to. Opaque to clients; validated on the way in, so a
    tampered cursor is a 422, never a 500."""

    kind: str
    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        document = {"k": self.kind, "t": self.created_at.isoformat(), "i": str(self.id)}
        raw = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, value: str, kind: str) -> Cursor:
        try:
            cursor = cls._parse(value)
        except (ValueError, TypeError, OverflowError, binascii.Error):
            cursor = None
        # Only the exact encoding of a cursor of this listing is accepted.
        if cursor is None or cursor.kind != kind or cursor.encode() != value:
            raise ValidationFailed(
                [{"loc": ["query", "cursor"], "msg": "Invalid cursor.", "type": "value_error"}]
            )
        return cursor

    @classmethod
    def _parse(cls, value: str) -> Cursor | None:
        if not value or len(value) > MAX_CURSOR_LENGTH:
            return None
        padded = value + "=" * (-len(value) % 4)
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        document = json.loads(raw)
        if not isinstance(document, dict) or set(document) != {"k", "t", "i"}:
            return None
        kind, created, ident = document["k"], document["t"], document["i"]
        if not (isinstance(kind, str) and isinstance(created, str) and isinstance(ident, str)):
            return None
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            return None
        return cls(kind, created_at.astimezone(UTC), uuid.UUID(ident))
