from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from authgate.core.db import Base
from authgate.core.time import utc_now


class TotpSecret(Base):
    """A user's TOTP secret (RFC 6238): pending until a code confirms it, then the second factor.

    The secret is stored AES-GCM encrypted (``EncryptionService``), its associated data bound to
    the user, so a ciphertext copied to another user's row does not decrypt. At most one row per
    user: restarting an enrollment replaces the pending row.
    """

    __tablename__ = "totp_secrets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    secret_ct: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    #: Set by the code that turned TOTP on; None while the enrollment is pending.
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    #: The RFC 6238 time-step of the last accepted code: a code of this step or an earlier one
    #: is refused (each code works at most once).
    last_used_step: Mapped[int | None] = mapped_column(BigInteger, default=None)
