from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from authgate.core.db import Base, Timestamped, UUIDPrimaryKey
from authgate.core.time import utc_now


class User(UUIDPrimaryKey, Timestamped, Base):
    __tablename__ = "users"
    #: The admin listing's keyset order: ``(created_at, id)``.
    __table_args__ = (Index("ix_users_created_at_id", "created_at", "id"),)

    #: The address as normalised by email-validator (domain lower-cased, unicode NFC).
    email: Mapped[str] = mapped_column(String(320))
    #: Case-folded ``email``: the unique lookup key (addresses are unique case-insensitively).
    email_key: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    #: Argon2id (or a legacy bcrypt / PBKDF2 hash until the next login); None for OAuth-only users.
    password_hash: Mapped[str | None] = mapped_column(String(512), default=None)
    email_verified: Mapped[bool] = mapped_column(default=False)
    is_active: Mapped[bool] = mapped_column(default=True)
    is_superuser: Mapped[bool] = mapped_column(default=False)
    #: Access tokens issued before this moment are refused ("end every session").
    tokens_valid_after: Mapped[datetime] = mapped_column(default=utc_now)
    password_changed_at: Mapped[datetime | None] = mapped_column(default=None)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
    #: Names the product gives meaning to (``support``, ``billing:read``), signed into every
    #: access token as the ``roles`` claim; set by an admin only (a JSON array of strings).
    roles: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
