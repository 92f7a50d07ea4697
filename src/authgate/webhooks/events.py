"""The events authgate reports to the product's backend, and what their ``data`` may hold.

A body is ``{"type", "timestamp", "data"}``. ``data`` names the user (``user_id``), the session
on ``session.*`` events (``session_id``, the access tokens' ``sid``) and the address where the
event is about it (``email``) — never a password, token, secret, one-time code or hash:
:func:`check_data` refuses such a key, so a careless caller fails loudly in tests instead of
leaking one to every subscriber.

This module imports nothing of the application (``config.py`` imports it).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class WebhookEvent(StrEnum):
    """Every event an endpoint may subscribe to (``AUTHGATE_WEBHOOKS[].events``)."""

    user_created = "user.created"
    user_verified = "user.verified"
    user_updated = "user.updated"
    user_deleted = "user.deleted"
    user_password_changed = "user.password_changed"  # noqa: S105 (an event name)
    session_created = "session.created"
    session_revoked = "session.revoked"
    mfa_enabled = "mfa.enabled"
    mfa_disabled = "mfa.disabled"


#: Sent only by ``authgate webhooks test URL``; nobody subscribes to it.
TEST_EVENT = "webhook.test"

#: Keys ``data`` may never have (matched anywhere in the key, case-insensitively).
_FORBIDDEN_KEY = re.compile(r"password|token|secret|code|hash", re.IGNORECASE)


def check_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` as a plain dict, or ``ValueError`` for a key that names a secret (nested too)."""
    for key, value in data.items():
        if _FORBIDDEN_KEY.search(key):
            raise ValueError(f"webhook data may not carry {key!r}")
        if isinstance(value, Mapping):
            check_data(value)
    return dict(data)


def user_data(user_id: uuid.UUID, email: str | None = None, **extra: Any) -> dict[str, Any]:
    """``data`` of a ``user.*`` event: the user, the address when the event is about it."""
    data: dict[str, Any] = {"user_id": str(user_id)}
    if email is not None:
        data["email"] = email
    return {**data, **extra}


def session_data(user_id: uuid.UUID, session_id: uuid.UUID, **extra: Any) -> dict[str, Any]:
    """``data`` of a ``session.*`` event: the user and the session (the ``sid`` claim)."""
    return {"user_id": str(user_id), "session_id": str(session_id), **extra}
