"""The JWT signing key ring: private JWKs on disk, loaded once, re-read when the directory changes.

Layout of the directory (``AUTHGATE_SIGNING_KEYS_DIR``)::

    <kid>.json   one private JWK per key (+ "kid", "alg", "use": "sig", "created_at"), mode 0600
    current      the kid that signs new tokens, mode 0600
    .lock        advisory lock serialising key creation/rotation between processes

Every other key of the configured algorithm stays loaded for verification until it is retired, so
a token signed just before a rotation keeps verifying until it expires. Keys of another algorithm
are ignored. A rotation done by ``authgate keys rotate`` in another process reaches this one through
``maybe_reload()`` within ``key_reload_interval`` seconds (the contract allows 60).
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeAlias

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.exceptions import PyJWTError

from authgate.config import Settings
from authgate.core.security.files import ensure_private_directory
from authgate.core.time import utc_now

logger = logging.getLogger(__name__)

PrivateKey: TypeAlias = (
    ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | bytes
)
PublicKey: TypeAlias = (
    ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey
    | ec.EllipticCurvePublicKey
    | rsa.RSAPublicKey
    | bytes
)

SUPPORTED_ALGORITHMS: Final = frozenset({"EdDSA", "ES256", "RS256", "HS256"})
#: What a kid may look like, on disk and in a token header (also keeps file names path-safe).
KID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
CURRENT_FILE: Final = "current"
LOCK_FILE: Final = ".lock"
KEY_SUFFIX: Final = ".json"
RSA_KEY_SIZE: Final = 2048
HMAC_KEY_BYTES: Final = 32
_MAX_KEY_FILE_BYTES: Final = 64 * 1024
#: An unknown kid triggers a re-read at most this often (a key rotated by another process may
#: sign tokens here before our regular interval is up).
UNKNOWN_KID_RELOAD_INTERVAL: Final = 1.0


class KeyRingError(RuntimeError):
    """The key directory cannot provide what was asked (no usable key, unknown kid, ...)."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What ``authgate keys list`` shows: never any key material."""

    kid: str
    alg: str
    created_at: datetime
    current: bool


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    algorithm: str
    created_at: datetime
    #: The signing key (the shared secret for HS256); excluded from repr so it never lands in logs.
    private_key: PrivateKey = field(repr=False)
    #: The verification key (the same shared secret for HS256).
    public_key: PublicKey = field(repr=False)

    def public_jwk(self) -> dict[str, Any] | None:
        """The public JWK of this key, or ``None`` for a symmetric key (never published)."""
        key = self.public_key
        jwk: dict[str, Any]
        if isinstance(key, bytes):
            return None
        if isinstance(key, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(key, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(key, as_dict=True)
        jwk.pop("d", None)  # defensive: a public key has no private part anyway
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}


@dataclass(frozen=True, slots=True)
class _State:
    signature: tuple[Any, ...]
    current: SigningKey
    keys: dict[str, SigningKey]
    jwks: dict[str, Any]


# -- generation and (de)serialisation ------------------------------------------------------------


def new_kid() -> str:
    """A random, URL- and path-safe key id (base64url of 16 random bytes)."""
    return secrets.token_urlsafe(16)


def _generate_private_key(algorithm: str) -> PrivateKey:
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)
    if algorithm == "HS256":
        return secrets.token_bytes(HMAC_KEY_BYTES)
    raise KeyRingError(f"unsupported JWT algorithm: {algorithm!r}")


def _private_jwk(key: PrivateKey) -> dict[str, Any]:
    if isinstance(key, bytes):
        return HMACAlgorithm.to_jwk(key, as_dict=True)
    if isinstance(key, rsa.RSAPrivateKey):
        return RSAAlgorithm.to_jwk(key, as_dict=True)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return ECAlgorithm.to_jwk(key, as_dict=True)
    return OKPAlgorithm.to_jwk(key, as_dict=True)


