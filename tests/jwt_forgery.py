"""Forged and malformed access tokens that ``JWTService.decode`` must refuse.

``forged_tokens(valid_token, ring, settings)`` starts from a token the service issued and returns
``(case name, token)`` pairs, each broken in exactly one way: where a case is about a header or a
claim, the token is otherwise correctly signed with the ring's current key, so it is refused for
that reason and not merely for a bad signature. Cases named in ``EXPIRED_CASES`` must raise
``TokenExpired``; every other case ``InvalidAccessToken``. Reused by the HTTP tests (all are 401).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from authgate.config import Settings
from authgate.core.security.keys import SigningKeyRing
from authgate.core.time import utc_now

EXPIRED_CASES = frozenset({"expired", "expired_just_beyond_leeway"})

_MISSING = object()
_OTHER_ALGORITHM = {"EdDSA": "ES256", "ES256": "EdDSA", "RS256": "ES256", "HS256": "EdDSA"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64_json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def noncanonical_spelling(segment: str) -> str | None:
    """``segment`` with the unused low bits of its last character set: the same bytes to a
    lenient decoder, another text. ``None`` when the segment has no unused bits."""
    unused = {2: 4, 3: 2}.get(len(segment) % 4)
    if unused is None:
        return None
    index = _ALPHABET.index(segment[-1])
    spelled = segment[:-1] + _ALPHABET[index | ((1 << unused) - 1)]
    assert unb64(spelled) == unb64(segment) and spelled != segment
    return spelled


def _fresh_key(algorithm: str) -> Any:
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise AssertionError(algorithm)


def _sign(algorithm: str, key: Any, signing_input: bytes) -> bytes:
    name = "EdDSA" if algorithm in {"Ed25519", "EdDSA"} else algorithm
    alg = jwt.get_algorithm_by_name(name)
    return alg.sign(signing_input, alg.prepare_key(key))


def _hmac(secret: bytes, signing_input: bytes) -> bytes:
    return hmac.new(secret, signing_input, hashlib.sha256).digest()


def _public_secrets(public_key: Any) -> list[tuple[str, bytes]]:
    """Spellings of the public key an HS256-confusion attacker would try as the HMAC secret."""
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    found = [("pem", pem), ("pem_stripped", pem.strip()), ("der", der)]
    if isinstance(public_key, rsa.RSAPublicKey):
        found.append(
            (
                "pem_pkcs1",
                public_key.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
                ),
            )
        )
        found.append(("jwk", RSAAlgorithm.to_jwk(public_key).encode()))
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        found.append(("jwk", ECAlgorithm.to_jwk(public_key).encode()))
    else:
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        found.append(("raw", raw))
        found.append(("jwk", OKPAlgorithm.to_jwk(public_key).encode()))
    return found


def _flip_bit(data: bytes, index: int) -> bytes:
    mutable = bytearray(data)
    mutable[index] ^= 0x01
    return bytes(mutable)


def forged_tokens(
    valid_token: str, ring: SigningKeyRing, settings: Settings
) -> list[tuple[str, str]]:
    algorithm = settings.jwt_algorithm
    current = ring.current
    header_segment, payload_segment, signature_segment = valid_token.split(".")
    base_claims: dict[str, Any] = json.loads(unb64(payload_segment))
    base_header: dict[str, Any] = {"alg": algorithm, "kid": current.kid, "typ": "at+jwt"}

    def header(**changes: Any) -> dict[str, Any]:
        merged = {**base_header, **changes}
        return {k: v for k, v in merged.items() if v is not _MISSING}

    def claims(**changes: Any) -> dict[str, Any]:
        merged = {**base_claims, **changes}
        return {k: v for k, v in merged.items() if v is not _MISSING}

    def signed_raw(head: str, body: str, alg: str = algorithm, key: Any = None) -> str:
        signing_input = f"{head}.{body}".encode()
        signature = _sign(alg, current.private_key if key is None else key, signing_input)
        return f"{head}.{body}.{b64(signature)}"

    def signed(
        head: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        alg: str = algorithm,
        key: Any = None,
    ) -> str:
        return signed_raw(
            b64_json(header() if head is None else head),
            b64_json(claims() if body is None else body),
            alg,
            key,
        )

    cases: list[tuple[str, str]] = []
    add = cases.append

    # -- alg "none", stripped or with a signature kept --------------------------------------------
    for variant in ("none", "None", "NONE", "nOnE"):
        head = b64_json(header(alg=variant))
        add((f"alg_{variant}_signature_stripped", f"{head}.{payload_segment}."))
        add((f"alg_{variant}_signature_kept", f"{head}.{payload_segment}.{signature_segment}"))
    add(("alg_none_no_kid", f"{b64_json({'alg': 'none', 'typ': 'at+jwt'})}.{payload_segment}."))
    add(("signature_stripped", f"{header_segment}.{payload_segment}."))
    add(("alg_missing", signed(header(alg=_MISSING))))
    add(("alg_empty", signed(header(alg=""))))
    add(("alg_null", signed(header(alg=None))))
    add(("alg_list", signed(header(alg=[algorithm]))))
    add(("alg_lowercase", signed(header(alg=algorithm.lower()))))

    # -- algorithm confusion -----------------------------------------------------------------------
    if not isinstance(current.public_key, bytes):
        for label, secret in _public_secrets(current.public_key):
            head = b64_json(header(alg="HS256"))
            signing_input = f"{head}.{payload_segment}".encode()
            add(
                (
                    f"hs256_with_public_key_{label}",
                    f"{head}.{payload_segment}.{b64(_hmac(secret, signing_input))}",
                )
            )
    other = _OTHER_ALGORITHM[algorithm]
    add((f"other_algorithm_{other}", signed(header(alg=other), alg=other, key=_fresh_key(other))))
    add(
        (
            f"other_algorithm_{other}_configured_alg_in_header",
            signed(alg=other, key=_fresh_key(other)),
        )
    )
    if algorithm == "RS256":
        add(("same_key_PS256", signed(header(alg="PS256"), alg="PS256")))
    if algorithm == "HS256":
        add(("same_key_HS512", signed(header(alg="HS512"), alg="HS512")))
        add(("wrong_secret", signed(key=secrets.token_bytes(32))))
    if algorithm == "EdDSA":
        add(("alg_Ed25519_same_key", signed(header(alg="Ed25519"), alg="Ed25519")))

    # -- kid -------------------------------------------------------------------------------------------
    add(("kid_unknown", signed(header(kid=secrets.token_urlsafe(16)))))
    add(("kid_missing", signed(header(kid=_MISSING))))
    add(("kid_int", signed(header(kid=1))))
    add(("kid_list", signed(header(kid=[current.kid]))))
    add(("kid_null", signed(header(kid=None))))
    add(("kid_object", signed(header(kid={"kid": current.kid}))))
    add(("kid_empty", signed(header(kid=""))))
    add(("kid_path", signed(header(kid="../../etc/passwd"))))
    add(("kid_path_to_key", signed(header(kid=f"../{ring.directory.name}/{current.kid}"))))
    add(("kid_with_suffix", signed(header(kid=f"{current.kid}.json"))))
    add(("kid_trailing_newline", signed(header(kid=f"{current.kid}\n"))))
    add(("kid_nul", signed(header(kid=f"{current.kid}\x00"))))
    add(("kid_10kb", signed(header(kid="A" * 10 * 1024))))
    add(("kid_65_chars", signed(header(kid="A" * 65))))

    # -- header parameters that must never be honoured -------------------------------------------
    attacker = ed25519.Ed25519PrivateKey.generate()
    attacker_jwk = OKPAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    add(("header_jwk", signed(header(jwk=attacker_jwk))))
    add(
        (
            "header_jwk_attacker_signed",
            signed(header(alg="EdDSA", jwk=attacker_jwk), alg="EdDSA", key=attacker),
        )
    )
    add(("header_jku", signed(header(jku="https://evil.example/jwks.json"))))
    add(("header_x5u", signed(header(x5u="https://evil.example/cert.pem"))))
    add(("header_x5c", signed(header(x5c=[b64(b"not a certificate")]))))
    add(("header_x5t", signed(header(x5t=b64(b"thumbprint")))))
    add(("header_cty_jwt", signed(header(cty="JWT"))))
    add(("crit_unknown", signed(header(crit=["exp"], exp=0))))
    add(("crit_empty", signed(header(crit=[]))))
    add(("crit_b64_true", signed(header(crit=["b64"], b64=True))))
    add(("b64_false", signed(header(crit=["b64"], b64=False))))
    duplicate_alg = (
        '{"alg":"none","alg":"' + algorithm + '","kid":"' + current.kid + '","typ":"at+jwt"}'
    )
    add(("header_duplicate_alg", signed_raw(b64(duplicate_alg.encode()), payload_segment)))

    # -- typ ---------------------------------------------------------------------------------------------
    add(("typ_missing", signed(header(typ=_MISSING))))
    add(("typ_jwt", signed(header(typ="JWT"))))
    add(("typ_application_jwt", signed(header(typ="application/jwt"))))
    add(("typ_padded", signed(header(typ=" at+jwt"))))
    add(("typ_int", signed(header(typ=1))))
    add(("typ_null", signed(header(typ=None))))

    # -- time ------------------------------------------------------------------------------------------------
    now = int(utc_now().timestamp())
    leeway, ttl = settings.jwt_leeway, settings.access_token_ttl
    past = now - ttl - leeway - 60
    add(("expired", signed(body=claims(iat=past, nbf=past, exp=past + ttl))))
    edge = now - leeway - 1
    add(
        (
            "expired_just_beyond_leeway",
            signed(body=claims(iat=edge - ttl, nbf=edge - ttl, exp=edge)),
        )
    )
    future = now + leeway + 60
    add(("nbf_future", signed(body=claims(iat=now, nbf=future, exp=future + ttl))))
    add(("iat_future", signed(body=claims(iat=future, nbf=now, exp=future + ttl))))
    add(("exp_before_iat", signed(body=claims(iat=now, nbf=now, exp=now - 1))))
    add(("exp_string", signed(body=claims(exp=str(now + ttl)))))
    add(("exp_float", signed(body=claims(exp=now + ttl + 0.5))))
    add(("exp_bool", signed(body=claims(exp=True))))
    add(("iat_string", signed(body=claims(iat=str(now)))))
    add(("nbf_null", signed(body=claims(nbf=None))))

    # -- issuer and audience ---------------------------------------------------------------------------
    iss, aud = settings.public_url, settings.jwt_audience
    add(("iss_wrong", signed(body=claims(iss="https://evil.example"))))
    add(("iss_prefix", signed(body=claims(iss=iss[:-1]))))
    add(("iss_extended", signed(body=claims(iss=iss + "/"))))
    add(("iss_case", signed(body=claims(iss=iss.upper()))))
    add(("iss_list", signed(body=claims(iss=[iss]))))
    add(("iss_null", signed(body=claims(iss=None))))
    add(("aud_wrong", signed(body=claims(aud="someone-else"))))
    add(("aud_prefix", signed(body=claims(aud=aud[:-1]))))
    add(("aud_extended", signed(body=claims(aud=aud + "x"))))
    add(("aud_case", signed(body=claims(aud=aud.upper()))))
    add(("aud_empty", signed(body=claims(aud=""))))
    add(("aud_list_other", signed(body=claims(aud=["someone-else"]))))
    # Decision: a list is refused even when it holds our audience (we only ever issue a string).
    add(("aud_list_with_ours", signed(body=claims(aud=[aud, "someone-else"]))))
    add(("aud_list_only_ours", signed(body=claims(aud=[aud]))))

    # -- missing and mistyped claims ----------------------------------------------------------------
    for name in ("exp", "iat", "nbf", "iss", "aud", "sub", "sid", "jti"):
        add((f"missing_{name}", signed(body=claims(**{name: _MISSING}))))
    add(("sub_not_uuid", signed(body=claims(sub="admin"))))
    add(("sub_uppercase_uuid", signed(body=claims(sub=str(base_claims["sub"]).upper()))))
    add(("sub_uuid_no_dashes", signed(body=claims(sub=str(base_claims["sub"]).replace("-", "")))))
    add(("sub_int", signed(body=claims(sub=1))))
    add(("sid_not_uuid", signed(body=claims(sid="session"))))
    add(("sid_braced_uuid", signed(body=claims(sid="{" + str(base_claims["sid"]) + "}"))))
    add(("jti_int", signed(body=claims(jti=1))))
    add(("jti_empty", signed(body=claims(jti=""))))
    add(("scope_list", signed(body=claims(scope=["admin"]))))
    # amr is what we issue, a JSON array of strings, or absent (a token from before the claim).
    add(("amr_string", signed(body=claims(amr="pwd"))))
    add(("amr_null", signed(body=claims(amr=None))))
    add(("amr_object", signed(body=claims(amr={"pwd": True}))))
    add(("amr_int_item", signed(body=claims(amr=["pwd", 1]))))
    add(("amr_nested_list", signed(body=claims(amr=[["pwd"]]))))

    # -- tampering ------------------------------------------------------------------------------------------
    payload = unb64(payload_segment)
    jti_at = payload.index(b'"jti":"') + len(b'"jti":"')
    add(
        (
            "payload_bit_flipped",
            f"{header_segment}.{b64(_flip_bit(payload, jti_at))}.{signature_segment}",
        )
    )
    forged_claims = b64_json(claims(sub="00000000-0000-0000-0000-000000000000"))
    add(("payload_swapped", f"{header_segment}.{forged_claims}.{signature_segment}"))
    signature = unb64(signature_segment)
    add(
        (
            "signature_bit_flipped",
            f"{header_segment}.{payload_segment}.{b64(_flip_bit(signature, 0))}",
        )
    )
    add(
        (
            "signature_last_bit_flipped",
            f"{header_segment}.{payload_segment}.{b64(_flip_bit(signature, len(signature) - 1))}",
        )
    )
    add(("signature_truncated", f"{header_segment}.{payload_segment}.{b64(signature[:-1])}"))
    extended = b64(signature + b"\x00")
    add(("signature_extended", f"{header_segment}.{payload_segment}.{extended}"))

    # -- other spellings of the same bytes (a lenient decoder accepts them) ---------------------------
    for name, segment in (("header", header_segment), ("payload", payload_segment)):
        spelled = noncanonical_spelling(segment)
        if spelled is not None:
            parts = [header_segment, payload_segment, signature_segment]
            parts[0 if name == "header" else 1] = spelled
            add((f"{name}_noncanonical_last_char", ".".join(parts)))
    signature_spelled = noncanonical_spelling(signature_segment)
    assert signature_spelled is not None  # every supported signature size leaves unused bits
    add(
        (
            "signature_noncanonical_last_char",
            f"{header_segment}.{payload_segment}.{signature_spelled}",
        )
    )
    add(("signature_padded_one", f"{valid_token}="))
    add(("signature_padded_two", f"{valid_token}=="))
    add(("payload_padded", f"{header_segment}.{payload_segment}=.{signature_segment}"))
    standard = signature_segment.replace("-", "+").replace("_", "/")
    if standard != signature_segment:
        add(("signature_standard_alphabet", f"{header_segment}.{payload_segment}.{standard}"))

    # -- malformed ------------------------------------------------------------------------------------------
    add(("empty", ""))
    add(("dots_only", ".."))
    add(("one_segment", header_segment))
    add(("two_segments", f"{header_segment}.{payload_segment}"))
    add(("four_segments", f"{valid_token}.{signature_segment}"))
    add(("five_segments_jwe_like", f"{header_segment}..{payload_segment}.{signature_segment}.x"))
    add(("header_bad_base64", f"!!!{header_segment}.{payload_segment}.{signature_segment}"))
    add(("payload_bad_base64", f"{header_segment}.{payload_segment}*.{signature_segment}"))
    add(("signature_bad_base64", f"{header_segment}.{payload_segment}.{signature_segment}$"))
    add(("header_base64_padded", f"{header_segment}==.{payload_segment}.{signature_segment}"))
    add(
        (
            "header_base64_plus_slash",
            f"{header_segment.replace('-', '+').replace('_', '/')}/+.{payload_segment}.{signature_segment}",
        )
    )
    bad_json = b64(b'{"alg":')
    add(("header_bad_json", f"{bad_json}.{payload_segment}.{signature_segment}"))
    add(("header_json_array", f"{b64_json([algorithm])}.{payload_segment}.{signature_segment}"))
    add(("header_json_string", f"{b64_json(algorithm)}.{payload_segment}.{signature_segment}"))
    not_utf8 = b64(b"\xff\xfe{}")
    add(("header_not_utf8", f"{not_utf8}.{payload_segment}.{signature_segment}"))
    nested = b64(b"[" * 2000 + b"]" * 2000)
    add(("header_deeply_nested", f"{nested}.{payload_segment}.{signature_segment}"))
    add(("payload_not_json_signed", signed_raw(header_segment, b64(b"not json"))))
    add(("payload_json_array_signed", signed_raw(header_segment, b64_json([1, 2]))))
    add(("payload_not_utf8_signed", signed_raw(header_segment, b64(b"\xff\xfe\xfd"))))
    add(("non_ascii_garbage", "ünïcødé.ßçĥ.ẞ"))
    add(("non_ascii_in_signature", f"{header_segment}.{payload_segment}.{signature_segment}é"))
    add(("nul_bytes", "\x00\x00.\x00.\x00"))
    add(("whitespace_appended", f"{valid_token} "))
    add(("bearer_prefix", f"Bearer {valid_token}"))
    add(("oversized_9kib", signed(body=claims(pad="x" * 9 * 1024))))
    return cases
