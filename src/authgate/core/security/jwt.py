"""Access tokens: issue and verify JWTs per RFC 8725 (JWT BCP) and RFC 9068 (``at+jwt``).

Verification is deliberately narrow: exactly one algorithm (the configured one), a header made
only of ``alg``/``kid``/``typ`` (so ``jwk``, ``jku``, ``x5u``, ``x5c``, ``crit``, ``b64`` ... are
refused), a kid known to the ring, an exact issuer and a single exact audience. Time claims are
checked against ``core.time.utc_now()`` (PyJWT's own clock is switched off) so the whole service
shares one clock. Anything wrong is ``InvalidAccessToken``; ``TokenExpired`` is reserved for a token
that is valid in every other respect.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import jwt as pyjwt
from jwt.types import Options

from authgate.config import Settings
from authgate.core.errors import InvalidAccessToken, TokenExpired
from authgate.core.security.keys import KID_PATTERN, UNKNOWN_KID_RELOAD_INTERVAL, SigningKeyRing
from authgate.core.time import utc_now

TOKEN_TYPE: Final = "at+jwt"  # noqa: S105 - a media type, not a secret
#: ``typ`` values accepted on verification (RFC 9068 §4; media types compare case-insensitively).
ACCEPTED_TYPES: Final = frozenset({"at+jwt", "application/at+jwt"})
#: The only header parameters our tokens carry; anything else is refused before any crypto.
ALLOWED_HEADER_PARAMS: Final = frozenset({"alg", "kid", "typ"})
REQUIRED_CLAIMS: Final = ("exp", "iat", "nbf", "iss", "aud", "sub", "sid", "jti")
#: Far above a real token (~400-700 bytes), far below anything that costs real work to parse.
MAX_TOKEN_LENGTH: Final = 8 * 1024
MAX_JTI_LENGTH: Final = 255
_SEGMENT: Final = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
_EXPECTED_ERRORS: Final = (
    pyjwt.PyJWTError,
    ValueError,  # includes json.JSONDecodeError, UnicodeDecodeError, binascii.Error
    TypeError,
    KeyError,
    OverflowError,
    RecursionError,
)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    sub: uuid.UUID
    sid: uuid.UUID
    jti: str
    iat: int
    nbf: int
    exp: int
    scope: str
    #: RFC 8176 authentication method references of the sign-in that opened the session
    #: (``()`` for a token issued before the claim existed).
    amr: tuple[str, ...]
    #: The user's roles when the token was issued (``()`` for a token issued before the claim
    #: existed).
    roles: tuple[str, ...]
    raw: dict[str, Any]


def _b64decode(segment: str) -> bytes:
    """Strict base64url (no padding, canonical): the same bytes can only be spelled one way."""
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        raise ValueError("malformed base64url segment")
    data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != segment:
        raise ValueError("non-canonical base64url segment")
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate header parameter {key!r}")
        result[key] = value
    return result


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _canonical_uuid(value: Any) -> uuid.UUID:
    if not isinstance(value, str):
        raise TypeError("not a string")
    parsed = uuid.UUID(value)
    if str(parsed) != value:
        raise ValueError("not a canonical UUID")
    return parsed


class JWTService:
    """Issues and verifies access tokens (JWT, ``typ: at+jwt``) with the signing key ring, and
    publishes its public keys as a JWKS.
    """

    def __init__(self, settings: Settings, ring: SigningKeyRing) -> None:
        if ring.algorithm != settings.jwt_algorithm:
            raise ValueError("the key ring holds keys of another algorithm than configured")
        self._ring = ring
        self._algorithm: str = settings.jwt_algorithm
        self._issuer = settings.public_url
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway
        self._ttl = settings.access_token_ttl
        options: Options = {
            "verify_signature": True,
            "require": list(REQUIRED_CLAIMS),
            "verify_aud": True,
            "strict_aud": True,
            "verify_iss": True,
            "verify_sub": True,
            "verify_jti": True,
            # Time claims are checked below against utc_now(), the service's one clock.
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "enforce_minimum_key_length": True,
        }
        self._jwt = pyjwt.PyJWT(options=options)

    @property
    def ring(self) -> SigningKeyRing:
        """The signing key ring (reloaded from disk every ``KEY_RELOAD_INTERVAL``)."""
        return self._ring

    # -- issuing ------------------------------------------------------------------------------------

    def issue(
        self,
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        scope: str = "",
        issued_at: datetime | None = None,
        jti: str | None = None,
        amr: Sequence[str] = (),
        roles: Sequence[str] = (),
    ) -> tuple[str, AccessClaims]:
        """Sign an access token with the current key; ``amr`` and ``roles`` become the claims of
        those names (JSON arrays, present in every token, ``[]`` when empty).

        ``issued_at``/``jti`` let a caller re-issue a byte-identical token (EdDSA, RS256 and HS256
        signatures are deterministic; ES256 ones are not, the claims still are).
        """
        self._ring.maybe_reload()
        moment = utc_now() if issued_at is None else issued_at
        if moment.tzinfo is None:
            raise ValueError("issued_at must be timezone-aware")
        iat = int(moment.timestamp())
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "sid": str(session_id),
            "jti": jti if jti is not None else secrets.token_urlsafe(16),
            "iat": iat,
            "nbf": iat,
            "exp": iat + self._ttl,
            "scope": scope,
            "amr": list(amr),
            "roles": list(roles),
        }
        key = self._ring.current
        token = self._jwt.encode(
            claims,
            key.private_key,
            algorithm=self._algorithm,
            headers={"kid": key.kid, "typ": TOKEN_TYPE},
        )
        return token, AccessClaims(
            sub=user_id,
            sid=session_id,
            jti=claims["jti"],
            iat=iat,
            nbf=iat,
            exp=claims["exp"],
            scope=scope,
            amr=tuple(amr),
            roles=tuple(roles),
            raw=claims,
        )

    # -- verifying ----------------------------------------------------------------------------------

    def decode(self, token: str) -> AccessClaims:
        """Verify ``token``; ``TokenExpired`` or ``InvalidAccessToken``, never anything else."""
        try:
            claims, expired = self._verify(token)
        except (InvalidAccessToken, TokenExpired):
            raise
        except _EXPECTED_ERRORS as exc:
            raise InvalidAccessToken() from exc
        if expired:
            raise TokenExpired()
        return claims

    def _verify(self, token: str) -> tuple[AccessClaims, bool]:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidAccessToken()
        if not token.isascii() or token.count(".") != 2:
            raise InvalidAccessToken()
        header_segment, payload_segment, signature_segment = token.split(".")
        if not payload_segment or not signature_segment:
            raise InvalidAccessToken()
        # Every segment canonical before PyJWT (whose decoder tolerates padding and non-zero
        # unused bits) sees it: a token has exactly one spelling, so its text can serve as a key.
        header_bytes = _b64decode(header_segment)
        _b64decode(payload_segment)
        _b64decode(signature_segment)
        header = json.loads(header_bytes.decode("utf-8"), object_pairs_hook=_no_duplicates)
        kid = self._check_header(header)

        self._ring.maybe_reload()
        key = self._ring.verification_key(kid)
        if key is None:
            # A key rotated by another process may already sign tokens: look again (rate-limited).
            self._ring.maybe_reload(interval=UNKNOWN_KID_RELOAD_INTERVAL)
            key = self._ring.verification_key(kid)
        if key is None:
            raise InvalidAccessToken()

        decoded = self._jwt.decode_complete(
            token,
            key=key,
            algorithms=[self._algorithm],
            audience=self._audience,
            issuer=self._issuer,
        )
        # PyJWT parsed the header itself: make sure it verified what we checked.
        if decoded["header"] != header:
            raise InvalidAccessToken()
        return self._check_claims(decoded["payload"])

    def _check_header(self, header: Any) -> str:
        if not isinstance(header, dict) or not set(header) <= ALLOWED_HEADER_PARAMS:
            raise InvalidAccessToken()
        if header.get("alg") != self._algorithm:
            raise InvalidAccessToken()
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES:
            raise InvalidAccessToken()
        kid = header.get("kid")
        if not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid):
            raise InvalidAccessToken()
        return kid

    def _check_claims(self, payload: dict[str, Any]) -> tuple[AccessClaims, bool]:
        iat, nbf, exp = payload["iat"], payload["nbf"], payload["exp"]
        if not (_is_int(iat) and _is_int(nbf) and _is_int(exp)) or exp <= iat:
            raise InvalidAccessToken()
        jti = payload["jti"]
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
            raise InvalidAccessToken()
        scope = payload.get("scope", "")
        if not isinstance(scope, str):
            raise InvalidAccessToken()
        # Tokens issued before the claim existed have none: no method recorded. Anything present
        # must be what we issue, a JSON array of strings.
        amr = payload.get("amr", [])
        if not isinstance(amr, list) or not all(isinstance(v, str) for v in amr):
            raise InvalidAccessToken()
        roles = payload.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(v, str) for v in roles):
            raise InvalidAccessToken()
        claims = AccessClaims(
            sub=_canonical_uuid(payload["sub"]),
            sid=_canonical_uuid(payload["sid"]),
            jti=jti,
            iat=iat,
            nbf=nbf,
            exp=exp,
            scope=scope,
            amr=tuple(amr),
            roles=tuple(roles),
            raw=payload,
        )
        now = int(utc_now().timestamp())
        if iat > now + self._leeway or nbf > now + self._leeway:
            raise InvalidAccessToken()
        return claims, exp <= now - self._leeway

    # -- publishing ---------------------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        """The public keys for ``/.well-known/jwks.json`` (``{"keys": []}`` for HS256)."""
        self._ring.maybe_reload()
        return self._ring.jwks()


__all__ = ["AccessClaims", "JWTService"]
