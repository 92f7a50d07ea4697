from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from authgate.core.db import Base


class SignInPair(Base):
    """An IP address + User-Agent pair an account signed in from, kept as a keyed hash: what a
    sign-in is compared with for the new-sign-in alert (``sign_in_alerts``). Sessions cannot
    serve: ended ones are purged long before 90 days."""

    __tablename__ = "sign_in_pairs"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    #: HMAC-SHA256 (AUTHGATE_SECRET_KEY, hex) of the IP address and User-Agent: no raw value.
    pair_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The latest sign-in from the pair.
    last_seen_at: Mapped[datetime]
    #: ``last_seen_at`` before the latest sign-in (None after the first): what the sign-in's
    #: one upsert hands back to decide whether the pair was new.
    previous_seen_at: Mapped[datetime | None] = mapped_column(default=None)
