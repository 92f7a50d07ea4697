from __future__ import annotations

import json
import stat
import threading
import time
from pathlib import Path

import pytest

from authgate.core.security.keys import KeyInfo, KeyRingError, SigningKeyRing

ALGORITHMS = ["EdDSA", "ES256", "RS256", "HS256"]
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_development_load_creates_a_private_key_file(tmp_path: Path, algorithm: str) -> None:
    directory = tmp_path / "keys" / "signing"
    ring = SigningKeyRing.load(directory, algorithm, create=True)

    kid = ring.current.kid
    key_file = directory / f"{kid}.json"
    assert _mode(directory) == 0o700
    assert _mode(key_file) == 0o600
    assert _mode(directory / "current") == 0o600
    assert (directory / "current").read_text().strip() == kid
    document = json.loads(key_file.read_text())
    assert document["kid"] == kid
    assert document["alg"] == algorithm
    assert document["use"] == "sig"
    assert ("k" if algorithm == "HS256" else "d") in document  # a private JWK
    assert ring.verification_key(kid) is not None
    assert ring.verification_key("nope") is None

    # A second load reuses the key instead of making another.
    again = SigningKeyRing.load(directory, algorithm, create=True)
    assert again.current.kid == kid
    assert len(list(directory.glob("*.json"))) == 1


def test_production_load_refuses_an_empty_or_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no usable EdDSA signing key"):
        SigningKeyRing.load(tmp_path / "missing", "EdDSA", create=False)
    assert not (tmp_path / "missing").exists()  # production never writes

    (tmp_path / "empty").mkdir()
    with pytest.raises(KeyRingError):
        SigningKeyRing.load(tmp_path / "empty", "EdDSA", create=False)
    assert list((tmp_path / "empty").iterdir()) == []


def test_keys_of_another_algorithm_are_ignored(tmp_path: Path) -> None:
    SigningKeyRing.rotate(tmp_path, "ES256")
    with pytest.raises(RuntimeError):
        SigningKeyRing.load(tmp_path, "EdDSA", create=False)

    es_kid = SigningKeyRing.load(tmp_path, "ES256", create=False).current.kid
    eddsa = SigningKeyRing.load(tmp_path, "EdDSA", create=True)  # dev: makes an EdDSA key
    assert eddsa.current.kid != es_kid
    assert eddsa.verification_key(es_kid) is None
    assert eddsa.kids == [eddsa.current.kid]
    # "current" now names the EdDSA key; an ES256 process falls back to its newest ES256 key.
    assert SigningKeyRing.load(tmp_path, "ES256", create=False).current.kid == es_kid


def test_unsupported_algorithm_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyRingError):
        SigningKeyRing.load(tmp_path, "none", create=True)
    with pytest.raises(KeyRingError):
        SigningKeyRing.rotate(tmp_path, "HS512")


def test_rotate_keeps_previous_keys_for_verification(tmp_path: Path) -> None:
    first = SigningKeyRing.load(tmp_path, "EdDSA", create=True).current.kid
    second = SigningKeyRing.rotate(tmp_path, "EdDSA")
    assert second != first

    ring = SigningKeyRing.load(tmp_path, "EdDSA", create=False)
    assert ring.current.kid == second
    assert ring.verification_key(first) is not None
    assert [jwk["kid"] for jwk in ring.jwks()["keys"]] == [second, first]

    infos = SigningKeyRing.list(tmp_path)
    assert [(i.kid, i.alg, i.current) for i in infos] == [
        (first, "EdDSA", False),
        (second, "EdDSA", True),
    ]
    assert all(isinstance(i, KeyInfo) for i in infos)
    assert infos[0].created_at <= infos[1].created_at
    assert infos[0].created_at.tzinfo is not None


def test_list_never_exposes_key_material(tmp_path: Path) -> None:
    ring = SigningKeyRing.load(tmp_path, "HS256", create=True)
    secret_jwk = json.loads((tmp_path / f"{ring.current.kid}.json").read_text())
    infos = SigningKeyRing.list(tmp_path)
    assert set(KeyInfo.__dataclass_fields__) == {"kid", "alg", "created_at", "current"}
    assert secret_jwk["k"] not in repr(infos)
    assert secret_jwk["k"] not in repr(ring.current)
    assert "private_key" not in repr(ring.current)


def test_retire(tmp_path: Path) -> None:
    old = SigningKeyRing.load(tmp_path, "ES256", create=True).current.kid
    new = SigningKeyRing.rotate(tmp_path, "ES256")

    with pytest.raises(KeyRingError, match="current"):
        SigningKeyRing.retire(tmp_path, new)
    with pytest.raises(KeyRingError):
        SigningKeyRing.retire(tmp_path, "unknown")
    with pytest.raises(KeyRingError):
        SigningKeyRing.retire(tmp_path, "../current")
    with pytest.raises(KeyRingError):
        SigningKeyRing.retire(tmp_path / "missing", old)
    assert not (tmp_path / "missing").exists()

    SigningKeyRing.retire(tmp_path, old)
    assert not (tmp_path / f"{old}.json").exists()
    ring = SigningKeyRing.load(tmp_path, "ES256", create=False)
    assert ring.verification_key(old) is None
    assert [i.kid for i in SigningKeyRing.list(tmp_path)] == [new]


def test_maybe_reload_follows_another_process_within_the_interval(tmp_path: Path) -> None:
    ring = SigningKeyRing.load(tmp_path, "EdDSA", create=True, reload_interval=0.2)
    first = ring.current.kid

    second = SigningKeyRing.rotate(tmp_path, "EdDSA")  # as `authgate keys rotate` would
    assert ring.maybe_reload() is False  # not due yet: cheap no-op
    assert ring.current.kid == first

    time.sleep(0.25)
    assert ring.maybe_reload() is True
    assert ring.current.kid == second
    assert ring.verification_key(first) is not None

    time.sleep(0.25)
    assert ring.maybe_reload() is False  # due, but nothing changed

    SigningKeyRing.retire(tmp_path, first)
    assert ring.maybe_reload(force=True) is True
    assert ring.verification_key(first) is None


