from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from authgate.core.db import Base
from authgate.core.time import utc_now


class ActionKind(StrEnum):
    verify_email = "verify_email"
    #: The link of a later sign-up of a still unverified address: it carries that sign-up's
    #: password hash and name, which become the account's only when the link is followed.
    verify_registration = "verify_registration"
    reset_password = "reset_password"
    change_email = "change_email"
    oauth_code = "oauth_code"


class ActionToken(Base):
    """A single-use opaque token sent to the user (link or one-time code), keyed-hash only."""

    __tablename__ = "action_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[datetime]
    #: Set when spent, or when superseded by a newer token of the same kind.
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    #: Kind-specific data that is not secret (e.g. the new address of an email change).
    data: Mapped[dict[str, Any] | None] = mapped_column(default=None)
