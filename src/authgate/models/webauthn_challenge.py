from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from authgate.core.db import Base
from authgate.core.time import utc_now


class WebAuthnChallenge(Base):
    """A WebAuthn challenge handed out by an options call, answered at most once before
    ``expires_at``.

    ``purpose`` ``register``: a signed-in user's passkey registration (``user_id`` set; the
    user's newest such challenge is the one a registration answers). ``authenticate``: a
    usernameless sign-in (``user_id`` None), found by the keyed hash of its ``agw_`` flow token.
    """

    __tablename__ = "webauthn_challenges"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    #: Keyed hash of the sign-in's ``agw_`` flow token; None for a registration.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, default=None
    )
    purpose: Mapped[str] = mapped_column(String(16))
    #: The random challenge the authenticator signs (not a secret: it is sent in the options).
    challenge: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
