"""The configured receivers of events (``AUTHGATE_WEBHOOKS``), as the service uses them.

An endpoint is known in the database by a hash of its URL (``endpoint_key``) and in logs and
metrics by a short name (``host#`` + the first characters of that hash), never by its secret
or full URL (a URL may carry a credential in its path or query).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime

from standardwebhooks import Webhook

from authgate.config import Settings, WebhookEndpointConfig
from authgate.webhooks.events import WebhookEvent


def endpoint_key(url: str) -> str:
    """The endpoint's key in ``webhook_outbox``: SHA-256 of the URL (hex, 128 bits)."""
    return hashlib.sha256(url.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    key: str
    #: Label of the endpoint's metrics and log lines: its host and the start of its key.
    name: str
    events: frozenset[WebhookEvent]
    signer: Webhook = field(repr=False, compare=False)

    @classmethod
    def of(cls, config: WebhookEndpointConfig) -> Endpoint:
        key = endpoint_key(config.url)
        return cls(
            url=config.url,
            key=key,
            name=f"{config.host}#{key[:6]}",
            events=config.subscribed,
            signer=Webhook(config.secret.get_secret_value()),
        )

    def headers(self, message_id: str, at: datetime, body: bytes) -> dict[str, str]:
        """The Standard Webhooks headers of one attempt: ``v1,`` + base64 HMAC-SHA256 of
        ``id.timestamp.body`` with the endpoint's secret."""
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(math.floor(at.timestamp())),
            "webhook-signature": self.signer.sign(message_id, at, body),
        }


def configured_endpoints(settings: Settings) -> list[Endpoint]:
    return [Endpoint.of(config) for config in settings.webhooks]
