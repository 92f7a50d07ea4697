"""Every ORM model; Alembic imports this package to see the whole schema."""

from authgate.core.db import Base
from authgate.models.action_token import ActionKind, ActionToken
from authgate.models.audit_event import AuditEvent
from authgate.models.auth_session import AuthSession
from authgate.models.email_outbox import EmailOutbox, OutboxStatus
from authgate.models.oauth_identity import OAuthIdentity
from authgate.models.oauth_state import OAuthState
from authgate.models.provider_token import ProviderToken
from authgate.models.refresh_token import RefreshToken
from authgate.models.user import User
from authgate.models.webhook_outbox import WebhookOutbox, WebhookStatus

__all__ = [
    "ActionKind",
    "ActionToken",
    "AuditEvent",
    "AuthSession",
    "Base",
    "EmailOutbox",
    "OAuthIdentity",
    "OAuthState",
    "OutboxStatus",
    "ProviderToken",
    "RefreshToken",
    "User",
    "WebhookOutbox",
    "WebhookStatus",
]
