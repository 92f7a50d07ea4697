from __future__ import annotations

import json
import random
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from joserfc import jwt as jose_jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import KeySet

from authgate.config import Settings
from authgate.core.errors import InvalidAccessToken, TokenExpired
from authgate.core.security import jwt as jwt_module
from authgate.core.security.jwt import MAX_TOKEN_LENGTH, JWTService
from authgate.core.security.keys import SigningKeyRing
from authgate.core.time import shifted, utc_now
from tests.jwt_forgery import EXPIRED_CASES, forged_tokens, unb64

ALGORITHMS = ["EdDSA", "ES256", "RS256", "HS256"]
ASYMMETRIC = ["EdDSA", "ES256", "RS256"]


def make_settings(directory: Path, algorithm: str, **overrides: Any) -> Settings:
    return Settings(
        _env_file=None,
        signing_keys_dir=directory,
        jwt_algorithm=algorithm,
        **overrides,
    )


def make_service(settings: Settings) -> JWTService:
    ring = SigningKeyRing.load(
        settings.effective_signing_keys_dir,
        settings.jwt_algorithm,
        create=True,
        reload_interval=settings.key_reload_interval,
    )
    return JWTService(settings, ring)


@pytest.fixture(params=ALGORITHMS)
def algorithm(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(tmp_path: Path, algorithm: str) -> Settings:
    return make_settings(tmp_path, algorithm)


@pytest.fixture
def service(settings: Settings) -> JWTService:
    return make_service(settings)


def header_of(token: str) -> dict[str, Any]:
    return dict(json.loads(unb64(token.split(".")[0])))


def assert_rejected(service: JWTService, token: Any, expected: type[Exception]) -> None:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the exact type is asserted below
        service.decode(token)
    assert type(caught.value) is expected, f"{type(caught.value).__name__}: {caught.value!r}"


# -- issuing and verifying ------------------------------------------------------------------------


def test_issued_token_verifies(service: JWTService, settings: Settings) -> None:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    token, issued = service.issue(user_id=user_id, session_id=session_id, scope="profile")

    assert header_of(token) == {
        "alg": settings.jwt_algorithm,
        "kid": service.ring.current.kid,
        "typ": "at+jwt",
    }
    claims = service.decode(token)
    assert claims == issued
    assert claims.sub == user_id
    assert claims.sid == session_id
    assert claims.scope == "profile"
    assert claims.nbf == claims.iat
    assert claims.exp == claims.iat + settings.access_token_ttl
    assert abs(claims.iat - utc_now().timestamp()) < 5
    assert claims.raw["iss"] == settings.public_url
    assert claims.raw["aud"] == settings.jwt_audience
    assert set(claims.raw) == {
        "iss",
        "aud",
        "sub",
        "sid",
        "jti",
        "iat",
        "nbf",
        "exp",
        "scope",
        "amr",
        "roles",
    }
    assert claims.amr == ()
    assert claims.raw["amr"] == []
    assert claims.roles == ()
    assert claims.raw["roles"] == []
    assert len(token) < 1024


def test_amr_is_a_json_array_claim(service: JWTService) -> None:
    token, issued = service.issue(
        user_id=uuid.uuid4(), session_id=uuid.uuid4(), amr=("pwd", "otp", "mfa")
    )
    assert json.loads(unb64(token.split(".")[1]))["amr"] == ["pwd", "otp", "mfa"]
    assert issued.amr == ("pwd", "otp", "mfa")
    assert service.decode(token).amr == ("pwd", "otp", "mfa")


@pytest.mark.parametrize("algorithm", ["EdDSA", "HS256"])
def test_a_token_issued_before_the_amr_claim_is_valid_with_no_methods(
    service: JWTService, settings: Settings
) -> None:
    """Tokens signed by the previous release (no ``amr``) keep working until they expire."""
    _, issued = service.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4(), amr=("pwd",))
    claims = {k: v for k, v in issued.raw.items() if k != "amr"}
    key = service.ring.current
    older = pyjwt.encode(
        claims,
        key.private_key,
        algorithm=settings.jwt_algorithm,
        headers={"kid": key.kid, "typ": "at+jwt"},
    )
    assert "amr" not in json.loads(unb64(older.split(".")[1]))
    decoded = service.decode(older)
    assert decoded.amr == ()
    assert decoded.sid == issued.sid


