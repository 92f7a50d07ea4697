"""OAuthService: sign in (and link accounts) with external identity providers.

The browser flow: ``start`` records a one-time ``state`` (keyed hash only) with the PKCE verifier
and nonce (encrypted, bound to the row) and a browser-binding cookie's keyed hash, and returns the
provider's authorization URL. ``callback`` checks the state, the cookie, spends the state with one
conditional UPDATE, exchanges the code, validates the ID token, finds or creates the user (see
``accounts``) and sends the browser back to the allowlisted ``redirect_url`` with a one-time
``ago_`` code (or ``?error=``). ``redeem`` turns that code into a session.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.action_tokens.service import ActionTokenService
from authgate.audit import AuditService, AuditType
from authgate.config import Settings
from authgate.core.errors import InvalidToken, NotFound
from authgate.core.http import ClientInfo
from authgate.core.security.crypto import DecryptionError, EncryptionService
from authgate.core.security.opaque import OpaqueTokens, TokenKind
from authgate.core.time import utc_now
from authgate.models import ActionKind, OAuthIdentity, OAuthState, User
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
from authgate.oauth.idtoken import IdTokenValidator
from authgate.oauth.providers import ProviderMetadata, ProviderProfile, ProviderRegistry, add_query
from authgate.oauth.repository import OAuthRepository
from authgate.oauth.tokens import TokenService
from authgate.sessions.service import IssuedTokens, SessionService
from authgate.users.emails import try_normalize_email
from authgate.users.repository import UserRepository

logger = logging.getLogger("authgate.oauth")

#: How long a started sign-in may take at the provider (state row and binding cookie).
STATE_TTL = 600
COOKIE_PATH = "/api/v1/oauth"
COOKIE_PREFIX = "ag_oauth_"


def state_associated_data(state_id: uuid.UUID) -> bytes:
    return f"oauth_state:{state_id}".encode()


def binding_cookie_name(state_hash: str) -> str:
    """One cookie per pending sign-in, so two tabs do not overwrite each other's binding."""
    return COOKIE_PREFIX + state_hash[:16]


@dataclass(frozen=True, slots=True)
class FlowStart:
    authorization_url: str
    cookie_name: str
    cookie_value: str


@dataclass(frozen=True, slots=True)
class FlowEnd:
    location: str
    #: The binding cookie to clear (None when the state was unknown).
    cookie_name: str | None


@dataclass(frozen=True, slots=True)
class CallbackParams:
    state: str | None
    code: str | None
    error: str | None
    iss: str | None


class OAuthService:
    def __init__(
        self,
        settings: Settings,
        providers: ProviderRegistry,
        tokens: TokenService,
        action_tokens: ActionTokenService,
        sessions: SessionService,
        opaque: OpaqueTokens,
        encryption: EncryptionService,
        audit: AuditService,
        users: UserRepository,
        repository: OAuthRepository | None = None,
    ) -> None:
        self._settings = settings
        self.providers = providers
        self.tokens = tokens
        self._action_tokens = action_tokens
        self._sessions = sessions
        self._opaque = opaque
        self._encryption = encryption
        self._audit = audit
        self._users = users
        self._repo = repository or OAuthRepository()
        self._id_tokens = IdTokenValidator(providers, settings.jwt_leeway)
        self._accounts = AccountLinker(settings, audit, users, self._repo)

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
        return FlowStart(url, binding_cookie_name(state_hash), binding)

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
        cookie_name = binding_cookie_name(state_hash)
        try:
            location = await self._complete(
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
        return FlowEnd(location, cookie_name)

    async def _complete(
        self,
        db: AsyncSession,
        provider: str,
        row: OAuthState,
        params: CallbackParams,
        binding: str | None,
        client: ClientInfo,
    ) -> str:
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
                await self.tokens.store(
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
                    location = add_query(row.redirect_url, {"linked": provider})
                else:
                    one_time = await self._action_tokens.issue(
                        db,
                        ActionKind.oauth_code,
                        user.id,
                        self._settings.oauth_code_ttl,
                        data={"provider": provider},
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
        return location

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

    async def redeem(self, db: AsyncSession, code: str, client: ClientInfo) -> IssuedTokens:
        spent = await self._action_tokens.consume(db, ActionKind.oauth_code, code)
        user = await self._users.by_id(db, spent.user_id)
        if user is None or not user.is_active:
            raise InvalidToken()
        provider = str((spent.data or {}).get("provider", "unknown"))
        issued = await self._sessions.open(db, user, client, method=f"oauth:{provider}")
        await self._users.set_last_login(db, user, utc_now())
        self._audit.record(
            db,
            AuditType.login_succeeded,
            user_id=user.id,
            session_id=issued.session_id,
            client=client,
            detail={"method": f"oauth:{provider}"},
        )
        return issued

    # -- connections ------------------------------------------------------------------------

    async def connections(self, db: AsyncSession, user: User) -> list[OAuthIdentity]:
        return await self._repo.identities_of_user(db, user.id)

    async def unlink(self, db: AsyncSession, user: User, provider: str, client: ClientInfo) -> None:
        """Remove a connection, refusing to remove the last way to sign in."""
        # Serialise concurrent unlinks of one user (PostgreSQL; SQLite has one writer anyway).
        await db.execute(select(User.id).where(User.id == user.id).with_for_update())
        identity = await self._repo.identity_of_user(db, user.id, provider)
        if identity is None:
            raise NotFound("No such connection.")
        if user.password_hash is None and await self._repo.count_identities(db, user.id) <= 1:
            raise LastSignInMethod()
        await self.tokens.revoke(db, user.id, provider, client)
        await self._repo.delete_identity(db, identity.id)
        self._audit.record(
            db,
            AuditType.oauth_unlinked,
            user_id=user.id,
            client=client,
            detail={"provider": provider},
        )
