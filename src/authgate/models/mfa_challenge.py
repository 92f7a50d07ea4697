from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from authgate.core.db import Base
from authgate.core.time import utc_now


class MfaChallenge(Base):
    """A sign-in waiting for its second factor: the ``agm_`` token (keyed hash only) a right
    password or provider sign-in of a user with TOTP on gets instead of tokens."""

    __tablename__ = "mfa_challenges"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: How the first factor was given: "password" or "oauth:<provider>" (the session's method).
    method: Mapped[str] = mapped_column(String(64))
    #: Codes tried so far (each counted before it is checked); the token dies at the limit.
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
