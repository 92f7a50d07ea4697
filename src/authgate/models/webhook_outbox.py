from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from authgate.core.db import Base
from authgate.core.time import utc_now


class WebhookStatus(StrEnum):
    pending = "pending"
    sending = "sending"
    delivered = "delivered"
    dead = "dead"


class WebhookOutbox(Base):
    """One event for one endpoint, written in the transaction of the change it reports.

    ``seq`` (an integer key, not a UUID like the other tables) is the order of creation: an
    endpoint gets its events one at a time in ``seq`` order. ``message_id`` is the
    ``webhook-id`` header, the same on every attempt. The body holds an address, so it is stored
    encrypted (AES-GCM, bound to the message id) and wiped once delivered. ``endpoint_key`` is a
    hash of the endpoint's URL (never of its secret): rotating the secret keeps the queue.
    """

    __tablename__ = "webhook_outbox"
    __table_args__ = (
        # The claim: the first undelivered event of each endpoint, and whether one is in flight.
        Index("ix_webhook_outbox_endpoint_status_seq", "endpoint_key", "status", "seq"),
        Index("ix_webhook_outbox_status_next", "status", "next_attempt_at"),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    endpoint_key: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    payload_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    payload_key_id: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[str] = mapped_column(String(16), default=WebhookStatus.pending)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utc_now)
    #: Retries stop here (24 h after the event; ``webhooks retry`` grants another 24 h).
    expires_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(64), default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
