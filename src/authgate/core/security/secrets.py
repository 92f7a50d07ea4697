"""Where the service's secrets come from: supplied (production) or generated once (development).

Development keys live under AUTHGATE_KEYS_DIR (``./var/keys``), created with mode 0600 (directories 0700) on first
use by ``create_app`` — never at import time. Production refuses to start without supplied keys
(see ``Settings.production_problems``).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from authgate.config import Settings
from authgate.core.security.crypto import EncryptionKey, new_key_spec, parse_key_ring
from authgate.core.security.files import ensure_private_directory


def _read_or_create(path: Path, make: str) -> str:
    if path.exists():
        return path.read_text().strip()
    ensure_private_directory(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(make + "\n")
    return make


def secret_key(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    if settings.is_production:
        raise RuntimeError("AUTHGATE_SECRET_KEY is required in production")
    return _read_or_create(settings.keys_dir / "secret_key", secrets.token_urlsafe(48)).encode()


def encryption_keys(settings: Settings) -> list[EncryptionKey]:
    if settings.encryption_keys is not None:
        return parse_key_ring(settings.encryption_keys.get_secret_value())
    if settings.is_production:
        raise RuntimeError("AUTHGATE_ENCRYPTION_KEYS is required in production")
    spec = _read_or_create(settings.keys_dir / "encryption_keys", new_key_spec("dev1"))
    return parse_key_ring(spec)