@pytest.mark.parametrize("algorithm", ["EdDSA"])
def test_roles_claim(service: JWTService, settings: Settings) -> None:
    """``roles`` is a JSON array of strings; a token without it (signed before the claim
    existed) has none, and any other shape is refused."""
    token, issued = service.issue(
        user_id=uuid.uuid4(), session_id=uuid.uuid4(), roles=("support", "billing:read")
    )
    assert json.loads(unb64(token.split(".")[1]))["roles"] == ["support", "billing:read"]
    assert service.decode(token).roles == ("support", "billing:read")
    key = service.ring.current

    def signed(claims: dict[str, object]) -> str:
        return pyjwt.encode(
            claims,
            key.private_key,
            algorithm=settings.jwt_algorithm,
            headers={"kid": key.kid, "typ": "at+jwt"},
        )

    older = signed({k: v for k, v in issued.raw.items() if k != "roles"})
    assert service.decode(older).roles == ()
    for bad in ("support", [1], {"a": 1}, None):
        with pytest.raises(InvalidAccessToken):
            service.decode(signed({**issued.raw, "roles": bad}))


def test_jti_is_random(service: JWTService) -> None:
    ids = {service.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4())[1].jti for _ in range(20)}
    assert len(ids) == 20


@pytest.mark.parametrize("algorithm", ["EdDSA", "RS256", "HS256"])
def test_reissue_is_byte_identical_for_deterministic_algorithms(service: JWTService) -> None:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    moment = utc_now() - timedelta(seconds=5)
    first, claims = service.issue(
        user_id=user_id, session_id=session_id, issued_at=moment, jti="fixed-jti"
    )
    second, _ = service.issue(
        user_id=user_id, session_id=session_id, issued_at=moment, jti="fixed-jti"
    )
    assert first == second
    assert claims.jti == "fixed-jti"
    assert claims.iat == int(moment.timestamp())


def test_naive_issued_at_is_refused(service: JWTService) -> None:
    with pytest.raises(ValueError, match="timezone"):
        service.issue(
            user_id=uuid.uuid4(),
            session_id=uuid.uuid4(),
            issued_at=datetime(2030, 1, 1),  # noqa: DTZ001 - the point of the test
        )


def test_ring_of_another_algorithm_is_refused(tmp_path: Path) -> None:
    ring = SigningKeyRing.load(tmp_path, "ES256", create=True)
    with pytest.raises(ValueError, match="algorithm"):
        JWTService(make_settings(tmp_path, "EdDSA"), ring)


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
def test_token_verifies_with_an_independent_implementation_from_the_jwks_alone(
    service: JWTService, settings: Settings
) -> None:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    token, issued = service.issue(user_id=user_id, session_id=session_id, scope="a b")
    jwks = json.loads(json.dumps(service.jwks()))  # exactly what /.well-known/jwks.json serves

    key_set = KeySet.import_key_set(jwks)
    with warnings.catch_warnings():
        # joserfc flags the polymorphic "EdDSA" name (RFC 9864 prefers "Ed25519"); the contract
        # fixes "EdDSA", which every JOSE library still understands.
        warnings.simplefilter("ignore", SecurityWarning)
        decoded = jose_jwt.decode(token, key_set, algorithms=[settings.jwt_algorithm])

    assert decoded.header == {
        "alg": settings.jwt_algorithm,
        "kid": service.ring.current.kid,
        "typ": "at+jwt",
    }
    registry = jose_jwt.JWTClaimsRegistry(
        now=int(utc_now().timestamp()),
        leeway=settings.jwt_leeway,
        iss={"essential": True, "value": settings.public_url},
        aud={"essential": True, "value": settings.jwt_audience},
        sub={"essential": True, "value": str(user_id)},
        sid={"essential": True, "value": str(session_id)},
        jti={"essential": True, "value": issued.jti},
        exp={"essential": True},
        iat={"essential": True},
        nbf={"essential": True},
        scope={"essential": True, "value": "a b"},
    )
    registry.validate(decoded.claims)
    assert decoded.claims == issued.raw


