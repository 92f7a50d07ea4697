"""Passwords: the policy (NIST SP 800-63B rev 4) and hashing (Argon2id, OWASP cheat sheet).

Policy, in the order it is checked (every check works on the NFKC-normalised password):

1. ``too_long``: more than ``password_max_length`` code points. A cheap bound on the raw input
   runs before anything else, so a huge body is refused before it is normalised or hashed.
2. ``too_short``: fewer than ``password_min_length`` code points (an emoji is one code point).
3. ``common``: the casefolded password is on the bundled blocklist (``data/``, 19,640 entries).
4. ``context``: the password is the user's email, name, "authgate" or mainly one of them
   (see :func:`_is_context_derived`).
5. ``weak``: its zxcvbn score, with the same context words, is below
   ``password_min_strength``. Only the first ``STRENGTH_INPUT_LIMIT`` code points are scored
   (zxcvbn is super-linear), in the hashing pool, one at a time (zxcvbn keeps the context words
   in a module-level dictionary).
6. ``breached``: with ``password_breach_check=hibp``, the range API knows it
   (``core/security/breaches.py``).

There are no composition rules and no periodic expiry, as SP 800-63B asks.

Hashing: new hashes are always Argon2id with the configured cost. Legacy hashes (bcrypt,
Django ``pbkdf2_sha256``, passlib ``$pbkdf2-sha256$``) are verified only, and a successful
verification returns a fresh Argon2id hash for the caller to store. All hashing runs in a
bounded thread pool; beyond its capacity callers get a 503 at once instead of a growing queue.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import gzip
import hashlib
import hmac
import os
import re
import secrets
import sys
import threading
import unicodedata
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import ClassVar, TypeVar

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers import HasherProtocol
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher
from zxcvbn import zxcvbn

from authgate.config import Settings
from authgate.core.errors import PasswordPolicyError, ServiceUnavailable
from authgate.core.metrics import HASH_CAPACITY, HASH_IN_FLIGHT
from authgate.core.security.breaches import BreachChecker

__all__ = ["PasswordPolicy", "PasswordService"]

_T = TypeVar("_T")

#: The service's own name is always a context word.
SERVICE_CONTEXT_WORDS: tuple[str, ...] = ("authgate",)

#: NFKC can expand one code point into at most 18 (U+FDFA), and can also shrink combining
#: sequences; raw inputs longer than this multiple of the limit are refused before normalising.
_RAW_LENGTH_FACTOR = 4

#: bcrypt reads only the first 72 bytes; longer inputs are refused, never truncated.
_BCRYPT_MAX_BYTES = 72

#: Upper bound on PBKDF2 iterations read from a stored hash (Django 5.2 uses 1,000,000), so a
#: corrupted row cannot pin a worker for minutes.
_PBKDF2_MAX_ITERATIONS = 10_000_000

_SHA256_BYTES = 32

_WORD_RE = re.compile(r"[^\W_]+")

_BUSY_DETAIL = "The service is busy; try again shortly."

#: zxcvbn's cost grows faster than linearly with the length (its date and repeat matchers look
#: at every substring): a 24-code-point passphrase takes ~1.4 ms, 32 ~4 ms, 48 random digits
#: ~30 ms. Only this prefix is scored (it can only under-estimate: a longer password is at least
#: as strong as its first 24 characters), so scoring stays a few percent of a registration's CPU
#: (~31 ms with the Argon2 hash; `python -m bench.inprocess register`).
STRENGTH_INPUT_LIMIT = 24

#: zxcvbn stores the context words in a module-level dictionary for the duration of a call.
_ZXCVBN_LOCK = threading.Lock()

WEAK_DETAIL = "Add another word or two; avoid repeated words and keyboard patterns."


# -- normalisation and the blocklist ------------------------------------------------------------


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _fold(text: str) -> str:
    return _nfkc(text).casefold()


def _letters(text: str) -> str:
    """The text without digits, punctuation, symbols and spaces."""
    return "".join(char for char in text if char.isalpha())


@functools.cache
def _blocklist() -> frozenset[str]:
    """The bundled common passwords, NFKC-normalised and casefolded (loaded once, lazily)."""
    data = resources.files("authgate.core.security").joinpath("data", "common-passwords.txt.gz")
    text = gzip.decompress(data.read_bytes()).decode("utf-8")
    return frozenset(_fold(line.strip()) for line in text.splitlines() if line.strip())


def _context_words(context: Iterable[str | None]) -> set[str]:
    """Every word a password must not be based on.

    For each context value (email, its local part, the user's name, ...) plus "authgate": the
    casefolded value itself, its letters-only form, and each alphanumeric token of it with the
    token's letters-only form ("Ada Lovelace" gives "ada lovelace", "adalovelace", "ada",
    "lovelace"; "ada.lovelace@example.com" also gives "example" and "com").
    """
    words: set[str] = set()
    for value in (*SERVICE_CONTEXT_WORDS, *context):
        if not value:
            continue
        folded = _fold(value).strip()
        candidates = [folded, _letters(folded)]
        for token in _WORD_RE.findall(folded):
            candidates += [token, _letters(token)]
        words.update(word for word in candidates if word)
    return words


def _is_context_derived(folded: str, words: set[str], common: frozenset[str]) -> bool:
    """Whether a casefolded password is, or is mainly, a context word.

    Refused when the password

    * equals a context word (the email as the password, the name as the password);
    * stripped of everything but letters equals one ("Lovelace1990!!!!!" for a user named
      Lovelace, "ada.lovelace@example.com" typed with other separators);
    * is at least half covered by occurrences of context words of 4 or more characters
      ("authgateauthgate", "lovelace-lovelace!");
    * is context words plus a common password: what is left once those words are taken out
      (letters and digits only) is empty or on the blocklist ("authgate password",
      "Lovelace 123456789").

    "correct horse authgate" passes: the service name there is a minority of the password
    and the rest is not a common password.
    """
    if folded in words or _letters(folded) in words:
        return True
    covered = [False] * len(folded)
    for word in words:
        if len(word) < 4:
            continue
        start = folded.find(word)
        while start != -1:
            covered[start : start + len(word)] = [True] * len(word)
            start = folded.find(word, start + 1)
    if sum(covered) * 2 >= len(folded):
        return True
    if not any(covered):
        return False
    rest = "".join(char for char, used in zip(folded, covered, strict=True) if not used)
    rest = "".join(char for char in rest if char.isalnum())
    return not rest or rest in common


def _strength(password: str, words: list[str]) -> tuple[int, str]:
    """zxcvbn's score (0-4) of the first ``STRENGTH_INPUT_LIMIT`` code points, and a detail
    made of its feedback (its warning and suggestions) for a person to act on."""
    head = password[:STRENGTH_INPUT_LIMIT]
    with _ZXCVBN_LOCK:
        result = zxcvbn(head, user_inputs=words, max_length=STRENGTH_INPUT_LIMIT)
    feedback = result.get("feedback") or {}
    parts = [str(feedback.get("warning") or "").strip()]
    parts += [str(item).strip() for item in feedback.get("suggestions") or ()]
    detail = " ".join(part if part.endswith(".") else part + "." for part in parts if part)
    return int(result["score"]), detail or WEAK_DETAIL


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """What a form needs to know about the policy (``GET /auth/password-policy``)."""

    min_length: int
    max_length: int
    min_strength: int
    breach_check: str


# -- legacy hash formats -----------------------------------------------------------------------


def _ab64_decode(text: str) -> bytes:
    """passlib's "adapted base64": standard alphabet with '.' for '+', no padding."""
    padded = text.replace(".", "+") + "=" * (-len(text) % 4)
    return base64.b64decode(padded, validate=True)


