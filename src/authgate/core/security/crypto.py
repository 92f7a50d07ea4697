"""EncryptionService: AES-256-GCM for data that must be recovered (provider tokens, outbox payloads).

Every ciphertext is ``version(1) | kid length(1) | kid | nonce(12) | ciphertext+tag`` and is bound
to its row through associated data, so a ciphertext copied to another row does not decrypt.
The key ring comes from AUTHGATE_ENCRYPTION_KEYS (``kid:base64key,…``, first = current).
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = 1
NONCE_BYTES = 12


class DecryptionError(Exception):
    """The ciphertext is corrupt, bound to other data, or its key is no longer in the ring."""


@dataclass(frozen=True, slots=True)
class EncryptionKey:
    kid: str
    key: bytes


def parse_key_ring(spec: str) -> list[EncryptionKey]:
    keys: list[EncryptionKey] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        kid, sep, b64 = item.partition(":")
        if not sep or not kid or len(kid) > 64:
            raise ValueError("encryption keys are kid:base64key pairs")
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"encryption key {kid!r} is not valid base64") from exc
        if len(raw) != 32:
            raise ValueError(f"encryption key {kid!r} must be 32 bytes (AES-256)")
        keys.append(EncryptionKey(kid, raw))
    if not keys:
        raise ValueError("the encryption key ring is empty")
    if len({k.kid for k in keys}) != len(keys):
        raise ValueError("duplicate encryption key ids")
    return keys


def new_key_spec(kid: str) -> str:
    return f"{kid}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


class EncryptionService:
    """AES-256-GCM with a key ring (``AUTHGATE_ENCRYPTION_KEYS``): encrypts with the current key,
    decrypts with whichever key a ciphertext names; associated data binds each ciphertext to
    its row and field.
    """

    def __init__(self, keys: list[EncryptionKey]) -> None:
        if not keys:
            raise ValueError("the encryption key ring is empty")
        self._current = keys[0]
        self._by_kid = {k.kid: AESGCM(k.key) for k in keys}

    @property
    def current_kid(self) -> str:
        """The id of the key new ciphertexts are made with (the first of the ring)."""
        return self._current.kid

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        """Encrypt with the current key.

        Args:
            plaintext: What to encrypt.
            associated_data: What the ciphertext is bound to (row id, field); the same bytes are
                needed to decrypt.

        Returns:
            Version, key id, nonce and ciphertext in one blob.
        """
        kid = self._current.kid.encode()
        nonce = os.urandom(NONCE_BYTES)
        body = self._by_kid[self._current.kid].encrypt(nonce, plaintext, associated_data)
        return bytes([_VERSION, len(kid)]) + kid + nonce + body

    def decrypt(self, blob: bytes, associated_data: bytes) -> bytes:
        """Decrypt a blob made by ``encrypt`` with any key of the ring.

        Args:
            blob: The stored ciphertext.
            associated_data: The bytes it was bound to.

        Returns:
            The plaintext.

        Raises:
            DecryptionError: Unknown format or key id, or the ciphertext does not authenticate
                (altered, or bound to other data).
        """
        kid, nonce, body = self._split(blob)
        aead = self._by_kid.get(kid)
        if aead is None:
            raise DecryptionError("unknown key id")
        try:
            return aead.decrypt(nonce, body, associated_data)
        except InvalidTag as exc:
            raise DecryptionError("ciphertext does not authenticate") from exc

    def key_id_of(self, blob: bytes) -> str:
        """The key id a ciphertext was made with (token info without decrypting)."""
        return self._split(blob)[0]

    def needs_reencrypt(self, blob: bytes) -> bool:
        """Whether ``blob`` was made with another key than the current one.

        Args:
            blob: A stored ciphertext.

        Returns:
            True when ``authgate keys reencrypt`` should rewrite it.
        """
        return self.key_id_of(blob) != self._current.kid

    def reencrypt(self, blob: bytes, associated_data: bytes) -> bytes:
        """Decrypt ``blob`` and encrypt it again with the current key.

        Args:
            blob: A stored ciphertext.
            associated_data: The bytes it is bound to (kept).

        Returns:
            The new ciphertext.

        Raises:
            DecryptionError: The blob cannot be decrypted with the ring.
        """
        return self.encrypt(self.decrypt(blob, associated_data), associated_data)

    @staticmethod
    def _split(blob: bytes) -> tuple[str, bytes, bytes]:
        if len(blob) < 2 or blob[0] != _VERSION:
            raise DecryptionError("unknown ciphertext format")
        kid_len = blob[1]
        start = 2 + kid_len
        if len(blob) < start + NONCE_BYTES + 16:
            raise DecryptionError("ciphertext too short")
        kid = blob[2:start].decode("ascii", errors="replace")
        return kid, blob[start : start + NONCE_BYTES], blob[start + NONCE_BYTES :]
