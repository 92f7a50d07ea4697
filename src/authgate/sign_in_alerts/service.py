"""SignInAlerts: mail the owner when a sign-in comes from an IP address + User-Agent pair that
none of the account's sign-ins of the last 90 days came from.

Every sign-in (``SessionService.open``) records its pair in ``sign_in_pairs`` as a keyed hash
with one upsert on the primary key, which hands back when the pair was last seen: a pair unseen
for ``KNOWN_FOR`` is new. Sessions themselves cannot be the memory: an ended session is deleted by
the next ``authgate purge-expired``, so a sign-out would make the next sign-in from the same
browser look new. A pair the table does not know yet is also looked for among the stored
sessions (one more indexed read, only then): sign-ins from before the table existed, or from
before a change of ``AUTHGATE_SECRET_KEY``, are not reported as new.

No alert for an account's first sign-in (``user.last_login_at`` still None: the caller updates
it after opening the session): a new account has nothing to compare with.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from authgate.config import Settings
from authgate.core.email import EmailService, EmailTemplate
from authgate.core.http import ClientInfo
from authgate.core.security.opaque import OpaqueTokens
from authgate.models import User
from authgate.sign_in_alerts.repository import SignInPairRepository

logger = logging.getLogger("authgate.sessions")

#: A pair signed in from within this window is familiar; older pairs are forgotten
#: (``authgate purge-expired``).
KNOWN_FOR = timedelta(days=90)
#: The User-Agent as sent is shown cut at this many characters.
MAIL_USER_AGENT_LENGTH = 256
_LABEL = "sign-in-pair"


class SignInAlerts:
    def __init__(
        self,
        settings: Settings,
        opaque: OpaqueTokens,
        email: EmailService,
        repository: SignInPairRepository | None = None,
    ) -> None:
        self._settings = settings
        self._opaque = opaque
        self._email = email
        self._repo = repository or SignInPairRepository()

    async def signed_in(
        self,
        db: AsyncSession,
        user: User,
        client: ClientInfo,
        session_id: uuid.UUID,
        now: datetime,
        *,
        alert: bool = True,
    ) -> None:
        """Record the sign-in's pair and, for a returning account signing in from a pair new
        to it, queue the ``new_sign_in`` mail in the caller's unit of work (rolled back with
        it). ``alert=False`` records only (a session that continues another one)."""
        first_sign_in = user.last_login_at is None
        pair = self._opaque.keyed_hash(_LABEL, client.ip_address or "", client.user_agent or "")
        previous = await self._repo.record(db, user.id, pair, now)
        if not alert or first_sign_in or not self._settings.new_sign_in_alerts:
            return
        since = now - KNOWN_FOR
        if previous is not None and previous >= since:
            return
        if await self._repo.seen_in_sessions(
            db, user.id, client.ip_address, client.user_agent, since=since, exclude=session_id
        ):
            return
        await self._email.enqueue(
            db,
            to=user.email,
            template=EmailTemplate.new_sign_in,
            context={
                "name": user.name,
                "at": now.strftime("%Y-%m-%d %H:%M UTC"),
                "ip_address": client.ip_address or "unknown",
                "user_agent": (client.user_agent or "unknown")[:MAIL_USER_AGENT_LENGTH],
                "reset_url": f"{self._settings.frontend_url}/forgot-password",
            },
            user_id=user.id,
        )
        logger.info(
            "auth.sign_in.new_pair", extra={"user_id": str(user.id), "session_id": str(session_id)}
        )
