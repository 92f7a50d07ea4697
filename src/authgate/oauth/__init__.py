"""Sign-in with external OAuth 2.0 / OpenID Connect providers, and the vault for their tokens."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authgate.action_tokens.service import ActionTokenService
from authgate.audit import AuditService
from authgate.config import Settings
from authgate.core.email import EmailService
from authgate.core.security.crypto import EncryptionService
from authgate.core.security.opaque import OpaqueTokens
from authgate.core.security.passwords import PasswordService
from authgate.core.throttle import LoginThrottle
from authgate.mfa.challenges import MfaChallenges
from authgate.oauth.linking import LinkGuard
from authgate.oauth.providers import ProviderRegistry
from authgate.oauth.service import OAuthService
from authgate.oauth.vault import ProviderTokenVault
from authgate.sessions.service import SessionService
from authgate.users.repository import UserRepository
from authgate.webhooks.service import WebhookService

__all__ = ["OAuthService", "ProviderRegistry", "ProviderTokenVault", "build_oauth"]


def build_oauth(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    encryption: EncryptionService,
    opaque: OpaqueTokens,
    audit: AuditService,
    sessions: SessionService,
    action_tokens: ActionTokenService,
    users: UserRepository,
    passwords: PasswordService,
    throttle: LoginThrottle,
    email: EmailService,
    mfa: MfaChallenges,
    webhooks: WebhookService | None = None,
) -> OAuthService:
    """The OAuth service and its collaborators (called by ``Runtime.build``).

    ``OAuthService.vault`` is the ProviderTokenVault (the encrypted provider tokens)."""
    providers = ProviderRegistry(settings)
    vault = ProviderTokenVault(sessionmaker, encryption, audit, providers)
    return OAuthService(
        settings,
        providers,
        vault,
        action_tokens,
        sessions,
        opaque,
        encryption,
        audit,
        users,
        LinkGuard(passwords, throttle, email),
        mfa,
        webhooks=webhooks,
    )
