from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from authgate.core.db import Base
from authgate.core.time import utc_now


class AuthSession(Base):
    """A sign-in: one refresh-token family. Its id is the ``sid`` claim of its access tokens."""

    __tablename__ = "auth_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    last_used_at: Mapped[datetime] = mapped_column(default=utc_now)
    #: Absolute end of the session (AUTHGATE_REFRESH_TOKEN_TTL from creation); refresh never extends it.
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(40), default=None)
    ip_address: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(512), default=None)
    #: "password", "refresh", "oauth:<provider>".
    auth_method: Mapped[str] = mapped_column(String(64), default="password")
    #: RFC 8176 method references of the sign-in, space-separated ("pwd", "pwd otp mfa",
    #: "fed"): the ``amr`` claim of every access token of the session, refreshes included.
    #: The server default only serves rows older than the column (migration 0005 back-fills).
    amr: Mapped[str] = mapped_column(String(64), server_default="")
