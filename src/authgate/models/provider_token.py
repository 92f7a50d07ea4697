from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from authgate.core.db import Base
from authgate.core.time import utc_now


class ProviderToken(Base):
    """A provider's tokens for one user, encrypted (AES-GCM, key id + row-bound associated data)."""

    __tablename__ = "provider_tokens"
    __table_args__ = (
        UniqueConstraint("user_id", "provider", name="uq_provider_tokens_user_provider"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    identity_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("oauth_identities.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(64))
    access_token_ct: Mapped[bytes] = mapped_column(LargeBinary)
    refresh_token_ct: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    token_type: Mapped[str | None] = mapped_column(String(32), default=None)
    scope: Mapped[str | None] = mapped_column(String(1024), default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    #: Bumped on every refresh: an optimistic lock so concurrent refreshes do not both write.
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)
