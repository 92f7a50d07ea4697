from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class SessionOut(BaseModel):
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    ip_address: str | None
    user_agent: str | None
    amr: list[str] = Field(
        description="RFC 8176 authentication methods of the sign-in that opened the session "
        "(`pwd`, `otp`, `mfa`, `fed`), as in the `amr` claim of its access tokens; `[]` for "
        "a session older than the claim."
    )
    current: bool