class _Pbkdf2Sha256Hasher:
    """Verify-only PBKDF2-HMAC-SHA256 in one stored format (a pwdlib hasher).

    Subclasses parse their format into (iterations, salt bytes, expected digest); the
    derivation is ``hashlib.pbkdf2_hmac`` and the comparison ``hmac.compare_digest``.
    These hashes are never produced: the current hasher is Argon2id.
    """

    pattern: ClassVar[re.Pattern[str]]

    @classmethod
    def identify(cls, hash: str | bytes) -> bool:
        if isinstance(hash, bytes):
            try:
                hash = hash.decode("ascii")
            except UnicodeDecodeError:
                return False
        return cls.pattern.fullmatch(hash) is not None

    @classmethod
    def _parse(cls, match: re.Match[str]) -> tuple[int, bytes, bytes]:
        raise NotImplementedError

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        raise NotImplementedError("legacy PBKDF2 hashes are verified, never produced")

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        text = hash.decode("ascii", "replace") if isinstance(hash, bytes) else hash
        match = self.pattern.fullmatch(text)
        if match is None:
            return False
        try:
            iterations, salt, expected = self._parse(match)
        except (ValueError, binascii.Error):
            return False
        # Both formats store the full 32-byte SHA-256 output; a shorter digest is corrupt.
        if not 1 <= iterations <= _PBKDF2_MAX_ITERATIONS or len(expected) != _SHA256_BYTES:
            return False
        secret = password.encode("utf-8") if isinstance(password, str) else password
        actual = hashlib.pbkdf2_hmac("sha256", secret, salt, iterations)
        return hmac.compare_digest(actual, expected)

    def check_needs_rehash(self, hash: str | bytes) -> bool:
        return True


