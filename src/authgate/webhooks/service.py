"""WebhookService: write events to the webhook outbox, in the caller's transaction.

A service that changed something calls :meth:`WebhookService.emit` inside the same unit of work:
one ``webhook_outbox`` row per endpoint subscribed to the event, all in one INSERT, committed —
or rolled back — with the change, and delivered afterwards by the
:class:`~authgate.webhooks.dispatcher.WebhookDispatcher`. So a rolled-back change sends nothing
and a committed one is never lost. With no endpoint subscribed to an event, ``emit`` returns
before touching the database.

The body (``{"type", "timestamp", "data"}``) is fixed when the event is written, so every attempt
sends the same bytes under the same ``webhook-id``. It may hold an address, so it is stored
encrypted with :class:`EncryptionService` (associated data: the message id and event type) and
wiped once delivered.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from authgate.config import Settings
from authgate.core.metrics import WEBHOOK_QUEUED
from authgate.core.security.crypto import EncryptionService
from authgate.core.time import utc_now
from authgate.models.webhook_outbox import WebhookOutbox, WebhookStatus
from authgate.webhooks.endpoints import Endpoint, configured_endpoints
from authgate.webhooks.events import WebhookEvent, check_data
from authgate.webhooks.repository import ClaimedEvent, WebhookRepository

#: ``AsyncSession.info`` key set when a session wrote events; the request layer wakes the
#: in-process dispatcher after committing such a session.
WEBHOOKS_DIRTY = "webhooks_dirty"

#: How long an event is retried before it is ``dead``.
RETRY_WINDOW = timedelta(hours=24)


def new_message_id() -> str:
    """A ``webhook-id``: ``msg_`` + 128 random bits."""
    return f"msg_{secrets.token_hex(16)}"


def rfc3339(at: datetime) -> str:
    """UTC, milliseconds, ``Z``: ``2026-01-31T12:00:00.123Z``."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return rfc3339(value)
    raise TypeError(f"webhook data cannot hold a {type(value).__name__}")


def encode_body(event_type: str, at: datetime, data: Mapping[str, Any]) -> bytes:
    body = {"type": event_type, "timestamp": rfc3339(at), "data": dict(data)}
    return json.dumps(
        body, separators=(",", ":"), ensure_ascii=False, default=_json_default
    ).encode()


def associated_data(message_id: str, event_type: str) -> bytes:
    """Binds a body's ciphertext to its row: copied to another row, it does not decrypt."""
    return f"{message_id}|{event_type}".encode()


class WebhookService:
    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        encryption: EncryptionService | None,
        repository: WebhookRepository | None = None,
    ) -> None:
        if endpoints and encryption is None:
            raise ValueError("webhook endpoints need the encryption key ring")
        self.endpoints: tuple[Endpoint, ...] = tuple(endpoints)
        self._encryption = encryption
        self._repo = repository or WebhookRepository()
        self._by_event = {
            event: tuple(e for e in self.endpoints if event in e.events) for event in WebhookEvent
        }
        self._by_key = {e.key: e for e in self.endpoints}

    @classmethod
    def from_settings(cls, settings: Settings, encryption: EncryptionService) -> WebhookService:
        return cls(configured_endpoints(settings), encryption)

    @classmethod
    def disabled(cls) -> WebhookService:
        """No endpoints: every ``emit`` returns at once."""
        return cls((), None)

    @property
    def enabled(self) -> bool:
        return bool(self.endpoints)

    def endpoint(self, key: str) -> Endpoint | None:
        return self._by_key.get(key)

    # -- writing -------------------------------------------------------------------------

    async def emit(self, db: AsyncSession, event: WebhookEvent, data: Mapping[str, Any]) -> None:
        """Write ``event`` for every subscribed endpoint into the caller's transaction (one
        INSERT; nothing at all when no endpoint wants it). ``data`` must not name a secret
        (``events.check_data``). Neither flushes nor commits the caller's session."""
        if self._by_event[event]:
            await self.emit_many(db, event, (data,))

    async def emit_many(
        self, db: AsyncSession, event: WebhookEvent, items: Iterable[Mapping[str, Any]]
    ) -> None:
        """One event per item (``session.revoked`` for each ended session), one INSERT."""
        endpoints = self._by_event[event]
        if not endpoints:
            return
        now = utc_now()
        rows: list[dict[str, Any]] = []
        for data in items:
            body = encode_body(event.value, now, check_data(data))
            rows.extend(self._row(endpoint, event.value, body, now) for endpoint in endpoints)
        if not rows:
            return
        await self._repo.add(db, rows)
        db.info[WEBHOOKS_DIRTY] = True
        for endpoint in endpoints:
            WEBHOOK_QUEUED.labels(endpoint=endpoint.name).inc(len(rows) // len(endpoints))

    def _row(
        self, endpoint: Endpoint, event_type: str, body: bytes, now: datetime
    ) -> dict[str, Any]:
        if self._encryption is None:  # a service with endpoints always has the key ring
            raise ValueError("webhook endpoints need the encryption key ring")
        message_id = new_message_id()
        return {
            "message_id": message_id,
            "endpoint_key": endpoint.key,
            "event_type": event_type,
            "payload_ciphertext": self._encryption.encrypt(
                body, associated_data(message_id, event_type)
            ),
            "payload_key_id": self._encryption.current_kid,
            "status": WebhookStatus.pending.value,
            "attempts": 0,
            "next_attempt_at": now,
            "expires_at": now + RETRY_WINDOW,
            "created_at": now,
        }

    # -- reading -------------------------------------------------------------------------

    def body_of(self, row: WebhookOutbox | ClaimedEvent) -> bytes:
        """The body to send (``DecryptionError`` if tampered with or its key left the ring;
        ``ValueError`` once wiped)."""
        if row.payload_ciphertext is None or self._encryption is None:
            raise ValueError("the webhook body was already wiped")
        return self._encryption.decrypt(
            row.payload_ciphertext, associated_data(row.message_id, row.event_type)
        )
