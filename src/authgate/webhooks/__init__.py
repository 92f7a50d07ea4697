"""Webhooks: events for the product's backend, signed per the Standard Webhooks specification.

``WebhookService.emit`` (``service.py``) writes an event to the ``webhook_outbox`` in the
caller's transaction; ``WebhookDispatcher`` (``dispatcher.py``) delivers it where mail is
delivered; ``operations.py`` is the ``authgate webhooks`` command. docs/webhooks.md describes
the events, headers, retries and ordering for receivers.

This package's ``__init__`` imports only ``events`` (``config.py`` depends on it).
"""

from authgate.webhooks.events import TEST_EVENT, WebhookEvent, session_data, user_data

__all__ = ["TEST_EVENT", "WebhookEvent", "session_data", "user_data"]