class DjangoPbkdf2Sha256Hasher(_Pbkdf2Sha256Hasher):
    """Django's ``pbkdf2_sha256$<iterations>$<salt>$<base64 digest>`` (salt used as text)."""

    pattern = re.compile(r"pbkdf2_sha256\$(\d{1,10})\$([^$]+)\$([A-Za-z0-9+/]+={0,2})")

    @classmethod
    def _parse(cls, match: re.Match[str]) -> tuple[int, bytes, bytes]:
        iterations, salt, digest = match.groups()
        return int(iterations), salt.encode("utf-8"), base64.b64decode(digest, validate=True)


class PasslibPbkdf2Sha256Hasher(_Pbkdf2Sha256Hasher):
    """passlib's ``$pbkdf2-sha256$<rounds>$<ab64 salt>$<ab64 digest>`` (salt is raw bytes)."""

    pattern = re.compile(r"\$pbkdf2-sha256\$(\d{1,10})\$([A-Za-z0-9./]*)\$([A-Za-z0-9./]+)")

    @classmethod
    def _parse(cls, match: re.Match[str]) -> tuple[int, bytes, bytes]:
        rounds, salt, digest = match.groups()
        return int(rounds), _ab64_decode(salt), _ab64_decode(digest)


class LegacyBcryptHasher(BcryptHasher):
    """bcrypt, verify only. Inputs over 72 bytes are refused rather than truncated.

    bcrypt ignores everything past byte 72 (and bcrypt >= 5 raises for such inputs); accepting
    a truncated comparison would let a prefix of a long password log in.
    """

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        secret = password.encode("utf-8") if isinstance(password, str) else password
        if len(secret) > _BCRYPT_MAX_BYTES:
            return False
        try:
            return super().verify(secret, hash)
        except ValueError:  # malformed salt or cost in a hash that matched the pattern
            return False

    def check_needs_rehash(self, hash: str | bytes) -> bool:
        return True


# -- the service -------------------------------------------------------------------------------


#: Niceness of the hashing threads: they use every idle core, but the event loop (nice 0)
#: preempts them, so a login storm does not stall other requests (see docs/performance.md).
HASH_THREAD_NICENESS = 5


