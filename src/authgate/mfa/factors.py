"""SecondFactor: one user's TOTP secret and recovery codes as they are stored, and the checks
that spend them. Enrollment (``service.py``) and the sign-in step (``challenges.py``) share it.

The TOTP secret is AES-GCM encrypted (``EncryptionService``, the key id in the ciphertext) with
associated data naming its user, so a ciphertext copied to another user's row does not decrypt.
A TOTP code is spent by moving the row's ``last_used_step`` forward to the code's time-step
(one conditional UPDATE): a code of that step or an earlier one never works again, and of two
concurrent uses of one code exactly one wins. A recovery code is stored as a keyed hash of its
user and its normalised spelling, and spent with one conditional UPDATE too.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from authgate.core.errors import InvalidCode
from authgate.core.security.crypto import DecryptionError, EncryptionService
from authgate.core.security.opaque import OpaqueTokens
from authgate.core.time import utc_now
from authgate.mfa.codes import (
    new_recovery_codes,
    normalize_recovery_code,
    normalize_totp_code,
    totp_step,
)
from authgate.mfa.repository import MfaRepository
from authgate.models import TotpSecret

logger = logging.getLogger("authgate.mfa")

#: The second factors a code can be (the ``methods`` of ``mfa_required``).
Factor = Literal["totp", "recovery_code"]


def totp_associated_data(user_id: uuid.UUID) -> bytes:
    """Binds a TOTP secret's ciphertext to its user."""
    return f"totp:{user_id}".encode()


class SecondFactor:
    def __init__(
        self,
        encryption: EncryptionService,
        opaque: OpaqueTokens,
        repository: MfaRepository | None = None,
    ) -> None:
        self._encryption = encryption
        self._opaque = opaque
        self._repo = repository or MfaRepository()

    def seal(self, user_id: uuid.UUID, secret: str) -> tuple[bytes, str]:
        """The secret's ciphertext for the user's row, and the key id it was made with."""
        ciphertext = self._encryption.encrypt(secret.encode(), totp_associated_data(user_id))
        return ciphertext, self._encryption.current_kid

    def step(self, row: TotpSecret, code: str, at: datetime) -> int | None:
        """The time-step of ``code`` under the row's secret (None: not a code of it now)."""
        try:
            secret = self._encryption.decrypt(row.secret_ct, totp_associated_data(row.user_id))
        except DecryptionError:
            # A key dropped from the ring too early: recovery codes still work.
            logger.error("mfa.totp.undecryptable", extra={"user_id": str(row.user_id)})
            return None
        return totp_step(secret.decode(), code, at)

    async def spend(
        self, db: AsyncSession, row: TotpSecret, factor: Factor, code: str, at: datetime
    ) -> bool:
        """Spend ``code`` if it is a right, unused one of the row's user: a TOTP code whose
        step is later than the last accepted, or an unused recovery code."""
        if factor == "totp":
            step = self.step(row, code, at)
            return step is not None and await self._repo.use_step(db, row.user_id, step)
        normalized = normalize_recovery_code(code)
        return normalized is not None and await self._repo.use_recovery_code(
            db, row.user_id, self.recovery_code_hash(row.user_id, normalized), at
        )

    async def spend_any(self, db: AsyncSession, row: TotpSecret, code: str) -> None:
        """Where either factor is asked for in one field: six digits are a TOTP code, anything
        else a recovery code; ``InvalidCode`` unless right and unused."""
        factor: Factor = "totp" if normalize_totp_code(code) is not None else "recovery_code"
        if not await self.spend(db, row, factor, code, utc_now()):
            raise InvalidCode()

    def recovery_code_hash(self, user_id: uuid.UUID, normalized: str) -> str:
        """The stored form of a recovery code (``normalize_recovery_code``): a keyed hash
        bound to its user."""
        return self._opaque.hash(f"recovery:{user_id}:{normalized}")

    async def new_recovery_codes(
        self, db: AsyncSession, user_id: uuid.UUID, at: datetime
    ) -> list[str]:
        """A new set for the user (the old set stops working), to be shown this once."""
        codes = new_recovery_codes()
        hashes = [self.recovery_code_hash(user_id, code.replace("-", "")) for code in codes]
        await self._repo.replace_recovery_codes(db, user_id, hashes, at)
        return codes


async def reencrypt_totp_secrets(db: AsyncSession, encryption: EncryptionService) -> int:
    """Move every TOTP secret to the current key (``authgate keys reencrypt``); each row is
    rewritten only if it did not change meanwhile. Raises DecryptionError if a ciphertext's key
    is no longer in the ring. Returns the number of rows rewritten."""
    repo = MfaRepository()
    count = 0
    for row in await repo.all_totp(db):
        if not encryption.needs_reencrypt(row.secret_ct):
            continue
        new = encryption.reencrypt(row.secret_ct, totp_associated_data(row.user_id))
        if await repo.replace_ciphertext(db, row.id, row.secret_ct, new, encryption.current_kid):
            count += 1
    return count
