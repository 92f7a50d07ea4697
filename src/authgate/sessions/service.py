"""Sessions as refresh-token families: open, rotate with reuse detection, revoke.

A session is one sign-in; its refresh tokens form a chain (each spent token names its parent).
Refresh spends the presented token with one atomic conditional UPDATE and issues its successor.
Presenting a spent token again is reuse (RFC 9700 §4.14.2): the whole session is revoked, so
its refresh *and* access tokens stop working — unless AUTHGATE_REFRESH_REUSE_GRACE allows the
replay of the *just*-rotated token, in which case the same successor pair is handed back. The
successor is derived from its parent with the server key (``OpaqueTokens.derive``), so handing it
back again never needs a raw token in the database.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authgate.action_tokens.service import ActionTokenService
from authgate.audit import AuditService, AuditType
from authgate.config import Settings
from authgate.core.db import security_write
from authgate.core.email import EmailService, EmailTemplate
from authgate.core.errors import (
    InvalidAccessToken,
    InvalidRefreshToken,
    NotAuthenticated,
    NotFound,
    ServiceUnavailable,
    TokenExpired,
)
from authgate.core.http import ClientInfo
from authgate.core.metrics import REFRESHES, TOKEN_REUSE
from authgate.core.security.jwt import AccessClaims, JWTService
from authgate.core.security.opaque import OpaqueTokens, TokenKind
from authgate.core.store import Store, StoreUnavailable
from authgate.core.time import utc_now
from authgate.models import ActionKind, AuthSession, User
from authgate.sessions.access import PrincipalCache, PrincipalSnapshot, VerifiedTokens
from authgate.sessions.repository import SessionRepository, SessionView, split_amr
from authgate.sessions.revocation import ServiceNotBefore
from authgate.sign_in_alerts.service import SignInAlerts
from authgate.users.repository import UserRepository
from authgate.webhooks import WebhookEvent, session_data
from authgate.webhooks.service import WebhookService

logger = logging.getLogger("authgate.sessions")

_SUCCESSOR = "refresh-successor"
#: An RFC 8176 method reference as stored (space-separated in a String(64) column).
_AMR_VALUE = re.compile(r"[A-Za-z0-9_.:-]{1,32}")


@dataclass(frozen=True, slots=True)
class TokenIntrospection:
    """An RFC 7662 answer; an inactive token has nothing but ``active``."""

    active: bool
    sub: str | None = None
    exp: int | None = None
    iat: int | None = None
    sid: str | None = None
    scope: str | None = None
    amr: list[str] | None = None
    roles: list[str] | None = None
    token_type: str | None = None
    client_id: str | None = None
    iss: str | None = None
    aud: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    claims: AccessClaims
    refresh_token: str
    refresh_expires_at: datetime
    session_id: uuid.UUID

    def expires_in(self) -> int:
        return self.claims.exp - self.claims.iat

    def refresh_expires_in(self) -> int:
        return max(0, math.floor((self.refresh_expires_at - utc_now()).total_seconds()))


class SessionService:
    """Sessions as refresh-token families: opens them, rotates their refresh tokens with reuse
    detection, checks access tokens against them and ends them (see the module docstring).
    """

    def __init__(
        self,
        settings: Settings,
        jwt: JWTService,
        opaque: OpaqueTokens,
        audit: AuditService,
        email: EmailService,
        store: Store,
        principals: PrincipalCache,
        repository: SessionRepository | None = None,
        *,
        action_tokens: ActionTokenService,
        users: UserRepository,
        webhooks: WebhookService | None = None,
        not_before: ServiceNotBefore,
    ) -> None:
        self._webhooks = webhooks or WebhookService.disabled()
        self._settings = settings
        self._not_before = not_before
        self._action_tokens = action_tokens
        self._store = store
        self._principals = principals
        self._tokens = VerifiedTokens(jwt, settings.verified_token_cache_size, settings.jwt_leeway)
        self._jwt = jwt
        self._opaque = opaque
        self._audit = audit
        self._email = email
        self._repo = repository or SessionRepository()
        self._users = users
        self._alerts = SignInAlerts(settings, opaque, email)

    # -- opening and refreshing ------------------------------------------------------------

    async def open(
        self,
        db: AsyncSession,
        user: User,
        client: ClientInfo,
        *,
        method: str,
        amr: Sequence[str],
    ) -> IssuedTokens:
        """A sign-in: a new session whose access tokens carry ``amr`` (RFC 8176: ``("pwd",)``,
        ``("pwd", "otp", "mfa")``, ``("fed",)`` …) for its whole life, refreshes included.

        Every way of signing in ends here, once every factor is checked: it records the
        client's IP + User-Agent pair and queues the new-sign-in mail when the pair is new to
        the account (``sign_in_alerts``). Call it *before* ``UserRepository.set_last_login``:
        an account whose ``last_login_at`` is still None is signing in for the first time and
        gets no alert."""
        return await self._open(db, user, client, method, amr, alert=True)

    async def reopen(
        self, db: AsyncSession, user: User, previous: AuthSession, client: ClientInfo
    ) -> IssuedTokens:
        """The signed-in user goes on in a fresh session (a password change ends every session,
        the caller's too): the method and ``amr`` of ``previous``, and no new-sign-in alert, as
        nobody signed in."""
        return await self._open(
            db, user, client, previous.auth_method, split_amr(previous.amr), alert=False
        )

    async def _open(
        self,
        db: AsyncSession,
        user: User,
        client: ClientInfo,
        method: str,
        amr: Sequence[str],
        *,
        alert: bool,
    ) -> IssuedTokens:
        if isinstance(amr, str):  # ("pwd") is a string: its letters are no methods
            raise TypeError("amr is a sequence of method names, not one string")
        amr = tuple(amr)
        stored_amr = " ".join(amr)
        if not all(_AMR_VALUE.fullmatch(v) for v in amr) or len(stored_amr) > 64:
            raise ValueError(f"not a storable amr: {amr!r}")
        now = utc_now()
        expires_at = now + timedelta(seconds=self._settings.refresh_token_ttl)
        token_expires_at = self._token_deadline(now, expires_at)
        raw, token_hash = self._opaque.new(TokenKind.refresh)
        session_id = await self._repo.add_session(
            db,
            user_id=user.id,
            auth_method=method,
            amr=stored_amr,
            now=now,
            expires_at=expires_at,
            token_hash=token_hash,
            token_expires_at=token_expires_at,
            ip_address=client.ip_address,
            user_agent=client.user_agent,
        )
        await self._alerts.signed_in(db, user, client, session_id, now, alert=alert)
        await self._webhooks.emit(
            db, WebhookEvent.session_created, session_data(user.id, session_id, method=method)
        )
        return self._issue(
            user.id, session_id, raw, token_hash, now, token_expires_at, amr, user.roles
        )

    async def refresh(self, db: AsyncSession, raw: str, client: ClientInfo) -> IssuedTokens:
        """Rotate: spend the token, store its successor and an audit row (one statement on
        PostgreSQL). The session row is not written: its last use, IP and User-Agent are
        those of its newest token."""
        if not OpaqueTokens.looks_like(TokenKind.refresh, raw):
            REFRESHES.labels("invalid").inc()
            raise InvalidRefreshToken()
        now = utc_now()
        token_hash = self._opaque.hash(raw)
        successor_raw, successor_hash = self._opaque.derive(TokenKind.refresh, raw, _SUCCESSOR)
        rotated = await self._repo.rotate_refresh_token(
            db,
            token_hash=token_hash,
            successor_hash=successor_hash,
            now=now,
            idle_deadline=now + timedelta(seconds=self._settings.refresh_token_idle_ttl),
            ip_address=client.ip_address,
            user_agent=client.user_agent,
            audit_type=AuditType.refresh.value,
        )
        if rotated is None:
            return await self._refused(db, raw, token_hash, now, client)
        self._audit.log(AuditType.refresh, user_id=rotated.user_id, session_id=rotated.session_id)
        REFRESHES.labels("rotated").inc()
        return self._issue(
            rotated.user_id,
            rotated.session_id,
            successor_raw,
            successor_hash,
            now,
            rotated.expires_at,
            rotated.amr,
            rotated.roles,
        )

    async def _refused(
        self, db: AsyncSession, raw: str, token_hash: str, now: datetime, client: ClientInfo
    ) -> IssuedTokens:
        """The token could not be spent: find out why, and answer a grace replay or a reuse."""
        token = await self._repo.token_by_hash(db, token_hash)
        if token is None or token.used_at is None:
            # Unknown, expired, revoked, or its session ended: nothing more to do.
            REFRESHES.labels("invalid").inc()
            raise InvalidRefreshToken()
        session = await self._repo.get_session(db, token.session_id)
        user = await self._users.by_id(db, session.user_id) if session is not None else None
        if session is None or session.revoked_at is not None or user is None or not user.is_active:
            REFRESHES.labels("invalid").inc()
            raise InvalidRefreshToken()
        grace = self._settings.refresh_reuse_grace
        if grace > 0 and (now - token.used_at).total_seconds() <= grace:
            successor_raw, successor_hash = self._opaque.derive(TokenKind.refresh, raw, _SUCCESSOR)
            successor = await self._repo.token_by_hash(db, successor_hash)
            if (
                successor is not None
                and successor.used_at is None
                and successor.revoked_at is None
                and successor.expires_at > now
                and session.expires_at > now
            ):
                REFRESHES.labels("grace").inc()
                return self._issue(
                    session.user_id,
                    session.id,
                    successor_raw,
                    successor_hash,
                    successor.issued_at,
                    successor.expires_at,
                    split_amr(session.amr),
                    user.roles,
                )
        await self._reuse_detected(db, session.id, session.user_id, token.id, client)
        raise InvalidRefreshToken()

    async def _reuse_detected(
        self,
        db: AsyncSession,
        session_id: uuid.UUID,
        user_id: uuid.UUID,
        token_id: uuid.UUID,
        client: ClientInfo,
    ) -> None:
        """Revoke the session, audit and mail the incident: a security write, committed before
        the shared store is told (which may fail: a 503 then, the revocation kept)."""
        revoked = await security_write(
            db, partial(self._revoke_reused, session_id, user_id, token_id, client)
        )
        await self._deny_sessions([session_id])
        if revoked:
            TOKEN_REUSE.inc()
            logger.warning(
                "auth.refresh.reuse_detected",
                extra={"user_id": str(user_id), "session_id": str(session_id)},
            )

    async def _revoke_reused(
        self,
        session_id: uuid.UUID,
        user_id: uuid.UUID,
        token_id: uuid.UUID,
        client: ClientInfo,
        db: AsyncSession,
    ) -> bool:
        revoked = await self._repo.revoke_session(db, session_id, utc_now(), "reuse_detected")
        if not revoked:
            # Concurrent replays race here: only the one whose UPDATE revoked the session reports
            # the incident, so it is audited and mailed once.
            return False
        await self._webhooks.emit(
            db,
            WebhookEvent.session_revoked,
            session_data(user_id, session_id, reason="reuse_detected"),
        )
        self._audit.record(
            db,
            AuditType.refresh_reuse_detected,
            user_id=user_id,
            session_id=session_id,
            client=client,
            detail={"token_id": str(token_id)},
        )
        user = await self._users.by_id(db, user_id)
        if user is not None:
            await self._email.enqueue(
                db,
                to=user.email,
                template=EmailTemplate.session_reuse_revoked,
                context={
                    "name": user.name,
                    "ip_address": client.ip_address or "unknown",
                    "user_agent": client.user_agent or "unknown",
                },
                user_id=user.id,
            )
        return True

    def _token_deadline(self, now: datetime, session_expires_at: datetime) -> datetime:
        """Idle deadline of a new token, never past the session's absolute end."""
        idle_deadline = now + timedelta(seconds=self._settings.refresh_token_idle_ttl)
        return min(idle_deadline, session_expires_at)

    def _issue(
        self,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        raw: str,
        token_hash: str,
        issued_at: datetime,
        expires_at: datetime,
        amr: Sequence[str],
        roles: Sequence[str],
    ) -> IssuedTokens:
        # The access token is a function of its refresh token (time and hash), its session
        # (the amr, which never changes) and the user's roles, so a grace replay gets the very
        # same pair back (unless an admin changed the roles in between: then the new ones).
        jti = str(uuid.UUID(hex=token_hash[:32]))
        access, claims = self._jwt.issue(
            user_id=user_id,
            session_id=session_id,
            issued_at=issued_at,
            jti=jti,
            amr=amr,
            roles=roles,
        )
        return IssuedTokens(access, claims, raw, expires_at, session_id)

    # -- ending ------------------------------------------------------------------------------

    async def logout(
        self, db: AsyncSession, raw: str | None, bearer: str | None, client: ClientInfo
    ) -> None:
        """End the session of a refresh token (if one was presented), and that of the access
        token ``bearer`` if one was sent. Silent for unknown, invalid or ended sessions and
        tokens."""
        if raw is not None and OpaqueTokens.looks_like(TokenKind.refresh, raw):
            token = await self._repo.token_by_hash(db, self._opaque.hash(raw))
            if token is not None:
                await self.end(
                    db, token.session_id, client, reason="logout", audit=AuditType.logout
                )
        if bearer is None:
            return
        try:
            claims = self._jwt.decode(bearer)
        except (InvalidAccessToken, TokenExpired, NotAuthenticated):
            return
        await self.end(db, claims.sid, client, reason="logout", audit=AuditType.logout)

    async def end(
        self,
        db: AsyncSession,
        session_id: uuid.UUID,
        client: ClientInfo,
        *,
        reason: str,
        audit: AuditType,
    ) -> bool:
        """End one session: its refresh token stops working and its access tokens are refused on
        every process.

        Args:
            db: The request's unit of work.
            session_id: The session (the ``sid`` claim).
            client: The caller, for the audit record.
            reason: Why, stored on the session (``logout``, ``user_revoked``, …).
            audit: The audit event to record when the session was live.

        Returns:
            Whether a live session was ended (False for an unknown or already ended one).
        """
        session = await self._repo.get_session(db, session_id)
        if session is None:
            return False
        revoked = await self._repo.revoke_session(db, session_id, utc_now(), reason)
        await self._deny_sessions([session_id])
        if revoked:
            await self._webhooks.emit(
                db,
                WebhookEvent.session_revoked,
                session_data(session.user_id, session_id, reason=reason),
            )
            self._audit.record(
                db, audit, user_id=session.user_id, session_id=session_id, client=client
            )
        return revoked

    async def end_for_user(
        self, db: AsyncSession, user: User, session_id: uuid.UUID, client: ClientInfo
    ) -> None:
        """DELETE /sessions/{id}: another user's or an unknown session is 404."""
        session = await self._repo.session_of_user(db, session_id, user.id)
        if session is None or session.revoked_at is not None or session.expires_at <= utc_now():
            raise NotFound("No such session.")
        await self.end(
            db, session_id, client, reason="revoked_by_user", audit=AuditType.session_revoked
        )

    async def end_all(self, db: AsyncSession, user: User, *, reason: str) -> list[uuid.UUID]:
        """End every session and refuse every access token issued so far.

        A pending email change is cancelled too: it was asked for inside one of those sessions,
        so whoever is being locked out (password change or reset, logout-all, an admin's revoke
        or deactivation) must not be able to complete it afterwards."""
        now = utc_now()
        await self._users.update(db, user, tokens_valid_after=now)
        await self._action_tokens.supersede(db, ActionKind.change_email, user.id, now)
        ids = await self._repo.revoke_user_sessions(db, user.id, now, reason)
        await self._webhooks.emit_many(
            db,
            WebhookEvent.session_revoked,
            [session_data(user.id, sid, reason=reason) for sid in ids],
        )
        await self._deny_sessions(ids)
        return ids

    async def end_others(
        self, db: AsyncSession, user: User, current: uuid.UUID, *, reason: str
    ) -> list[uuid.UUID]:
        """End every session of the user but ``current`` (whose tokens keep working): each
        ended session's access tokens are refused at once through the shared store. A pending
        email change is cancelled, as by ``end_all``."""
        now = utc_now()
        await self._action_tokens.supersede(db, ActionKind.change_email, user.id, now)
        ids = await self._repo.revoke_user_sessions(db, user.id, now, reason, keep=current)
        await self._webhooks.emit_many(
            db,
            WebhookEvent.session_revoked,
            [session_data(user.id, sid, reason=reason) for sid in ids],
        )
        await self._deny_sessions(ids)
        return ids

    async def revoke_all(
        self, db: AsyncSession, client: ClientInfo | None, *, by: str, admin_id: uuid.UUID | None
    ) -> int:
        """Emergency revocation: end every session of every user and refuse every access
        token issued before now, on every process within a second (``sessions/revocation.py``).
        Pending email changes are cancelled, as by an admin's revoke. Audited; the number of
        sessions ended.

        The instant is stored in the database and published in the shared store before the
        unit of work commits: without the store nothing is changed (503, or the CLI's error).
        """
        now = utc_now()
        await self._repo.set_service_not_before(db, now)
        ended = await self._repo.revoke_all_sessions(db, now, "revoked_all")
        await self._action_tokens.supersede_all(db, ActionKind.change_email, now)
        detail: dict[str, str | int] = {"by": by, "sessions_ended": ended}
        if admin_id is not None:
            detail["admin_id"] = str(admin_id)
        self._audit.record(db, AuditType.sessions_revoked_all, client=client, detail=detail)
        await db.flush()
        try:
            await self._not_before.publish(now)
        except StoreUnavailable:
            raise ServiceUnavailable() from None
        logger.warning("auth.sessions.revoked_all", extra={"by": by, "sessions_ended": ended})
        return ended

    async def _deny_sessions(self, session_ids: list[uuid.UUID]) -> None:
        """Publish revocations in the shared store, so every process refuses the sessions'
        access tokens at once (kept as long as such a token can live)."""
        self._principals.forget_sessions(session_ids)
        ttl = self._settings.access_token_ttl + self._settings.jwt_leeway + 1
        try:
            for session_id in session_ids:
                await self._store.set_flag(f"revoked-sid:{session_id}", ttl)
        except StoreUnavailable:
            raise ServiceUnavailable() from None

    async def _claims(self, token: str) -> AccessClaims:
        claims = self._tokens.decode(token)
        if not self._not_before.admits(claims.iat):
            raise InvalidAccessToken()  # issued before a revoke-all: no round trip needed
        try:
            (denied,) = await self._store.has_any_flag([f"revoked-sid:{claims.sid}"])
        except StoreUnavailable:
            # Fail closed: without the shared revocation list no token is let through.
            raise ServiceUnavailable() from None
        if denied:
            raise InvalidAccessToken()
        return claims

    async def check_access(
        self, db: AsyncSession, token: str
    ) -> tuple[User, AuthSession, AccessClaims]:
        """Everything behind an access token, with the rows loaded for a handler that changes
        them: the signature and claims, the shared revocation list, the user exists and is
        active, the token was issued after the user's last "end every session", and its session
        is neither revoked nor past its absolute lifetime."""
        claims = await self._claims(token)
        found = await self._repo.principal(db, claims.sub, claims.sid)
        if found is None:
            raise InvalidAccessToken()
        user, session = found
        snapshot = PrincipalSnapshot.of(user, session)
        if not snapshot.admits(claims):
            raise InvalidAccessToken()
        self._principals.put(snapshot)
        return user, session, claims

    async def check_access_view(
        self, sessionmaker: async_sessionmaker[AsyncSession], token: str
    ) -> tuple[PrincipalSnapshot, AccessClaims]:
        """The same checks for read-only handlers, from the short-lived snapshot cache; the
        database is read (in a session of its own) only on a miss."""
        claims = await self._claims(token)

        async def load() -> PrincipalSnapshot | None:
            async with sessionmaker() as db:
                found = await self._repo.principal(db, claims.sub, claims.sid)
            return None if found is None else PrincipalSnapshot.of(*found)

        # Single-flight: concurrent misses for one token's principal share one query.
        snapshot = await self._principals.get_or_load(claims.sub, claims.sid, load)
        if snapshot is None:
            raise InvalidAccessToken()
        if not snapshot.admits(claims):
            raise InvalidAccessToken()
        return snapshot, claims

    async def introspect(self, db: AsyncSession, token: str, client_id: str) -> TokenIntrospection:
        """RFC 7662 for the introspection client ``client_id``: the claims of a currently valid
        access token, else ``active: false`` and nothing more."""
        try:
            claims = (await self.check_access(db, token))[2]
        except (InvalidAccessToken, TokenExpired):
            return TokenIntrospection(active=False)
        return TokenIntrospection(
            active=True,
            sub=str(claims.sub),
            exp=claims.exp,
            iat=claims.iat,
            sid=str(claims.sid),
            scope=claims.scope,
            amr=list(claims.amr),
            roles=list(claims.roles),
            token_type="Bearer",  # noqa: S106
            client_id=client_id,
            iss=self._settings.public_url,
            aud=self._settings.jwt_audience,
        )

    async def logout_all(self, db: AsyncSession, user: User, client: ClientInfo) -> None:
        """End every session of ``user`` (``POST /auth/logout-all``) and audit it.

        Args:
            db: The request's unit of work.
            user: The signed-in user.
            client: The caller, for the audit record.
        """
        await self.end_all(db, user, reason="logout_all")
        self._audit.record(db, AuditType.logout_all, user_id=user.id, client=client)

    async def list_active(self, db: AsyncSession, user: User) -> list[SessionView]:
        """The user's live sessions, for ``GET /sessions``.

        Args:
            db: The request's unit of work.
            user: The signed-in user.

        Returns:
            One view per session that has neither ended nor expired.
        """
        return await self._repo.active_sessions(db, user.id, utc_now())