def _key_from_jwk(algorithm: str, jwk: dict[str, Any]) -> tuple[PrivateKey, PublicKey]:
    """Parse a private JWK for ``algorithm``; raise ValueError when it does not fit the algorithm."""
    if algorithm == "HS256":
        secret = HMACAlgorithm.from_jwk(jwk)
        if len(secret) < HMAC_KEY_BYTES:
            raise ValueError("HMAC key shorter than 32 bytes")
        return secret, secret
    if algorithm == "RS256":
        rsa_key = RSAAlgorithm.from_jwk(jwk)
        if not isinstance(rsa_key, rsa.RSAPrivateKey):
            raise ValueError("not an RSA private key")
        if rsa_key.key_size < RSA_KEY_SIZE:
            raise ValueError("RSA key shorter than 2048 bits")
        return rsa_key, rsa_key.public_key()
    if algorithm == "ES256":
        ec_key = ECAlgorithm.from_jwk(jwk)
        if not isinstance(ec_key, ec.EllipticCurvePrivateKey):
            raise ValueError("not an EC private key")
        if not isinstance(ec_key.curve, ec.SECP256R1):
            raise ValueError("ES256 needs a P-256 key")
        return ec_key, ec_key.public_key()
    if algorithm == "EdDSA":
        okp_key = OKPAlgorithm.from_jwk(jwk)
        if isinstance(okp_key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
            return okp_key, okp_key.public_key()
        raise ValueError("not an Ed25519/Ed448 private key")
    raise ValueError(f"unsupported JWT algorithm: {algorithm!r}")


def _parse_created_at(value: Any, path: Path) -> datetime:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(value)
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def _read_jwk_file(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        data = handle.read(_MAX_KEY_FILE_BYTES + 1)
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise ValueError("key file too large")
    document = json.loads(data)
    if not isinstance(document, dict):
        raise ValueError("key file is not a JSON object")
    kid = path.name.removesuffix(KEY_SUFFIX)
    if document.get("kid") != kid:
        raise ValueError("kid inside the file does not match its name")
    return document


def _load_key(path: Path, algorithm: str) -> SigningKey | None:
    """The key in ``path`` if it is a usable key of ``algorithm``; ``None`` (logged) otherwise."""
    try:
        document = _read_jwk_file(path)
        if document.get("alg") != algorithm:
            return None  # another algorithm: ignored for signing and verification
        private_key, public_key = _key_from_jwk(algorithm, document)
    except (OSError, ValueError, TypeError, KeyError, PyJWTError) as exc:
        # Only the exception type: a message could quote key material.
        logger.warning("keys.file_ignored", extra={"file": path.name, "reason": type(exc).__name__})
        return None
    return SigningKey(
        kid=document["kid"],
        algorithm=algorithm,
        created_at=_parse_created_at(document.get("created_at"), path),
        private_key=private_key,
        public_key=public_key,
    )


# -- filesystem helpers ------------------------------------------------------------------------------


def _ensure_directory(directory: Path) -> None:
    ensure_private_directory(directory)  # the directory and any parent it creates are 0700


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive advisory lock, so two processes never create or rotate keys at once."""
    _ensure_directory(directory)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` atomically (temp file + rename) with mode 0600 from the first byte."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _key_paths(directory: Path) -> builtins.list[Path]:
    return sorted(
        path
        for path in directory.glob(f"*{KEY_SUFFIX}")
        if KID_PATTERN.fullmatch(path.name.removesuffix(KEY_SUFFIX))
    )


def _read_current(directory: Path) -> str | None:
    try:
        value = (directory / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value if KID_PATTERN.fullmatch(value) else None


def _directory_signature(directory: Path) -> tuple[Any, ...]:
    """Names, inodes, sizes and mtimes of the files that matter: changes on any rotation."""
    entries: builtins.list[tuple[str, int, int, int]] = []
    try:
        with os.scandir(directory) as scan:
            for entry in scan:
                if entry.name == CURRENT_FILE or entry.name.endswith(KEY_SUFFIX):
                    with contextlib.suppress(OSError):
                        st = entry.stat()
                        entries.append((entry.name, st.st_ino, st.st_size, st.st_mtime_ns))
    except OSError:
        return ("unreadable",)
    return tuple(sorted(entries))


def _create_key(directory: Path, algorithm: str) -> str:
    """Generate a key, store it, make it current. Caller holds the lock."""
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise KeyRingError(f"unsupported JWT algorithm: {algorithm!r}")
    kid = new_kid()
    document = {
        **_private_jwk(_generate_private_key(algorithm)),
        "kid": kid,
        "alg": algorithm,
        "use": "sig",
        "created_at": utc_now().isoformat(),
    }
    _write_private(directory / f"{kid}{KEY_SUFFIX}", json.dumps(document, indent=2).encode())
    _write_private(directory / CURRENT_FILE, f"{kid}\n".encode())
    logger.info("keys.created", extra={"kid": kid, "alg": algorithm})
    return kid


def _read_state(directory: Path, algorithm: str) -> _State | None:
    """Every usable key of ``algorithm`` in ``directory``; ``None`` when there is none."""
    signature = _directory_signature(directory)
    keys: dict[str, SigningKey] = {}
    for path in _key_paths(directory):
        key = _load_key(path, algorithm)
        if key is not None:
            keys[key.kid] = key
    if not keys:
        return None
    current_kid = _read_current(directory)
    if current_kid in keys:
        current = keys[current_kid]
    else:
        # "current" missing or naming a key of another algorithm: the newest usable key signs.
        current = max(keys.values(), key=lambda k: (k.created_at, k.kid))
        if current_kid is not None:
            logger.warning(
                "keys.current_unusable", extra={"kid": current_kid, "using": current.kid}
            )
    ordered = [current, *(k for k in keys.values() if k.kid != current.kid)]
    jwks = [jwk for jwk in (k.public_jwk() for k in ordered) if jwk is not None]
    return _State(signature=signature, current=current, keys=keys, jwks={"keys": jwks})


# -- the ring ----------------------------------------------------------------------------------------


class SigningKeyRing:
    """Pre-loaded signing/verification keys of one algorithm, refreshed from the directory.

    Reads are lock-free (one immutable state object swapped atomically); a reload is serialised by
    a lock and skipped by a caller that finds another thread already reloading.
    """

    def __init__(
        self, directory: Path, algorithm: str, state: _State, *, reload_interval: float
    ) -> None:
        self.directory = directory
        self.algorithm = algorithm
        self.reload_interval = reload_interval
        self._state = state
        self._lock = threading.Lock()
        self._checked_at = time.monotonic()

    # -- construction and management (also used by the CLI) --------------------------------------

    @classmethod
    def load(
        cls,
        directory: Path,
        algorithm: str,
        *,
        create: bool,
        reload_interval: float = 30.0,
    ) -> SigningKeyRing:
        """Load the ring; ``create=True`` (development) generates a first key when none is usable.

        ``create=False`` (production) never writes anything and raises ``KeyRingError`` (a
        ``RuntimeError``) when the directory holds no usable key of ``algorithm``.
        """
        if algorithm not in SUPPORTED_ALGORITHMS:
            raise KeyRingError(f"unsupported JWT algorithm: {algorithm!r}")
        directory = Path(directory)
        state = _read_state(directory, algorithm) if directory.is_dir() else None
        if state is None:
            if not create:
                raise KeyRingError(
                    f"no usable {algorithm} signing key in {directory}: "
                    "create one with `authgate keys rotate`"
                )
            with _locked(directory):
                # Another process may have created one while we waited for the lock.
                state = _read_state(directory, algorithm)
                if state is None:
                    _create_key(directory, algorithm)
                    state = _read_state(directory, algorithm)
            if state is None:  # pragma: no cover - we just wrote it
                raise KeyRingError(f"could not create a signing key in {directory}")
        return cls(directory, algorithm, state, reload_interval=reload_interval)

    @classmethod
    def from_settings(cls, settings: Settings) -> SigningKeyRing:
        """The ring the app uses: generated in development, never in production."""
        return cls.load(
            settings.effective_signing_keys_dir,
            settings.jwt_algorithm,
            create=not settings.is_production,
            reload_interval=settings.key_reload_interval,
        )

    @staticmethod
    def rotate(directory: Path, algorithm: str) -> str:
        """Generate a new key and make it current; earlier keys stay for verification."""
        directory = Path(directory)
        with _locked(directory):
            return _create_key(directory, algorithm)

    @staticmethod
    def list(directory: Path) -> builtins.list[KeyInfo]:
        """Every key file (any algorithm), oldest first; metadata only, never key material."""
        directory = Path(directory)
        current = _read_current(directory)
        infos: builtins.list[KeyInfo] = []
        for path in _key_paths(directory):
            try:
                document = _read_jwk_file(path)
            except (OSError, ValueError) as exc:
                logger.warning(
                    "keys.file_ignored", extra={"file": path.name, "reason": type(exc).__name__}
                )
                continue
            kid = path.name.removesuffix(KEY_SUFFIX)
            infos.append(
                KeyInfo(
                    kid=kid,
                    alg=str(document.get("alg", "")),
                    created_at=_parse_created_at(document.get("created_at"), path),
                    current=kid == current,
                )
            )
        return sorted(infos, key=lambda info: (info.created_at, info.kid))

    @staticmethod
    def retire(directory: Path, kid: str) -> None:
        """Delete a non-current key: tokens it signed stop verifying everywhere within the interval."""
        directory = Path(directory)
        if not KID_PATTERN.fullmatch(kid):
            raise KeyRingError(f"not a key id: {kid!r}")
        if not directory.is_dir():
            raise KeyRingError(f"no key directory {directory}")
        with _locked(directory):
            path = directory / f"{kid}{KEY_SUFFIX}"
            if not path.is_file():
                raise KeyRingError(f"no key {kid!r} in {directory}")
            if _read_current(directory) == kid:
                raise KeyRingError(f"{kid!r} is the current key: rotate first")
            path.unlink()
        logger.info("keys.retired", extra={"kid": kid})

    # -- reloading ------------------------------------------------------------------------------------

    def maybe_reload(self, *, force: bool = False, interval: float | None = None) -> bool:
        """Re-read the directory if ``interval`` (default ``reload_interval``) has passed.

        Cheap when nothing is due (one clock read); when due, one ``scandir`` and, only if the
        directory changed, a re-parse of the keys. Returns whether the keys changed. A directory
        that suddenly holds no usable key keeps the keys already loaded (logged).
        """
        now = time.monotonic()
        due = self.reload_interval if interval is None else interval
        if not force and now - self._checked_at < due:
            return False
        if not self._lock.acquire(blocking=False):
            return False  # another thread is reloading right now
        try:
            self._checked_at = now
            signature = _directory_signature(self.directory)
            if signature == self._state.signature:
                return False
            state = _read_state(self.directory, self.algorithm)
            if state is None:
                logger.error("keys.reload_failed", extra={"directory": str(self.directory)})
                return False
            changed = state.keys.keys() != self._state.keys.keys() or (
                state.current.kid != self._state.current.kid
            )
            self._state = state
            if changed:
                logger.info(
                    "keys.reloaded",
                    extra={"current": state.current.kid, "kids": sorted(state.keys)},
                )
            return changed
        finally:
            self._lock.release()

    # -- lookups ------------------------------------------------------------------------------------

    @property
    def current(self) -> SigningKey:
        """The key that signs new tokens."""
        return self._state.current

    def verification_key(self, kid: str) -> PublicKey | None:
        key = self._state.keys.get(kid)
        return None if key is None else key.public_key

    def __contains__(self, kid: object) -> bool:
        return isinstance(kid, str) and kid in self._state.keys

    @property
    def kids(self) -> builtins.list[str]:
        return builtins.list(self._state.keys)

    def jwks(self) -> dict[str, Any]:
        """``{"keys": [...]}`` with the public parts only, current key first; empty for HS256."""
        return {"keys": [dict(jwk) for jwk in self._state.jwks["keys"]]}
