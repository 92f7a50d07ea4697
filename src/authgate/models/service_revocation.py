from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Integer
from sqlalchemy.orm import Mapped, mapped_column

from authgate.core.db import Base


class ServiceRevocation(Base):
    """One row (``id = 1``): the service-wide not-before of access tokens.

    ``POST /admin/sessions/revoke-all`` (``authgate sessions revoke-all``) sets ``not_before``;
    every access token issued in an earlier second is refused. The shared store holds a copy
    each process polls; this row is what the store is repaired from when it lost it.
    """

    __tablename__ = "service_revocation"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: None until the first revoke-all.
    not_before: Mapped[datetime | None] = mapped_column(default=None)