def test_reload_keeps_the_keys_when_the_directory_loses_them(tmp_path: Path) -> None:
    ring = SigningKeyRing.load(tmp_path, "EdDSA", create=True)
    kid = ring.current.kid
    (tmp_path / f"{kid}.json").unlink()
    assert ring.maybe_reload(force=True) is False
    assert ring.current.kid == kid


def test_broken_files_are_ignored(tmp_path: Path) -> None:
    ring = SigningKeyRing.load(tmp_path, "EdDSA", create=True)
    (tmp_path / "garbage.json").write_text("{not json")
    (tmp_path / "array.json").write_text("[]")
    (tmp_path / "mismatch.json").write_text(
        (tmp_path / f"{ring.current.kid}.json").read_text()  # kid inside != file name
    )
    (tmp_path / "bad key!.json").write_text("{}")  # not a kid: never even read
    (tmp_path / "nokey.json").write_text(json.dumps({"kid": "nokey", "alg": "EdDSA"}))

    again = SigningKeyRing.load(tmp_path, "EdDSA", create=False)
    assert again.kids == [ring.current.kid]
    # list() shows every well-formed key file, usable or not.
    assert {i.kid for i in SigningKeyRing.list(tmp_path)} == {ring.current.kid, "nokey"}


def test_current_pointing_nowhere_falls_back_to_the_newest_key(tmp_path: Path) -> None:
    SigningKeyRing.load(tmp_path, "RS256", create=True)
    newest = SigningKeyRing.rotate(tmp_path, "RS256")
    (tmp_path / "current").write_text("doesnotexist\n")
    assert SigningKeyRing.load(tmp_path, "RS256", create=False).current.kid == newest
    (tmp_path / "current").unlink()
    assert SigningKeyRing.load(tmp_path, "RS256", create=False).current.kid == newest


def test_concurrent_first_start_creates_one_key(tmp_path: Path) -> None:
    directory = tmp_path / "signing"
    kids: list[str] = []

    def start() -> None:
        kids.append(SigningKeyRing.load(directory, "ES256", create=True).current.kid)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(kids)) == 1
    assert len(list(directory.glob("*.json"))) == 1


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_jwks_has_public_parts_only(tmp_path: Path, algorithm: str) -> None:
    ring = SigningKeyRing.load(tmp_path, algorithm, create=True)
    SigningKeyRing.rotate(tmp_path, algorithm)
    ring.maybe_reload(force=True)
    jwks = ring.jwks()
    if algorithm == "HS256":
        assert jwks == {"keys": []}
        return
    assert len(jwks["keys"]) == 2
    for jwk in jwks["keys"]:
        assert not PRIVATE_MEMBERS & set(jwk)
        assert jwk["alg"] == algorithm
        assert jwk["use"] == "sig"
        assert jwk["kid"] in ring.kids
        expected = {"EdDSA": {"kty", "crv", "x"}, "ES256": {"kty", "crv", "x", "y"}}.get(
            algorithm, {"kty", "n", "e"}
        )
        assert expected <= set(jwk)
    # Callers may mutate what they get without touching the ring.
    jwks["keys"][0]["kid"] = "changed"
    assert ring.jwks()["keys"][0]["kid"] != "changed"


def test_from_settings(tmp_path: Path) -> None:
    from authgate.config import Settings

    dev = Settings(_env_file=None, signing_keys_dir=tmp_path / "dev", jwt_algorithm="ES256")
    ring = SigningKeyRing.from_settings(dev)
    assert ring.algorithm == "ES256"
    assert ring.reload_interval == dev.key_reload_interval
    assert ring.directory == tmp_path / "dev"

    prod = Settings(_env_file=None, env="production", signing_keys_dir=tmp_path / "prod")
    with pytest.raises(RuntimeError):
        SigningKeyRing.from_settings(prod)
    assert not (tmp_path / "prod").exists()


def test_development_keys_dir_and_signing_dir_are_private(tmp_path: Path) -> None:
    """The default layout (keys_dir/signing) creates keys_dir on the way: 0700 too, umask or not."""
    import os

    from authgate.config import Settings
    from authgate.core.security import secrets as dev_secrets

    settings = Settings(_env_file=None, keys_dir=tmp_path / "var" / "keys")
    old_umask = os.umask(0o002)  # a permissive umask must not widen anything
    try:
        SigningKeyRing.from_settings(settings)
        dev_secrets.secret_key(settings)
        dev_secrets.encryption_keys(settings)
    finally:
        os.umask(old_umask)
    keys_dir = tmp_path / "var" / "keys"
    assert _mode(tmp_path / "var") == 0o700  # created by us on the way: private as well
    assert _mode(keys_dir) == 0o700
    assert _mode(keys_dir / "signing") == 0o700
    assert _mode(keys_dir / "secret_key") == 0o600
    assert _mode(keys_dir / "encryption_keys") == 0o600
    for key_file in (keys_dir / "signing").glob("*.json"):
        assert _mode(key_file) == 0o600


def test_secrets_first_then_signing_dir_is_private(tmp_path: Path) -> None:
    from authgate.config import Settings
    from authgate.core.security import secrets as dev_secrets

    settings = Settings(_env_file=None, keys_dir=tmp_path / "k")
    dev_secrets.secret_key(settings)
    SigningKeyRing.from_settings(settings)
    assert _mode(tmp_path / "k") == 0o700
    assert _mode(tmp_path / "k" / "signing") == 0o700
