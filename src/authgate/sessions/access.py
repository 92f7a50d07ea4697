"""The hot path: checking an access token on every protected request, cheaply.

Two in-process caches, neither of which weakens a check:

* **Verified tokens** (LRU, bounded by each token's ``exp``): the signature and claims of a
  token are checked once; a hit still requires its signing key to be in the ring.
* **Principal snapshots** (``AUTHGATE_ACCESS_CACHE_TTL``, default 1 s): what the database says
  about the user and session (active, "tokens valid after", session revoked or expired).

A snapshot is refilled **single-flight**: when it expires under load, the concurrent requests
for the same (user, session) await one database query instead of sending one each (the 1 s
expiry of a busy token otherwise queues dozens of identical queries on the pool at once).

Revocation stays immediate across processes: every request consults the shared store's
revocation list (one round trip to Redis, a dict lookup in process), and revocations made in
this process drop the affected snapshots at once. What may be up to the TTL old is only the
profile shown by read-only endpoints (``GET /users/me``).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from authgate.core.errors import InvalidAccessToken
from authgate.core.security.jwt import AccessClaims, JWTService
from authgate.core.time import utc_now
from authgate.models import AuthSession, User


@dataclass(frozen=True, slots=True)
class PrincipalSnapshot:
    """An immutable copy of the rows behind a token, safe to share between requests."""

    user_id: uuid.UUID
    email: str
    name: str | None
    email_verified: bool
    is_active: bool
    is_superuser: bool
    roles: list[str]
    created_at: datetime
    updated_at: datetime
    tokens_valid_after: float
    session_id: uuid.UUID
    session_revoked: bool
    session_expires_at: datetime

    @classmethod
    def of(cls, user: User, session: AuthSession) -> PrincipalSnapshot:
        return cls(
            user_id=user.id,
            email=user.email,
            name=user.name,
            email_verified=user.email_verified,
            is_active=user.is_active,
            is_superuser=user.is_superuser,
            roles=list(user.roles),
            created_at=user.created_at,
            updated_at=user.updated_at,
            tokens_valid_after=user.tokens_valid_after.timestamp(),
            session_id=session.id,
            session_revoked=session.revoked_at is not None,
            session_expires_at=session.expires_at,
        )

    @property
    def id(self) -> uuid.UUID:
        """The user's id, under the name the user schemas read (``UserOut.model_validate``)."""
        return self.user_id

    def admits(self, claims: AccessClaims) -> bool:
        return (
            self.is_active
            and not self.session_revoked
            and self.session_expires_at > utc_now()
            and claims.iat >= math.floor(self.tokens_valid_after)
        )


class VerifiedTokens:
    """LRU of tokens whose signature and claims were verified, each kept until its ``exp``."""

    def __init__(self, jwt: JWTService, max_size: int, leeway: int) -> None:
        self._jwt = jwt
        self._max = max_size
        self._leeway = leeway
        self._entries: OrderedDict[str, tuple[AccessClaims, str]] = OrderedDict()

    def decode(self, token: str) -> AccessClaims:
        ring = self._jwt.ring
        ring.maybe_reload()
        hit = self._entries.get(token) if self._max else None
        if hit is not None:
            claims, kid = hit
            if claims.exp + self._leeway > utc_now().timestamp() and ring.verification_key(kid):
                self._entries.move_to_end(token)
                return claims
            del self._entries[token]
        # Expired, unknown or retired-key tokens take the full path (and its exact error).
        claims = self._jwt.decode(token)
        if self._max:
            self._entries[token] = (claims, _header_kid(token))
            if len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return claims


def _header_kid(token: str) -> str:
    import base64
    import json

    header = token.split(".", 1)[0]
    data = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    kid = data.get("kid")
    if not isinstance(kid, str):
        raise InvalidAccessToken()
    return kid


_Key = tuple[uuid.UUID, uuid.UUID]


class PrincipalCache:
    """Snapshots by (user, session), kept ``ttl`` seconds (0 disables the cache)."""

    def __init__(self, ttl: float, max_size: int = 50_000) -> None:
        self._ttl = ttl
        self._max = max_size
        self._entries: dict[_Key, tuple[float, PrincipalSnapshot]] = {}
        #: The refill in flight for each key (``get_or_load``).
        self._refills: dict[_Key, asyncio.Task[PrincipalSnapshot | None]] = {}
        #: Bumped by every invalidation: a refill that started before one is not stored.
        self._generation = 0

    def get(self, user_id: uuid.UUID, session_id: uuid.UUID) -> PrincipalSnapshot | None:
        if self._ttl <= 0:
            return None
        entry = self._entries.get((user_id, session_id))
        if entry is None:
            return None
        stored_at, snapshot = entry
        if time.monotonic() - stored_at > self._ttl:
            self._entries.pop((user_id, session_id), None)
            return None
        return snapshot

    async def get_or_load(
        self,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        load: Callable[[], Awaitable[PrincipalSnapshot | None]],
    ) -> PrincipalSnapshot | None:
        """The cached snapshot, else what ``load`` reads, stored. Concurrent misses for one key
        share one ``load`` (its result, or its exception); an absent principal (None) is not
        stored. The shared load runs in a task of its own, so a caller that goes away (a client
        disconnects) does not cancel it for the others. With the cache disabled every call
        loads (nothing is shared either: ``ttl`` 0 asks for the database's answer at the time
        of each request)."""
        if self._ttl <= 0:
            return await load()
        snapshot = self.get(user_id, session_id)
        if snapshot is not None:
            return snapshot
        key = (user_id, session_id)
        refill = self._refills.get(key)
        if refill is None:
            refill = asyncio.create_task(self._refill(key, load, self._generation))
            self._refills[key] = refill
            refill.add_done_callback(partial(self._refill_done, key))
        return await asyncio.shield(refill)

    async def _refill(
        self, key: _Key, load: Callable[[], Awaitable[PrincipalSnapshot | None]], generation: int
    ) -> PrincipalSnapshot | None:
        snapshot = await load()
        if snapshot is not None and generation == self._generation:
            self.put(snapshot)
        return snapshot

    def _refill_done(self, key: _Key, refill: asyncio.Task[PrincipalSnapshot | None]) -> None:
        if self._refills.get(key) is refill:
            del self._refills[key]
        if not refill.cancelled():
            refill.exception()  # retrieved: every waiter may have gone

    def put(self, snapshot: PrincipalSnapshot) -> None:
        if self._ttl <= 0:
            return
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[(snapshot.user_id, snapshot.session_id)] = (time.monotonic(), snapshot)

    def _invalidated(self) -> None:
        """A refill in flight may have read the rows before the change: it is not stored, and
        the next miss starts a new one (callers already waiting get its answer, as they would
        have from a query of their own started before the change)."""
        self._generation += 1
        self._refills.clear()

    def forget_sessions(self, session_ids: list[uuid.UUID]) -> None:
        self._invalidated()
        gone = set(session_ids)
        for key in [k for k in self._entries if k[1] in gone]:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Drop every snapshot (a revoke-all: every session may have ended)."""
        self._invalidated()
        self._entries.clear()

    def forget_user(self, user_id: uuid.UUID) -> None:
        self._invalidated()
        for key in [k for k in self._entries if k[0] == user_id]:
            self._entries.pop(key, None)
