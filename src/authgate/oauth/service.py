"""OAuthService: sign in (and link accounts) with external identity providers.

The browser flow: ``start`` records a one-time ``state`` (keyed hash only) with the PKCE verifier
and nonce (encrypted, bound to the row) and a browser-binding cookie's keyed hash, and returns the
provider's authorization URL. ``callback`` checks the state, the cookie, spends the state with one
conditional UPDATE, exchanges the code, validates the ID token, finds or creates the user (see
``accounts``) and sends the browser back to the allowlisted ``redirect_url`` with a one-time
``ago_`` code (or ``?error=``). ``redeem`` turns that code into a session, or, for an account
with TOTP on, into a 403 ``mfa_required`` with an ``agm_`` token for ``POST /auth/mfa/verify``.

The one-time code is bound to the browser too: the callback replaces the binding cookie by a fresh
redemption cookie (same name, ``AUTHGATE_OAUTH_CODE_TTL``) whose keyed hash travels in the code's
``data``; ``POST /oauth/token`` without that cookie is refused and the code is spent all the same
(a code presented without its browser has leaked: it is burnt rather than left to be retried).
On https the cookies carry the ``__Host-`` prefix (Secure, ``Path=/``, no Domain: a sibling
subdomain cannot plant one); on http (development) they have no prefix and ``Path=/api/v1/oauth``.

Linking (``start_link``) first re-confirms the owner (``linking.LinkGuard``) and emails a notice,
and the completed link is emailed too.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import secrets
import uuid
from collections.abc import Mapping
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.action_tokens.service import ActionTokenService
from authgate.audit import AuditService, AuditType
from authgate.config import ProviderTokenClient, Settings
from authgate.core.db import security_write
from authgate.core.errors import Forbidden, InvalidToken, MfaRequired, NotFound
from authgate.core.http import ClientInfo
from authgate.core.security.crypto import DecryptionError, EncryptionService
from authgate.core.security.opaque import OpaqueTokens, TokenKind
from authgate.core.time import utc_now
from authgate.mfa.challenges import MfaChallenges
from authgate.models import ActionKind, AuthSession, OAuthIdentity, OAuthState, User
from authgate.oauth.accounts import AccountLinker
from authgate.oauth.errors import (
    FlowError,
    FlowFailure,
    InvalidIdToken,
    InvalidRedirectUrl,
    InvalidState,
    LastSignInMethod,
    ProviderError,
    ProviderUnavailable,
)
from authgate.oauth.flow import (
    STATE_TTL,
    CallbackParams,
    CookiePolicy,
    FlowEnd,
    FlowStart,
    ProviderTokenRead,
    Redeemed,
    binding_cookie_name,
    state_associated_data,
)
from authgate.oauth.idtoken import IdTokenValidator
from authgate.oauth.linking import LinkGuard
from authgate.oauth.providers import ProviderMetadata, ProviderProfile, ProviderRegistry, add_query
from authgate.oauth.repository import OAuthRepository
from authgate.oauth.vault import ProviderTokenVault
from authgate.sessions.service import SessionService
from authgate.users.emails import try_normalize_email
from authgate.users.repository import UserRepository
from authgate.webhooks.service import WebhookService

logger = logging.getLogger("authgate.oauth")

__all__ = [
    "STATE_TTL",
    "CallbackParams",
    "CookiePolicy",
    "FlowEnd",
    "FlowStart",
    "OAuthService",
    "Redeemed",
    "binding_cookie_name",
    "state_associated_data",
]


class OAuthService:
    """Sign-in and linking with external providers: starts the authorization code flow (PKCE,
    state, nonce, browser binding), handles the callback, redeems the one-time code and manages
    a user's connections.
    """

    def __init__(
        self,
        settings: Settings,
        providers: ProviderRegistry,
        vault: ProviderTokenVault,
        action_tokens: ActionTokenService,
        sessions: SessionService,
        opaque: OpaqueTokens,
        encryption: EncryptionService,
        audit: AuditService,
        users: UserRepository,
        link_guard: LinkGuard,
        mfa: MfaChallenges,
        repository: OAuthRepository | None = None,
        webhooks: WebhookService | None = None,
    ) -> None:
        self._mfa = mfa
        self._settings = settings
        self.providers = providers
        self.vault = vault
        self._action_tokens = action_tokens
        self._sessions = sessions
        self._opaque = opaque
        self._encryption = encryption
        self._audit = audit
        self._users = users
        self._repo = repository or OAuthRepository()
        self._id_tokens = IdTokenValidator(providers, settings.jwt_leeway)
        self._accounts = AccountLinker(settings, audit, users, self._repo, webhooks)
        self._link_guard = link_guard
        self.cookies = CookiePolicy.of(settings)

    # -- starting ---------------------------------------------------------------------------

    def check_redirect_url(self, redirect_url: str | None) -> str:
        """Exact string match against the allowlist: no prefixes, patterns or normalisation."""
        allowlist = self._settings.redirect_allowlist
        if redirect_url is None:
            if not allowlist:
                raise InvalidRedirectUrl("No redirect URL is configured.")
            return allowlist[0]
        if not any(hmac.compare_digest(redirect_url.encode(), a.encode()) for a in allowlist):
            raise InvalidRedirectUrl()
        return redirect_url

    async def start(
        self,
        db: AsyncSession,
        provider: str,
        redirect_url: str | None,
        *,
        link_user: User | None = None,
    ) -> FlowStart:
        """Start an authorization code flow (``GET /oauth/{provider}/authorize``).

        Stores a pending sign-in (the state's hash, the PKCE verifier and nonce encrypted, the
        browser-binding cookie's hash) and builds the provider's authorization URL.

        Args:
            db: The request's unit of work.
            provider: A configured provider's name.
            redirect_url: Where the browser returns to; must be in the allowlist exactly
                (None: the first entry).
            link_user: The signed-in user when the flow links a provider instead of signing in.

        Returns:
            The authorization URL and the binding cookie to set.

        Raises:
            NotFound: Unknown provider.
            InvalidRedirectUrl: ``redirect_url`` is not in ``AUTHGATE_ALLOWED_REDIRECT_URLS``.
            ProviderUnavailable: The provider's discovery document cannot be fetched.
        """
        self.providers.config(provider)  # 404 for an unknown provider
        target = self.check_redirect_url(redirect_url)
        try:
            meta = await self.providers.metadata(provider)
        except ProviderError as exc:
            logger.warning(
                "oauth.discovery_failed", extra={"provider": provider, "reason": str(exc)}
            )
            raise ProviderUnavailable() from None
        state, state_hash = self._opaque.new(TokenKind.oauth_state)
        binding = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        nonce = secrets.token_urlsafe(32) if meta.is_oidc else None
        now = utc_now()
        state_id = uuid.uuid4()
        sealed = json.dumps({"code_verifier": verifier, "nonce": nonce}).encode()
        db.add(
            OAuthState(
                id=state_id,
                state_hash=state_hash,
                binding_hash=self._opaque.hash(binding),
                provider=provider,
                redirect_url=target,
                secrets_ct=self._encryption.encrypt(sealed, state_associated_data(state_id)),
                key_id=self._encryption.current_kid,
                link_user_id=link_user.id if link_user is not None else None,
                created_at=now,
                expires_at=now + timedelta(seconds=STATE_TTL),
            )
        )
        url = self.providers.authorization_url(
            meta, state=state, code_verifier=verifier, nonce=nonce
        )
        return FlowStart(url, binding_cookie_name(state_hash, secure=self.cookies.secure), binding)

    async def start_link(
        self,
        db: AsyncSession,
        user: User,
        session: AuthSession,
        provider: str,
        password: str | None,
        redirect_url: str | None,
        client: ClientInfo,
    ) -> FlowStart:
        """Start connecting a provider to the signed-in account, once the owner re-confirmed
        (password, or a sign-in younger than 5 minutes without one); the owner is emailed."""
        self.providers.config(provider)
        self.check_redirect_url(redirect_url)
        await self._link_guard.confirm(user, session, password, client)
        start = await self.start(db, provider, redirect_url, link_user=user)
        await self._link_guard.notify_started(db, user, provider)
        self._audit.record(
            db,
            AuditType.oauth_link_started,
            user_id=user.id,
            session_id=session.id,
            client=client,
            detail={"provider": provider},
        )
        return start

    # -- the callback -----------------------------------------------------------------------

    async def callback(
        self,
        db: AsyncSession,
        provider: str,
        params: CallbackParams,
        cookies: dict[str, str],
        client: ClientInfo,
    ) -> FlowEnd:
        """Where the browser goes next. Raises InvalidState only when the state is unknown (then
        there is no trusted redirect URL); every other failure redirects with ``?error=``."""
        if not params.state or not OpaqueTokens.looks_like(TokenKind.oauth_state, params.state):
            raise InvalidState()
        state_hash = self._opaque.hash(params.state)
        row = await self._repo.state_by_hash(db, state_hash)
        if row is None:
            raise InvalidState()
        cookie_name = binding_cookie_name(state_hash, secure=self.cookies.secure)
        redemption: str | None = None
        try:
            location, redemption = await self._complete(
                db, provider, row, params, cookies.get(cookie_name), client
            )
        except FlowFailure as failure:
            logger.info(
                "oauth.callback.failed",
                extra={"provider": provider, "error": failure.code.value, "reason": failure.reason},
            )
            self._audit.record(
                db,
                AuditType.login_failed,
                client=client,
                user_id=row.link_user_id,
                detail={
                    "method": f"oauth:{provider}",
                    "error": failure.code.value,
                    "reason": failure.reason,
                },
            )
            location = add_query(row.redirect_url, {"error": failure.code.value})
        return FlowEnd(location, cookie_name, redemption)

    async def _complete(
        self,
        db: AsyncSession,
        provider: str,
        row: OAuthState,
        params: CallbackParams,
        binding: str | None,
        client: ClientInfo,
    ) -> tuple[str, str | None]:
        """The redirect location and, for a sign-in, the redemption binding for the cookie."""
        if binding is None or not hmac.compare_digest(
            self._opaque.hash(binding).encode(), row.binding_hash.encode()
        ):
            raise FlowFailure(FlowError.invalid_state, "browser binding cookie missing or wrong")
        if not await self._repo.spend_state(db, row.id, provider, utc_now()):
            raise FlowFailure(
                FlowError.invalid_state, "state used, expired or for another provider"
            )
        if params.error is not None:
            code = (
                FlowError.access_denied
                if params.error == "access_denied"
                else FlowError.provider_error
            )
            raise FlowFailure(code, f"provider error: {params.error[:64]}")
        if not params.code:
            raise FlowFailure(FlowError.invalid_request, "no code")
        try:
            meta = await self.providers.metadata(provider)
        except ProviderError as exc:
            raise FlowFailure(FlowError.provider_error, str(exc)) from None
        # RFC 9207 (mix-up defence): the authorization response names its issuer.
        if (
            meta.is_oidc
            and (params.iss is not None or meta.sends_iss_parameter)
            and params.iss != meta.issuer
        ):
            raise FlowFailure(FlowError.invalid_request, "iss parameter mismatch")
        verifier, nonce = self._unseal(row)
        try:
            token = await self.providers.exchange_code(meta, params.code, verifier)
            profile = await self._profile(meta, token, nonce, row)
        except ProviderError as exc:
            raise FlowFailure(FlowError.provider_error, str(exc)) from None
        email = try_normalize_email(profile.email) if profile.email else None
        redemption: str | None = None
        try:
            async with db.begin_nested():
                if row.link_user_id is not None:
                    user, identity = await self._accounts.link(
                        db, row.link_user_id, provider, profile, email
                    )
                else:
                    user, identity = await self._accounts.sign_in(
                        db, provider, profile, email, client
                    )
                await self.vault.store(
                    db, user_id=user.id, identity_id=identity.id, provider=provider, token=token
                )
                if row.link_user_id is not None:
                    self._audit.record(
                        db,
                        AuditType.oauth_linked,
                        user_id=user.id,
                        client=client,
                        detail={"provider": provider},
                    )
                    await self._link_guard.notify_linked(db, user, provider)
                    location = add_query(row.redirect_url, {"linked": provider})
                else:
                    redemption = secrets.token_urlsafe(32)
                    one_time = await self._action_tokens.issue(
                        db,
                        ActionKind.oauth_code,
                        user.id,
                        self._settings.oauth_code_ttl,
                        data={
                            "provider": provider,
                            "binding": self._opaque.hash(redemption),
                            "cookie": binding_cookie_name(
                                row.state_hash, secure=self.cookies.secure
                            ),
                        },
                    )
                    self._audit.record(
                        db,
                        AuditType.oauth_login,
                        user_id=user.id,
                        client=client,
                        detail={"provider": provider},
                    )
                    location = add_query(row.redirect_url, {"code": one_time})
                await db.flush()
        except IntegrityError:
            # A concurrent sign-in created the same identity or address first.
            raise FlowFailure(FlowError.server_error, "concurrent sign-in") from None
        return location, redemption

    def _unseal(self, row: OAuthState) -> tuple[str, str | None]:
        try:
            data: dict[str, Any] = json.loads(
                self._encryption.decrypt(row.secrets_ct, state_associated_data(row.id))
            )
        except (DecryptionError, ValueError):
            raise FlowFailure(FlowError.server_error, "state secrets unreadable") from None
        return str(data["code_verifier"]), data.get("nonce")

    async def _profile(
        self, meta: ProviderMetadata, token: dict[str, Any], nonce: str | None, row: OAuthState
    ) -> ProviderProfile:
        if not meta.is_oidc:
            return await self.providers.github_profile(meta, token["access_token"])
        id_token = token.get("id_token")
        if not isinstance(id_token, str) or nonce is None:
            raise FlowFailure(FlowError.invalid_id_token, "no ID token")
        try:
            access_token = token.get("access_token")
            claims = await self._id_tokens.validate(
                meta,
                id_token,
                nonce=nonce,
                not_before=row.created_at,
                access_token=access_token if isinstance(access_token, str) else None,
            )
        except InvalidIdToken as exc:
            raise FlowFailure(FlowError.invalid_id_token, f"ID token: {exc}") from None
        if "email" not in claims and meta.userinfo_endpoint is not None:
            info = await self.providers.userinfo(meta, token["access_token"])
            # OIDC Core §5.3.2: the UserInfo sub must be the ID token's, else ignore the response.
            if info.get("sub") != claims["sub"]:
                raise FlowFailure(FlowError.invalid_id_token, "userinfo sub mismatch")
            claims = {**info, **claims}
        email = claims.get("email")
        name = claims.get("name")
        return ProviderProfile(
            subject=claims["sub"],
            email=email if isinstance(email, str) else None,
            # Only an explicit boolean true counts as verified.
            email_verified=claims.get("email_verified") is True,
            name=name[:200] if isinstance(name, str) else None,
        )

    # -- the one-time code ------------------------------------------------------------------

    async def redeem(
        self, db: AsyncSession, code: str, cookies: Mapping[str, str], client: ClientInfo
    ) -> Redeemed:
        """Spend the code, then check the browser's redemption cookie: without the right one the
        code stays spent (a security write) and the answer is 400 ``invalid_token`` like any bad code."""
        spent = await self._action_tokens.consume(db, ActionKind.oauth_code, code)
        data = spent.data or {}
        cookie_name = str(data.get("cookie", ""))
        expected = str(data.get("binding", ""))
        presented = cookies.get(cookie_name) if cookie_name else None
        if (
            not expected
            or presented is None
            or not hmac.compare_digest(self._opaque.hash(presented).encode(), expected.encode())
        ):
            logger.info("oauth.code.unbound", extra={"user_id": str(spent.user_id)})
            await security_write(db, partial(self._burn_unbound_code, code, spent.user_id, client))
            raise InvalidToken()
        user = await self._users.by_id(db, spent.user_id)
        if user is None or not user.is_active or not user.email_verified:
            raise InvalidToken()
        provider = str(data.get("provider", "unknown"))
        method = f"oauth:{provider}"
        if await self._mfa.required(db, user.id):
            # No session yet: the code stays spent and a challenge stands in for the session.
            token = await security_write(
                db, partial(self._challenge_instead, code, user.id, method, client)
            )
            if token is None:
                raise InvalidToken()
            raise MfaRequired(token)
        # RFC 8176 has no value for "signed in at another identity provider"; "fed" (federated
        # authentication) is what Microsoft Entra ID issues for one. Opened before last_login_at
        # moves: the new-sign-in alert reads it (SessionService.open).
        issued = await self._sessions.open(db, user, client, method=method, amr=("fed",))
        await self._users.set_last_login(db, user, utc_now())
        self._audit.record(
            db,
            AuditType.login_succeeded,
            user_id=user.id,
            session_id=issued.session_id,
            client=client,
            detail={"method": f"oauth:{provider}"},
        )
        return Redeemed(issued, cookie_name)

    async def _challenge_instead(
        self, code: str, user_id: uuid.UUID, method: str, client: ClientInfo, db: AsyncSession
    ) -> str | None:
        """The security write of a redemption that needs a second factor: the code is spent
        again (the rollback undid it) and an ``agm_`` challenge is made; None when a concurrent
        redemption spent the code in between (then this one gets nothing)."""
        try:
            await self._action_tokens.consume(db, ActionKind.oauth_code, code)
        except InvalidToken:
            return None
        return await self._mfa.challenge(db, user_id, method, client)

    async def _burn_unbound_code(
        self, code: str, user_id: uuid.UUID, client: ClientInfo, db: AsyncSession
    ) -> None:
        # Spent again in the security write's own transaction; if a concurrent redemption spent
        # it in between, it is burnt all the same.
        with contextlib.suppress(InvalidToken):
            await self._action_tokens.consume(db, ActionKind.oauth_code, code)
        self._audit.record(
            db,
            AuditType.login_failed,
            user_id=user_id,
            client=client,
            detail={"method": "oauth", "reason": "code_without_its_browser"},
        )

    # -- the provider-token vault, for the product's back-end services ----------------------

    async def read_provider_token(
        self,
        db: AsyncSession,
        caller: ProviderTokenClient,
        user_id: uuid.UUID,
        provider: str,
        client: ClientInfo,
    ) -> ProviderTokenRead:
        """The user's valid access token at ``provider`` for a provider-token client: 404 for
        an unknown provider, 403 ``forbidden`` for a provider not listed for the client. The
        read is audited with the client id."""
        self.providers.config(provider)
        if provider not in caller.providers:
            logger.warning(
                "oauth.provider_token.forbidden",
                extra={"caller": caller.client_id, "provider": provider},
            )
            raise Forbidden("This client may not read tokens of this provider.")
        access = await self.vault.get_valid_access_token(
            db, user_id, provider, client=client, caller=caller.client_id
        )
        info = await self.vault.token_info(db, user_id, provider)
        return ProviderTokenRead(
            access_token=access,
            token_type=info.token_type if info and info.token_type else "Bearer",
            expires_at=info.expires_at if info else None,
            scope=info.scope if info else None,
        )

    # -- connections ------------------------------------------------------------------------

    async def connections(self, db: AsyncSession, user: User) -> list[OAuthIdentity]:
        """The user's provider connections (``GET /oauth/connections``).

        Args:
            db: The request's unit of work.
            user: The signed-in user.

        Returns:
            One identity per connected provider.
        """
        return await self._repo.identities_of_user(db, user.id)

    async def unlink(self, db: AsyncSession, user: User, provider: str, client: ClientInfo) -> None:
        """Remove a connection, refusing to remove the last way to sign in."""
        # Serialise concurrent unlinks of one user (PostgreSQL; SQLite has one writer anyway).
        await self._users.lock(db, user.id)
        identity = await self._repo.identity_of_user(db, user.id, provider)
        if identity is None:
            raise NotFound("No such connection.")
        if user.password_hash is None and await self._repo.count_identities(db, user.id) <= 1:
            raise LastSignInMethod()
        await self.vault.revoke(db, user.id, provider, client)
        await self._repo.delete_identity(db, identity.id)
        self._audit.record(
            db,
            AuditType.oauth_unlinked,
            user_id=user.id,
            client=client,
            detail={"provider": provider},
        )
