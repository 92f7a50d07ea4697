"""What ``authgate webhooks …`` does: list dead events, send one again, send a test event."""

from __future__ import annotations

import json
from typing import Any

from authgate.config import Settings
from authgate.core.db import make_engine, make_sessionmaker
from authgate.core.errors import NotFound
from authgate.core.time import utc_now
from authgate.webhooks.delivery import Attempt, WebhookSender, make_webhook_http_client
from authgate.webhooks.endpoints import Endpoint, configured_endpoints
from authgate.webhooks.events import TEST_EVENT
from authgate.webhooks.repository import WebhookRepository
from authgate.webhooks.service import RETRY_WINDOW, encode_body, new_message_id


def _names(settings: Settings) -> dict[str, str]:
    return {endpoint.key: endpoint.name for endpoint in configured_endpoints(settings)}


async def list_dead(settings: Settings, limit: int) -> list[dict[str, Any]]:
    """Dead events, newest first: id, endpoint, event, attempts, why, when (never the body)."""
    names = _names(settings)
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as db:
            rows = await WebhookRepository().dead_letters(db, limit=limit)
            return [
                {
                    "id": row.message_id,
                    "endpoint": names.get(row.endpoint_key, f"unconfigured#{row.endpoint_key[:6]}"),
                    "type": row.event_type,
                    "attempts": row.attempts,
                    "last_error": row.last_error,
                    "created_at": row.created_at.isoformat(),
                    # A body that is gone (delivered rows only) cannot be sent again.
                    "retryable": row.payload_ciphertext is not None,
                }
                for row in rows
            ]
    finally:
        await engine.dispose()


async def retry_dead(settings: Settings, message_id: str) -> None:
    """Give one dead event a fresh 24 hours, due now (the dispatcher sends it at its next
    pass, before its endpoint's later events); NotFound when it is not a retryable dead event."""
    engine = make_engine(settings)
    now = utc_now()
    try:
        async with make_sessionmaker(engine)() as db, db.begin():
            if not await WebhookRepository().requeue_dead(
                db, message_id, now=now, expires_at=now + RETRY_WINDOW
            ):
                raise NotFound(f"{message_id} is not a dead event that can be sent again.")
    finally:
        await engine.dispose()


def endpoint_for_url(settings: Settings, url: str) -> Endpoint | None:
    return next((e for e in configured_endpoints(settings) if e.url == url.strip()), None)


async def send_test(settings: Settings, endpoint: Endpoint) -> dict[str, Any]:
    """One signed ``webhook.test`` event to ``endpoint``, now, outside the outbox."""
    message_id = new_message_id()
    body = encode_body(TEST_EVENT, utc_now(), {"endpoint": endpoint.name})
    async with make_webhook_http_client(settings) as http:
        attempt: Attempt = await WebhookSender(http, settings.webhook_timeout).send(
            endpoint, message_id, body
        )
    return {
        "endpoint": endpoint.name,
        "id": message_id,
        "ok": attempt.ok,
        "status": attempt.status,
        "error": attempt.error,
        "body": json.loads(body),
    }
