"""Strict validation of OpenID Connect ID tokens (OIDC Core §3.1.3.7) with PyJWT.

Checked: an asymmetric algorithm the provider advertises, the signature with a key of the
provider's JWKS (found by ``kid``; an unknown ``kid`` refetches the set once, for key rotation),
``iss`` exactly the configured issuer, ``aud`` containing our client id (and ``azp`` equal to it
when there are several audiences or ``azp`` is present), ``exp`` in the future, ``iat`` not in the
future nor older than the sign-in request, ``sub`` present, ``nonce`` equal to the one we sent,
and, when the token carries ``at_hash``, that it matches the access token issued with it
(OIDC Core §3.1.3.8: optional for the code flow, but a mismatch means the two were not issued
together). Times come from ``utc_now()`` (the one clock) with AUTHGATE_JWT_LEEWAY of skew.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

import jwt
from authlib.oidc.core.util import create_half_hash

from authgate.core.time import utc_now
from authgate.oauth.errors import InvalidIdToken
from authgate.oauth.providers import ProviderMetadata, ProviderRegistry

#: Asymmetric algorithms only: HS* would make the client secret a signing key, "none" nothing.
ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MAX_ID_TOKEN_LENGTH = 16 * 1024


class IdTokenValidator:
    def __init__(self, providers: ProviderRegistry, leeway: int) -> None:
        self._providers = providers
        self._leeway = leeway

    async def validate(
        self,
        meta: ProviderMetadata,
        id_token: str,
        *,
        nonce: str,
        not_before: datetime,
        access_token: str | None = None,
    ) -> dict[str, Any]:
        """The claims of a valid ID token, or InvalidIdToken naming the failed check."""
        if len(id_token) > MAX_ID_TOKEN_LENGTH:
            raise InvalidIdToken("too long")
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise InvalidIdToken("malformed") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS or alg not in meta.id_token_algorithms:
            raise InvalidIdToken("algorithm not allowed")
        key = await self._key(meta, header.get("kid"), alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key=key,
                algorithms=[alg],
                audience=meta.client_id,
                issuer=meta.issuer,
                options={
                    "require": ["iss", "sub", "aud", "exp", "iat"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "strict_aud": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.InvalidAudienceError:
            raise InvalidIdToken("audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidIdToken("issuer") from None
        except jwt.InvalidSignatureError:
            raise InvalidIdToken("signature") from None
        except jwt.PyJWTError as exc:
            raise InvalidIdToken(type(exc).__name__) from None
        self._check_claims(meta, claims, nonce, not_before)
        if "at_hash" in claims and access_token is not None:
            _check_at_hash(claims["at_hash"], access_token, alg)
        return claims

    def _check_claims(
        self, meta: ProviderMetadata, claims: dict[str, Any], nonce: str, not_before: datetime
    ) -> None:
        # PyJWT checks iss with ==; make sure it was a string and not a look-alike container.
        if not isinstance(claims.get("iss"), str) or claims["iss"] != meta.issuer:
            raise InvalidIdToken("issuer")
        aud = claims["aud"]
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or meta.client_id not in audiences:
            raise InvalidIdToken("audience")
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != meta.client_id:
            raise InvalidIdToken("azp")
        now = utc_now().timestamp()
        exp, iat = claims["exp"], claims["iat"]
        if not _is_number(exp) or not _is_number(iat):
            raise InvalidIdToken("exp/iat not numeric")
        if exp <= now - self._leeway:
            raise InvalidIdToken("expired")
        if iat > now + self._leeway:
            raise InvalidIdToken("issued in the future")
        if iat < not_before.timestamp() - self._leeway:
            raise InvalidIdToken("issued before the sign-in request")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 255:
            raise InvalidIdToken("sub")
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise InvalidIdToken("nonce")

    async def _key(self, meta: ProviderMetadata, kid: Any, alg: str) -> jwt.PyJWK:
        keys = await self._providers.jwks(meta)
        found = _select(keys, kid, alg)
        if found is None:
            keys = await self._providers.jwks(meta, refresh=True)
            found = _select(keys, kid, alg)
        if found is None:
            raise InvalidIdToken("no matching key")
        try:
            return jwt.PyJWK(found, algorithm=alg)
        except jwt.PyJWTError:
            raise InvalidIdToken("unusable key") from None


def _select(jwks: dict[str, Any], kid: Any, alg: str) -> dict[str, Any] | None:
    candidates = [
        k
        for k in jwks.get("keys", [])
        if isinstance(k, dict)
        and k.get("use", "sig") == "sig"
        and k.get("alg", alg) == alg
        and "d" not in k  # never accept a private key from a key set
    ]
    if isinstance(kid, str):
        candidates = [k for k in candidates if k.get("kid") == kid]
    return candidates[0] if len(candidates) == 1 else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_at_hash(at_hash: Any, access_token: str, alg: str) -> None:
    """``at_hash``: base64url of the left half of the access token's hash, the hash being the
    one of the ID token's algorithm (SHA-512 for EdDSA); computed by Authlib."""
    expected = create_half_hash(access_token, alg)
    if (
        not isinstance(at_hash, str)
        or expected is None
        or not hmac.compare_digest(at_hash.encode(), expected.rstrip(b"="))
    ):
        raise InvalidIdToken("at_hash")