@pytest.mark.parametrize("algorithm", ["HS256"])
def test_hs256_publishes_no_key(service: JWTService) -> None:
    assert service.jwks() == {"keys": []}


# -- time -------------------------------------------------------------------------------------------


def test_expiry_follows_the_service_clock_with_leeway(
    service: JWTService, settings: Settings
) -> None:
    token, _ = service.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4())
    ttl, leeway = settings.access_token_ttl, settings.jwt_leeway

    with shifted(timedelta(seconds=ttl + leeway - 5)):
        service.decode(token)  # expired, but within the allowed clock skew
    with shifted(timedelta(seconds=ttl + leeway + 5)):
        assert_rejected(service, token, TokenExpired)


def test_token_issued_slightly_in_the_future_is_accepted_within_leeway(
    service: JWTService, settings: Settings
) -> None:
    ahead = utc_now() + timedelta(seconds=settings.jwt_leeway - 5)
    token, _ = service.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4(), issued_at=ahead)
    service.decode(token)

    beyond = utc_now() + timedelta(seconds=settings.jwt_leeway + 5)
    token, _ = service.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4(), issued_at=beyond)
    assert_rejected(service, token, InvalidAccessToken)


def test_token_issued_in_the_past_is_expired(service: JWTService, settings: Settings) -> None:
    past = utc_now() - timedelta(seconds=settings.access_token_ttl + settings.jwt_leeway + 1)
    token, _ = service.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4(), issued_at=past)
    assert_rejected(service, token, TokenExpired)


@pytest.mark.parametrize("algorithm", ["EdDSA"])
def test_expired_token_with_a_bad_signature_is_invalid_not_expired(
    service: JWTService, settings: Settings
) -> None:
    past = utc_now() - timedelta(days=1)
    token, _ = service.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4(), issued_at=past)
    head, payload, signature = token.split(".")
    tampered = f"{head}.{payload}.{signature[::-1]}"
    assert_rejected(service, tampered, InvalidAccessToken)


# -- rotation ---------------------------------------------------------------------------------------


def test_rotation(service: JWTService, settings: Settings, tmp_path: Path) -> None:
    other_process = make_service(settings)  # same directory, as a second worker would have
    old_token, _ = service.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4())
    old_kid = header_of(old_token)["kid"]

    new_kid = SigningKeyRing.rotate(tmp_path, settings.jwt_algorithm)  # `authgate keys rotate`
    assert service.ring.maybe_reload(force=True)
    new_token, _ = service.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4())
    assert header_of(new_token)["kid"] == new_kid
    service.decode(old_token)  # signed before the rotation: still good
    service.decode(new_token)

    assert other_process.ring.current.kid == old_kid  # not re-read yet
    other_process.ring.maybe_reload(force=True)
    assert other_process.ring.current.kid == new_kid
    other_process.decode(new_token)
    other_process.decode(old_token)
    assert (
        other_process.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4())[0].split(".")[0]
        == (new_token.split(".")[0])
    )
    if settings.jwt_algorithm != "HS256":
        assert {k["kid"] for k in other_process.jwks()["keys"]} == {old_kid, new_kid}

    SigningKeyRing.retire(tmp_path, old_kid)
    service.ring.maybe_reload(force=True)
    assert_rejected(service, old_token, InvalidAccessToken)
    service.decode(new_token)


