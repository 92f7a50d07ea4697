from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from authgate.core.db import Base
from authgate.core.time import utc_now


class Passkey(Base):
    """A WebAuthn credential (a discoverable one, made with user verification) that signs its
    user in without a password. Only public material is kept: the credential id the browser
    names it by, the COSE public key that checks its signatures, and the signature counter."""

    __tablename__ = "passkeys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    #: The authenticator's credential id (raw bytes), unique across every user.
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    #: The COSE-encoded public key (RFC 9052) of the credential.
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    #: The last signature counter seen; 0 for authenticators that keep none (synced passkeys).
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The authenticator model's AAGUID (all zeros with attestation ``none`` on many of them).
    aaguid: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(64))
    #: The transports the browser reported (``internal``, ``hybrid``, ``usb``, …).
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Whether the credential may be synced to other devices (the BE flag) …
    backup_eligible: Mapped[bool] = mapped_column(default=False)
    #: … and whether it is (the BS flag, as of the last use).
    backed_up: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
