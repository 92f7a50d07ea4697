"""Everything a running process holds, built from Settings by ``create_app`` (or the worker/CLI)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from authgate.action_tokens.service import ActionTokenService
from authgate.audit import AuditService
from authgate.auth.service import AuthService
from authgate.config import Settings
from authgate.core.db import make_engine, make_sessionmaker
from authgate.core.email import EmailDispatcher, EmailService, make_backend
from authgate.core.http import ClientResolver
from authgate.core.ratelimit import RateLimiter
from authgate.core.security import secrets
from authgate.core.security.breaches import BreachChecker, make_breach_http_client
from authgate.core.security.crypto import EncryptionService
from authgate.core.security.jwt import JWTService
from authgate.core.security.keys import SigningKeyRing
from authgate.core.security.opaque import OpaqueTokens
from authgate.core.security.passwords import PasswordService
from authgate.core.store import Store, make_store
from authgate.core.throttle import LoginThrottle
from authgate.housekeeping import Housekeeper
from authgate.mfa.challenges import MfaChallenges
from authgate.mfa.factors import SecondFactor
from authgate.mfa.service import MfaService
from authgate.oauth import OAuthService, ProviderTokenVault, build_oauth
from authgate.oauth.repository import OAuthRepository
from authgate.passkeys.service import PasskeyService
from authgate.password_reset.service import PasswordResetService
from authgate.sessions.access import PrincipalCache
from authgate.sessions.revocation import ServiceNotBefore
from authgate.sessions.service import SessionService
from authgate.users.passwords import PasswordSetter
from authgate.users.reconfirm import PasswordReconfirmation
from authgate.users.repository import UserRepository
from authgate.users.service import UserService
from authgate.users.takeover import AddressProven
from authgate.verification.service import VerificationService
from authgate.webhooks.dispatcher import WebhookDispatcher
from authgate.webhooks.service import WebhookService

if TYPE_CHECKING:
    from authgate.auth.transport import CookieRules

logger = logging.getLogger("authgate.runtime")


#: Seconds each step of ``Runtime.close()`` may take beyond the component's own stop budget.
CLOSE_STEP_TIMEOUT = 5.0

#: Close steps that overran: cancelled but not awaited; held here until they end.
_abandoned: set[asyncio.Task[None]] = set()


def _forget(task: asyncio.Task[None]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: its overrun was logged already


async def _bounded(
    name: str, step: Callable[[], Awaitable[None]], bound: float
) -> Exception | None:
    """Run one close step for at most ``bound`` seconds; its error, if it raised one.

    The step runs as a task of its own and is waited for with ``asyncio.wait``, which returns
    on time even when the step ignores (or loses) its cancellation; ``asyncio.timeout`` would
    wait for the cancelled step to end.
    """

    async def run() -> None:
        await step()

    task = asyncio.create_task(run(), name=f"runtime-close:{name}")
    try:
        done, _ = await asyncio.wait({task}, timeout=bound)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        _abandoned.add(task)
        task.add_done_callback(_forget)
        logger.warning("runtime.close.timed_out", extra={"component": name, "timeout": bound})
        return None
    if task.cancelled():
        logger.warning("runtime.close.cancelled", extra={"component": name})
        return None
    error = task.exception()
    if error is None:
        return None
    logger.error("runtime.close.failed", extra={"component": name, "error": type(error).__name__})
    if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit: not ours to hold
        raise error
    return error


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    ring: SigningKeyRing
    jwt: JWTService
    passwords: PasswordService
    opaque: OpaqueTokens
    encryption: EncryptionService
    email: EmailService
    dispatcher: EmailDispatcher | None
    webhooks: WebhookService
    audit: AuditService
    users_repo: UserRepository
    sessions: SessionService
    action_tokens: ActionTokenService
    verification: VerificationService
    password_reset: PasswordResetService
    auth: AuthService
    users: UserService
    clients: ClientResolver
    store: Store
    limiter: RateLimiter
    throttle: LoginThrottle
    oauth: OAuthService
    mfa: MfaService
    mfa_challenges: MfaChallenges
    passkeys: PasskeyService
    provider_tokens: ProviderTokenVault
    housekeeper: Housekeeper
    #: The service-wide not-before of access tokens (revoke-all), polled from the store.
    not_before: ServiceNotBefore
    #: The one client of the breached-password range API (None while the check is off).
    breach_http: httpx.AsyncClient | None = None
    #: Delivers the webhook outbox where mail is delivered (None without endpoints).
    webhook_dispatcher: WebhookDispatcher | None = None

    @functools.cached_property
    def cookie_rules(self) -> CookieRules:
        """The refresh cookie's attributes and the origins that may use it (``auth.transport``)."""
        from authgate.auth.transport import CookieRules

        return CookieRules.of(self.settings)

    @classmethod
    def build(cls, settings: Settings, *, with_dispatcher: bool | None = None) -> Runtime:
        problems = settings.production_problems() if settings.is_production else []
        if problems:
            raise RuntimeError("refusing to start in production: " + "; ".join(problems))
        engine = make_engine(settings)
        maker = make_sessionmaker(engine)
        ring = SigningKeyRing.from_settings(settings)
        jwt = JWTService(settings, ring)
        breach_http = make_breach_http_client() if settings.checks_breaches else None
        passwords = PasswordService(
            settings,
            breaches=BreachChecker(settings, breach_http) if breach_http is not None else None,
        )
        secret_key = secrets.secret_key(settings)
        opaque = OpaqueTokens(secret_key)
        encryption = EncryptionService(secrets.encryption_keys(settings))
        store = make_store(settings)
        limiter = RateLimiter(settings, store)
        email = EmailService(settings, encryption, limiter=limiter)
        dispatch = settings.email_dispatcher_enabled if with_dispatcher is None else with_dispatcher
        dispatcher = (
            EmailDispatcher(settings, maker, email, make_backend(settings)) if dispatch else None
        )
        webhooks = WebhookService.from_settings(settings, encryption)
        audit = AuditService()
        throttle = LoginThrottle(settings, store, limiter=limiter, device_secret=secret_key)
        principals = PrincipalCache(settings.access_cache_ttl)
        # Every change of a user goes through the repository, which drops the user's cached
        # principal snapshots in this process at once.
        users_repo = UserRepository(on_changed=principals.forget_user)
        action_tokens = ActionTokenService(opaque)
        not_before = ServiceNotBefore(
            store, maker, principals, shared=settings.redis_url is not None
        )
        sessions = SessionService(
            settings,
            jwt,
            opaque,
            audit,
            email,
            store,
            principals,
            action_tokens=action_tokens,
            users=users_repo,
            webhooks=webhooks,
            not_before=not_before,
        )
        oauth_repository = OAuthRepository()
        address_proven = AddressProven(
            users_repo,
            action_tokens,
            sessions,
            audit,
            identities=oauth_repository,
            webhooks=webhooks,
        )
        verification = VerificationService(
            settings,
            action_tokens,
            email,
            audit,
            users_repo,
            on_address_proven=address_proven,
            webhooks=webhooks,
        )
        password_setter = PasswordSetter(
            passwords,
            action_tokens,
            email,
            users_repo,
            connections=oauth_repository,
            webhooks=webhooks,
        )
        password_reset = PasswordResetService(
            settings,
            action_tokens,
            password_setter,
            sessions,
            email,
            audit,
            users_repo,
            throttle,
            on_address_proven=address_proven,
        )
        factors = SecondFactor(encryption, opaque)
        mfa = MfaService(
            settings,
            factors,
            sessions,
            email,
            audit,
            PasswordReconfirmation(passwords, throttle),
            webhooks=webhooks,
        )
        mfa_challenges = MfaChallenges(settings, opaque, factors, audit, users_repo, throttle)
        passkeys = PasskeyService(settings, opaque, audit, email)
        auth = AuthService(
            settings,
            passwords,
            sessions,
            verification,
            password_reset,
            email,
            audit,
            users_repo,
            limiter,
            throttle,
            mfa_challenges,
            passkeys,
            webhooks=webhooks,
        )
        oauth = build_oauth(
            settings,
            maker,
            encryption=encryption,
            opaque=opaque,
            audit=audit,
            sessions=sessions,
            action_tokens=action_tokens,
            users=users_repo,
            passwords=passwords,
            throttle=throttle,
            email=email,
            mfa=mfa_challenges,
            webhooks=webhooks,
        )
        users = UserService(
            passwords,
            sessions,
            verification,
            password_setter,
            audit,
            users_repo,
            limiter,
            throttle,
            provider_tokens=oauth.vault,
            webhooks=webhooks,
        )
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=maker,
            ring=ring,
            jwt=jwt,
            passwords=passwords,
            opaque=opaque,
            encryption=encryption,
            email=email,
            dispatcher=dispatcher,
            webhooks=webhooks,
            audit=audit,
            users_repo=users_repo,
            sessions=sessions,
            action_tokens=action_tokens,
            verification=verification,
            password_reset=password_reset,
            auth=auth,
            users=users,
            clients=ClientResolver(settings),
            store=store,
            limiter=limiter,
            throttle=throttle,
            oauth=oauth,
            mfa=mfa,
            mfa_challenges=mfa_challenges,
            passkeys=passkeys,
            provider_tokens=oauth.vault,
            housekeeper=Housekeeper(maker),
            not_before=not_before,
            breach_http=breach_http,
            webhook_dispatcher=(
                WebhookDispatcher(settings, maker, webhooks) if webhooks.enabled else None
            ),
        )

    async def start(self) -> None:
        # Every process that checks access tokens keeps the revoke-all instant current.
        await self.not_before.start()
        if self.dispatcher is not None:
            await self.dispatcher.start()
            # Housekeeping and webhooks run where mail is delivered: `serve` with the
            # dispatcher, or `worker`.
            await self.housekeeper.start()
            await self.start_webhook_delivery()

    async def start_webhook_delivery(self) -> None:
        """Deliver the webhook outbox from this process (``serve`` with its dispatcher, or
        ``authgate worker``); nothing without endpoints."""
        if self.webhook_dispatcher is not None:
            await self.webhook_dispatcher.start()

    async def close(self, *, step_timeout: float = CLOSE_STEP_TIMEOUT) -> None:
        """Stop the background loops, then release the pools, clients and the engine.

        Every step runs, each bounded: ``step_timeout`` seconds beyond the component's own stop
        budget (the dispatchers let in-flight deliveries finish first). A step that overruns
        is cancelled, left behind and logged (``runtime.close.timed_out``, ``component=…``); a
        step that fails is logged (``runtime.close.failed``) and its error raised once every
        other step has run. So ``close()`` always ends, and a stuck component can neither
        keep another's loop running nor the engine open.
        """
        steps: list[tuple[str, Callable[[], Awaitable[None]], float]] = [
            ("not_before", self.not_before.stop, 0.0),
            ("housekeeper", self.housekeeper.stop, 0.0),
        ]
        if self.webhook_dispatcher is not None:
            dispatcher = self.webhook_dispatcher
            steps.append(("webhook_dispatcher", dispatcher.stop, dispatcher.stop_timeout))
        if self.dispatcher is not None:
            steps.append(("email_dispatcher", self.dispatcher.stop, self.dispatcher.stop_timeout))
        steps.append(("passwords", self.passwords.close, 0.0))
        if self.breach_http is not None:
            steps.append(("breach_http", self.breach_http.aclose, 0.0))
        steps.append(("store", self.store.close, 0.0))
        steps.append(("engine", self.engine.dispose, 0.0))
        errors = [
            error
            for name, step, budget in steps
            if (error := await _bounded(name, step, budget + step_timeout)) is not None
        ]
        if errors:
            raise errors[0]