def test_rotation_reaches_a_process_through_its_reload_interval(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "EdDSA", key_reload_interval=1)
    service = make_service(settings)
    new_kid = SigningKeyRing.rotate(tmp_path, "EdDSA")
    service.jwks()
    assert service.ring.current.kid != new_kid

    time.sleep(1.05)
    token, _ = service.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4())
    assert header_of(token)["kid"] == new_kid


@pytest.mark.parametrize("algorithm", ["ES256"])
def test_unknown_kid_triggers_a_prompt_reload(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that already signs with a freshly rotated key must not be refused by its peers."""
    signer, verifier = make_service(settings), make_service(settings)
    new_kid = SigningKeyRing.rotate(tmp_path, "ES256")
    signer.ring.maybe_reload(force=True)
    token, _ = signer.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4())
    assert header_of(token)["kid"] == new_kid

    monkeypatch.setattr(jwt_module, "UNKNOWN_KID_RELOAD_INTERVAL", 0.0)
    verifier.decode(token)
    assert verifier.ring.current.kid == new_kid


# -- rejections -------------------------------------------------------------------------------------


def test_forged_tokens_are_rejected(service: JWTService, settings: Settings) -> None:
    valid, _ = service.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4(), scope="x")
    cases = forged_tokens(valid, service.ring, settings)
    names = [name for name, _ in cases]
    assert len(names) == len(set(names))
    assert len(cases) > 100
    assert set(names) >= EXPIRED_CASES

    failures = []
    for name, token in cases:
        expected = TokenExpired if name in EXPIRED_CASES else InvalidAccessToken
        try:
            service.decode(token)
        except Exception as exc:  # noqa: BLE001 - collecting every wrong outcome
            if type(exc) is not expected:
                failures.append(f"{name}: {type(exc).__name__} {exc!r}")
        else:
            failures.append(f"{name}: accepted")
    assert failures == []
    service.decode(valid)  # the base token itself is fine


@pytest.mark.parametrize("algorithm", ["EdDSA"])
def test_oversized_token_is_refused_before_parsing(service: JWTService) -> None:
    assert_rejected(service, "a" * (MAX_TOKEN_LENGTH + 1), InvalidAccessToken)
    assert_rejected(service, "e30." * 3000, InvalidAccessToken)


@pytest.mark.parametrize("algorithm", ["EdDSA"])
@pytest.mark.parametrize("value", [None, b"abc.def.ghi", 123, ["a", "b", "c"]])
def test_non_string_input_is_invalid(service: JWTService, value: Any) -> None:
    assert_rejected(service, value, InvalidAccessToken)


@pytest.mark.parametrize("algorithm", ["EdDSA", "RS256"])
def test_random_mutations_only_raise_the_two_token_errors(service: JWTService) -> None:
    token, _ = service.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4())
    rng = random.Random(8725)
    alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ é\x00{}"'
    for _ in range(600):
        chars = list(token)
        for _ in range(rng.randint(1, 4)):
            action = rng.random()
            position = rng.randrange(len(chars))
            if action < 0.5:
                chars[position] = rng.choice(alphabet)
            elif action < 0.75:
                del chars[position]
            else:
                chars.insert(position, rng.choice(alphabet))
        mutated = "".join(chars)
        if mutated == token:
            continue
        with pytest.raises((InvalidAccessToken, TokenExpired)):
            service.decode(mutated)


def test_errors_are_401(service: JWTService) -> None:
    with pytest.raises(InvalidAccessToken) as caught:
        service.decode("nope")
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_issued_at_can_be_any_aware_timezone(service: JWTService) -> None:
    moment = datetime.now(UTC).astimezone()
    _, claims = service.issue(user_id=uuid.uuid4(), session_id=uuid.uuid4(), issued_at=moment)
    assert claims.iat == int(moment.timestamp())
