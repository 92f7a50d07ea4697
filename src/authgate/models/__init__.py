"""Every ORM model; Alembic imports this package to see the whole schema."""

from authgate.core.db import Base
from authgate.models.action_token import ActionKind, ActionToken
from authgate.models.audit_event import AuditEvent
from authgate.models.auth_session import AuthSession
from authgate.models.email_outbox import EmailOutbox, OutboxStatus
from authgate.models.mfa_challenge import MfaChallenge
from authgate.models.oauth_identity import OAuthIdentity
from authgate.models.oauth_state import OAuthState
from authgate.models.passkey import Passkey
from authgate.models.provider_token import ProviderToken
from authgate.models.recovery_code import RecoveryCode
from authgate.models.refresh_token import RefreshToken
from authgate.models.service_revocation import ServiceRevocation
from authgate.models.sign_in_pair import SignInPair
from authgate.models.totp_secret import TotpSecret
from authgate.models.user import User
from authgate.models.webauthn_challenge import WebAuthnChallenge
from authgate.models.webhook_outbox import WebhookOutbox, WebhookStatus

__all__ = [
    "ActionKind",
    "ActionToken",
    "AuditEvent",
    "AuthSession",
    "Base",
    "EmailOutbox",
    "MfaChallenge",
    "OAuthIdentity",
    "OAuthState",
    "OutboxStatus",
    "Passkey",
    "ProviderToken",
    "RecoveryCode",
    "RefreshToken",
    "ServiceRevocation",
    "SignInPair",
    "TotpSecret",
    "User",
    "WebAuthnChallenge",
    "WebhookOutbox",
    "WebhookStatus",
]