def _lower_thread_priority() -> None:
    """On Linux a nice value belongs to one thread: lower only this hashing thread's priority."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_THREAD_NICENESS)


class PasswordService:
    """Checks new passwords against the policy and hashes/verifies them off the event loop."""

    def __init__(self, settings: Settings, *, breaches: BreachChecker | None = None) -> None:
        self._min_length = settings.password_min_length
        self._max_length = settings.password_max_length
        self._min_strength = settings.password_min_strength
        self._breaches = breaches
        self._policy = PasswordPolicy(
            min_length=settings.password_min_length,
            max_length=settings.password_max_length,
            min_strength=settings.password_min_strength,
            breach_check="hibp" if breaches is not None else "off",
        )
        self._argon2 = Argon2Hasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
        )
        hashers: list[HasherProtocol] = [
            self._argon2,
            LegacyBcryptHasher(),
            DjangoPbkdf2Sha256Hasher(),
            PasslibPbkdf2Sha256Hasher(),
        ]
        self._hash = PasswordHash(hashers)
        workers = settings.hash_workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix="authgate-hash",
            initializer=_lower_thread_priority,
        )
        # zxcvbn is pure Python (it holds the GIL) and must run one call at a time: one thread
        # of its own, so a strength check never occupies a hashing thread. At the normal
        # priority, unlike the hashing threads: a thread that holds the GIL while the scheduler
        # starves it stalls the event loop too (priority inversion; measured: register p99
        # 3.3 s and -20 % throughput at nice 5, back to normal at nice 0).
        self._scorer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="authgate-strength")
        self._capacity = workers + settings.hash_queue_limit
        HASH_CAPACITY.set(self._capacity)
        self._in_flight = 0
        # The counter is released from worker threads (future callbacks), hence a thread lock.
        self._lock = threading.Lock()
        self._closed = False
        # Verified against when the user does not exist, so an unknown email costs the same.
        self._dummy_hash = self._argon2.hash(secrets.token_urlsafe(32))

    # -- policy --------------------------------------------------------------------------------

    @property
    def policy(self) -> PasswordPolicy:
        """The rules a new password must meet, for ``GET /auth/password-policy``."""
        return self._policy

    async def validate(self, password: str, *, context: Iterable[str | None] = ()) -> str:
        """NFKC-normalise ``password``, check the policy and return the normalised password.

        ``context`` holds the user's own words (email, its local part, name, ...); "authgate"
        is always included. Raises ``PasswordPolicyError`` with ``extra={"reason": code}``,
        code being "too_long", "too_short", "common", "context", "weak" or "breached";
        ``ServiceUnavailable`` when the pool is full or the breach check fails closed.
        """
        normalised = self._normalise_bounded(password)
        if normalised is None:
            raise _policy_error("too_long", f"Use at most {self._max_length} characters.")
        if len(normalised) < self._min_length:
            raise _policy_error("too_short", f"Use at least {self._min_length} characters.")
        folded = normalised.casefold()
        common = _blocklist()
        if folded in common:
            raise _policy_error(
                "common", "This password is too common; choose one that is harder to guess."
            )
        words = _context_words(context)
        if _is_context_derived(folded, words, common):
            raise _policy_error(
                "context",
                "The password must not be based on your email address, your name or the "
                "name of this service.",
            )
        if self._min_strength > 0:
            # A few to ~30 ms of pure Python: off the event loop, on the scoring thread.
            score, detail = await self._run(
                _strength, normalised, sorted(words), executor=self._scorer
            )
            if score < self._min_strength:
                raise _policy_error("weak", detail)
        if self._breaches is not None:
            await self._breaches.check(normalised)
        return normalised

    def _normalise_bounded(self, password: str) -> str | None:
        """The NFKC form, or None when it is longer than the limit (checked cheaply first)."""
        if len(password) > self._max_length * _RAW_LENGTH_FACTOR:
            return None
        normalised = _nfkc(password)
        return normalised if len(normalised) <= self._max_length else None

    # -- hashing -------------------------------------------------------------------------------

    async def hash(self, password: str) -> str:
        """An Argon2id hash of the NFKC-normalised password (never truncated).

        Raises ``PasswordPolicyError`` ("too_long") for over-long input without hashing it, and
        ``ServiceUnavailable`` when the hashing pool is full.
        """
        normalised = self._normalise_bounded(password)
        if normalised is None:
            raise _policy_error("too_long", f"Use at most {self._max_length} characters.")
        return await self._run(self._argon2.hash, normalised)

    async def verify(self, password: str, password_hash: str | None) -> tuple[bool, str | None]:
        """Check ``password`` against a stored hash: ``(ok, new_hash)``.

        ``new_hash`` is a fresh Argon2id hash to store when the stored one is legacy (bcrypt,
        PBKDF2) or its Argon2 parameters differ from the settings, else None. With no stored
        hash (unknown user) a dummy hash of the same cost is verified so timing matches, and
        the answer is ``(False, None)``. Over-long passwords and malformed or unknown hash
        formats give ``(False, None)`` without raising. Raises only ``ServiceUnavailable``
        when the pool is full.

        The NFKC form is verified first. For legacy (non-Argon2) hashes the password as typed
        is tried too when it differs, since the systems that wrote them did not normalise.
        """
        normalised = self._normalise_bounded(password)
        if normalised is None:
            return False, None
        if password_hash is None:
            await self._run(self._argon2.verify, normalised, self._dummy_hash)
            return False, None
        return await self._run(self._verify_sync, password, normalised, password_hash)

    def _verify_sync(
        self, raw: str, normalised: str, password_hash: str
    ) -> tuple[bool, str | None]:
        ok, new_hash = self._verify_and_update(normalised, password_hash)
        if not ok and raw != normalised and not self._argon2.identify(password_hash):
            ok, _ = self._verify_and_update(raw, password_hash)
            if ok:
                # Store the hash of the normal form, which is what later logins verify first.
                new_hash = self._argon2.hash(normalised)
        return ok, new_hash

    def _verify_and_update(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        try:
            return self._hash.verify_and_update(password, password_hash)
        except (UnknownHashError, ValueError):
            # Unknown format, or a hash that looks right but does not parse (argon2's
            # InvalidHashError is a ValueError).
            return False, None

    # -- the bounded pool ----------------------------------------------------------------------

    async def _run(
        self, func: Callable[..., _T], *args: object, executor: ThreadPoolExecutor | None = None
    ) -> _T:
        """Run ``func`` in the hashing pool (or ``executor``), or raise ``ServiceUnavailable``
        when the pool is full. Hashing and scoring share one bound on the work in flight.

        The slot is released when the worker's future completes (also when it is cancelled
        before starting), not when the awaiting task goes away: a cancelled request whose hash
        is still running keeps its slot until the thread is actually free. This is what
        ``loop.run_in_executor`` does internally, with the release hooked on the same future.
        """
        with self._lock:
            if self._closed:
                raise ServiceUnavailable(_BUSY_DETAIL, retry_after=1)
            if self._in_flight >= self._capacity:
                raise ServiceUnavailable(_BUSY_DETAIL, retry_after=1)
            self._in_flight += 1
        HASH_IN_FLIGHT.inc()
        try:
            future: Future[_T] = (executor or self._pool).submit(func, *args)
        except RuntimeError:  # the pool was shut down between the check and the submit
            self._release()
            raise ServiceUnavailable(_BUSY_DETAIL, retry_after=1) from None
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _release(self, _future: object = None) -> None:
        with self._lock:
            self._in_flight -= 1
        HASH_IN_FLIGHT.dec()

    async def close(self) -> None:
        """Shut the pool down: queued jobs are cancelled, running ones are awaited."""
        with self._lock:
            self._closed = True
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
        await asyncio.to_thread(self._scorer.shutdown, wait=True, cancel_futures=True)


def _policy_error(reason: str, detail: str) -> PasswordPolicyError:
    return PasswordPolicyError(detail=detail, extra={"reason": reason})
