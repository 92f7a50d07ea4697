from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from authgate.core.db import Base
from authgate.core.time import utc_now


class OAuthIdentity(Base):
    """A user's account at an external provider, keyed by (provider, subject), never by email."""

    __tablename__ = "oauth_identities"
    __table_args__ = (
        UniqueConstraint("provider", "subject", name="uq_oauth_identities_provider_subject"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    email_verified: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
    #: True when the signed-in owner connected it (``POST /oauth/{provider}/link``, password or a
    #: fresh sign-in confirmed): trusted whatever its address. False when it created or joined
    #: the account by address: then it signs in only while it proves the user's current address
    #: (``email_verified`` and ``email`` equal to the user's, case-insensitively).
    linked_by_owner: Mapped[bool] = mapped_column(default=False, server_default=false())
