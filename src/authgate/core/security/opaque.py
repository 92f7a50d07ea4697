"""Opaque tokens: refresh tokens, email links, one-time codes and MFA sign-in tokens.

A token is ``<kind prefix><43 chars of base64url>`` (256 random bits). Only its keyed hash
(HMAC-SHA256 under AUTHGATE_SECRET_KEY) is ever stored, which gives O(1) lookup by an indexed
column without keeping anything an attacker with the database could replay.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum


class TokenKind(StrEnum):
    refresh = "agr_"
    verification = "agv_"
    reset = "agp_"
    oauth_code = "ago_"
    email_change = "age_"
    oauth_state = "ags_"
    #: A sign-in waiting for its second factor (``POST /auth/mfa/verify``).
    mfa = "agm_"
    #: A passkey sign-in's flow: names its WebAuthn challenge (``POST /auth/passkey/verify``).
    passkey = "agw_"


TOKEN_BYTES = 32
#: Longest token we are willing to hash: a prefix plus base64url of 32 bytes, with slack.
MAX_TOKEN_LENGTH = 128


class OpaqueTokens:
    def __init__(self, secret_key: bytes) -> None:
        if len(secret_key) < 32:
            raise ValueError("the secret key must be at least 32 bytes")
        self._key = secret_key

    def new(self, kind: TokenKind) -> tuple[str, str]:
        """A fresh token and its keyed hash."""
        token = kind.value + secrets.token_urlsafe(TOKEN_BYTES)
        return token, self.hash(token)

    def hash(self, token: str) -> str:
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()

    def keyed_hash(self, label: str, *parts: str) -> str:
        """HMAC-SHA256 (hex) of ``parts`` under the server key, for a value that must be
        recognised later without being kept (an IP address + User-Agent pair). ``label`` keeps
        each use apart from the others and from token hashes (no token holds a NUL)."""
        message = "\x00".join((label, *parts)).encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def derive(self, kind: TokenKind, parent: str, label: str) -> tuple[str, str]:
        """A token computed from another one: only the holder of ``parent`` *and* the server key
        can produce it. Used to hand back the same successor refresh token to a replay inside the
        reuse-grace window without ever storing a raw token."""
        mac = hmac.new(self._key, f"{label}\x00{parent}".encode(), hashlib.sha256).digest()
        token = kind.value + _b64url(mac)
        return token, self.hash(token)

    @staticmethod
    def looks_like(kind: TokenKind, token: str) -> bool:
        """Cheap shape check before any lookup (prefix and length)."""
        return (
            isinstance(token, str)
            and token.startswith(kind.value)
            and len(token) <= MAX_TOKEN_LENGTH
            and token.isascii()
        )


def _b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
