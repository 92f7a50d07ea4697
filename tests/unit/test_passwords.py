"""PasswordService: the NIST SP 800-63B policy, Argon2id hashing, legacy hashes, the pool."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import statistics
import threading
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from typing import Any

import bcrypt
import pytest
from pwdlib.hashers.argon2 import Argon2Hasher

from authgate.config import Settings
from authgate.core.errors import PasswordPolicyError, ServiceUnavailable
from authgate.core.security import passwords as passwords_module
from authgate.core.security.passwords import (
    PasswordPolicy,
    PasswordService,
    _blocklist,
    _strength,
)

PASSPHRASE = "correct horse battery staple"
EMAIL = "ada.lovelace@example.com"
NAME = "Ada King Lovelace"
#: 256 random characters (``secrets.token_urlsafe(192)``): long enough and strong.
STRONG_256 = (
    "9cOeP8bnNrQ3BB0RmxaFsNWpQE8hLD147T2j56fvrKUPvLoSok0qFb2g00ecrBnJuNpScfITQS6PUw7JY5FD9y"
    "WgqiPbtSgwF9fjNS3Ocgb1s1xNmpxR4Hf04fadmFlnFbENxML6li-1igAuJaN_0JwtUSi7yjiCXtIVeY94NIlB"
    "DCMt7eSmdHhT3kFJk089roGGsMYQuFeBpBL3T0lxdvMPsLSLjo9xAmSI2gY72gP-8v0XU1Xm5bciNs207JPt"
)


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"hash_workers": 2, **overrides}
    return Settings(_env_file=None, **values)


@pytest.fixture
async def service() -> AsyncIterator[PasswordService]:
    svc = PasswordService(make_settings())
    yield svc
    await svc.close()


def reason(exc: pytest.ExceptionInfo[PasswordPolicyError]) -> Any:
    return exc.value.extra["reason"]


def forbid_hashing(monkeypatch: pytest.MonkeyPatch, svc: PasswordService) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("the password must not reach the hashing pool")

    monkeypatch.setattr(svc._pool, "submit", boom)


def to_fullwidth(text: str) -> str:
    """The FULLWIDTH forms (U+FF01..U+FF5E) of printable ASCII; NFKC maps them back."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def ab64(raw: bytes) -> str:
    """passlib's adapted base64: '.' for '+', no padding."""
    return base64.b64encode(raw).decode().rstrip("=").replace("+", ".")


def django_pbkdf2(password: str, salt: str, iterations: int) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode()}"


def passlib_pbkdf2(password: str, salt: bytes, rounds: int) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds)
    return f"$pbkdf2-sha256${rounds}${ab64(salt)}${ab64(digest)}"


# -- policy ------------------------------------------------------------------------------------


async def test_length_is_counted_in_code_points(service: PasswordService) -> None:
    assert await service.validate("x7#kq!vw2m$pzr4") == "x7#kq!vw2m$pzr4"
    with pytest.raises(PasswordPolicyError) as exc:
        await service.validate("x7#kq!vw2m$pzr")
    assert reason(exc) == "too_short"
    assert exc.value.status == 422


async def test_each_emoji_counts_as_one_character(service: PasswordService) -> None:
    fourteen = "🐢🦊🐙🌵🍄🎲🚲🪁🧭🎻🛶🧩🪴🦉"
    assert len(fourteen) == 14
    with pytest.raises(PasswordPolicyError) as exc:
        await service.validate(fourteen)
    assert reason(exc) == "too_short"
    assert await service.validate(fourteen + "🐝") == fourteen + "🐝"


async def test_no_composition_rules(service: PasswordService) -> None:
    assert await service.validate("all lower case words") == "all lower case words"


async def test_nfkc_normalises_fullwidth_letters(service: PasswordService) -> None:
    fullwidth = to_fullwidth("correct horse battery")
    assert await service.validate(fullwidth) == "correct horse battery"


async def test_max_length_is_checked_first_and_cheaply(
    service: PasswordService, monkeypatch: pytest.MonkeyPatch
) -> None:
    forbid_hashing(monkeypatch, service)
    huge = "a" * 10_000
    started = time.perf_counter()
    with pytest.raises(PasswordPolicyError) as exc:
        await service.validate(huge, context=[EMAIL])
    assert time.perf_counter() - started < 0.005
    assert reason(exc) == "too_long"
    with pytest.raises(PasswordPolicyError) as exc:
        await service.validate("b" * 257)
    assert reason(exc) == "too_long"
    assert await service.validate(STRONG_256) == STRONG_256


async def test_hash_and_verify_refuse_over_long_input_without_hashing(
    service: PasswordService, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_hash = await service.hash(PASSPHRASE)
    forbid_hashing(monkeypatch, service)
    with pytest.raises(PasswordPolicyError) as exc:
        await service.hash("a" * 10_000)
    assert reason(exc) == "too_long"
    assert await service.verify("a" * 10_000, real_hash) == (False, None)
    assert await service.verify("a" * 10_000, None) == (False, None)


async def test_blocklist_is_bundled_and_large() -> None:
    entries = _blocklist()
    assert len(entries) >= 10_000
    assert "password" in entries
    assert all(entry == entry.casefold() for entry in entries)


@pytest.mark.parametrize("password", ["1q2w3e4r5t6y7u8i9o0p", "1Q2W3E4R5T6Y7U8I9O0P"])
async def test_common_password_is_refused(service: PasswordService, password: str) -> None:
    with pytest.raises(PasswordPolicyError) as exc:
        await service.validate(password)
    assert reason(exc) == "common"


async def test_short_common_password_with_lower_minimum() -> None:
    svc = PasswordService(make_settings(password_min_length=8))
    try:
        with pytest.raises(PasswordPolicyError) as exc:
            await svc.validate("Password1")
        assert reason(exc) == "common"
    finally:
        svc._pool.shutdown()


@pytest.mark.parametrize(
    "password",
    [
        EMAIL,
        EMAIL.upper(),
        to_fullwidth(EMAIL),  # NFKC gives the email back
        NAME,
        "ada king lovelace",
        "AdaKingLovelace1815!",  # the name with digits and punctuation around it
        "lovelace-lovelace!",  # mostly one context word
        "authgateauthgate",  # the service name is always a context word
        "authgate password",  # the service name plus a common password
        "Lovelace 123456789",  # a name plus a common password
    ],
)
async def test_context_words_are_refused(service: PasswordService, password: str) -> None:
    with pytest.raises(PasswordPolicyError) as exc:
        await service.validate(password, context=[EMAIL, "ada.lovelace", NAME, None])
    assert reason(exc) == "context"


@pytest.mark.parametrize(
    "password", [PASSPHRASE, "lovelace rode a purple tram", "my authgate tortoise"]
)
async def test_context_words_in_a_minority_are_allowed(
    service: PasswordService, password: str
) -> None:
    assert await service.validate(password, context=[EMAIL, NAME]) == password


# -- Argon2id ----------------------------------------------------------------------------------


async def test_hash_is_argon2id_with_the_configured_cost(service: PasswordService) -> None:
    hashed = await service.hash(PASSPHRASE)
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await service.verify(PASSPHRASE, hashed) == (True, None)
    assert await service.verify(PASSPHRASE + "!", hashed) == (False, None)


async def test_a_password_verifies_in_another_normal_form(service: PasswordService) -> None:
    fullwidth = to_fullwidth("correct horse battery")
    hashed = await service.hash(fullwidth)
    assert await service.verify("correct horse battery", hashed) == (True, None)

    decomposed = "cafe\u0301 au lait, s'il vous plait"
    composed = unicodedata.normalize("NFC", decomposed)
    assert composed != decomposed
    hashed = await service.hash(decomposed)
    assert await service.verify(composed, hashed) == (True, None)


async def test_argon2_does_not_truncate_long_passwords(service: PasswordService) -> None:
    password = "abcdefghij" * 8
    assert len(password) == 80
    hashed = await service.hash(password)
    assert await service.verify(password[:72], hashed) == (False, None)
    assert await service.verify(password, hashed) == (True, None)


async def test_outdated_argon2_parameters_are_rehashed() -> None:
    svc = PasswordService(make_settings(argon2_time_cost=3))
    try:
        old = Argon2Hasher(time_cost=2, memory_cost=19_456, parallelism=1).hash(PASSPHRASE)
        ok, new_hash = await svc.verify(PASSPHRASE, old)
        assert ok
        assert new_hash is not None
        assert new_hash.startswith("$argon2id$v=19$m=19456,t=3,p=1$")
        assert await svc.verify(PASSPHRASE, new_hash) == (True, None)
        assert await svc.verify("wrong horse battery staple", old) == (False, None)
    finally:
        await svc.close()


# -- legacy hashes -----------------------------------------------------------------------------


async def assert_upgrades(svc: PasswordService, password: str, legacy_hash: str) -> None:
    ok, new_hash = await svc.verify(password, legacy_hash)
    assert ok
    assert new_hash is not None
    assert new_hash.startswith("$argon2id$")
    assert await svc.verify(password, new_hash) == (True, None)
    assert await svc.verify(password + "x", legacy_hash) == (False, None)
    assert await svc.verify("wrong horse battery staple", legacy_hash) == (False, None)


@pytest.mark.parametrize("prefix", [b"2b", b"2a"])
async def test_bcrypt_hash_verifies_and_upgrades(service: PasswordService, prefix: bytes) -> None:
    legacy = bcrypt.hashpw(PASSPHRASE.encode(), bcrypt.gensalt(rounds=4, prefix=prefix)).decode()
    assert legacy.startswith(f"${prefix.decode()}$04$")
    await assert_upgrades(service, PASSPHRASE, legacy)


async def test_bcrypt_2y_hash_verifies(service: PasswordService) -> None:
    legacy = bcrypt.hashpw(PASSPHRASE.encode(), bcrypt.gensalt(rounds=4)).decode()
    await assert_upgrades(service, PASSPHRASE, "$2y$" + legacy.removeprefix("$2b$"))


async def test_bcrypt_refuses_inputs_over_72_bytes(service: PasswordService) -> None:
    password = "abcdefghij" * 8
    legacy = bcrypt.hashpw(password[:72].encode(), bcrypt.gensalt(rounds=4)).decode()
    # bcrypt would compare only the first 72 bytes; we refuse instead of truncating.
    assert await service.verify(password, legacy) == (False, None)
    ok, _ = await service.verify(password[:72], legacy)
    assert ok


async def test_django_pbkdf2_hash_verifies_and_upgrades(service: PasswordService) -> None:
    await assert_upgrades(service, PASSPHRASE, django_pbkdf2(PASSPHRASE, "Xq3k9ZpL2mNw", 1_000))


async def test_django_pbkdf2_known_vector(service: PasswordService) -> None:
    # Produced by Django 5.2.19 itself:
    # PBKDF2PasswordHasher().encode("correct horse battery staple", "seasalt", iterations=10000)
    vector = "pbkdf2_sha256$10000$seasalt$7kjjmTDasmSTLtoW/oBblJmcxVgWOQ2yvxz9Kbrjh8w="
    assert django_pbkdf2(PASSPHRASE, "seasalt", 10_000) == vector
    await assert_upgrades(service, PASSPHRASE, vector)


async def test_passlib_pbkdf2_hash_verifies_and_upgrades(service: PasswordService) -> None:
    await assert_upgrades(service, PASSPHRASE, passlib_pbkdf2(PASSPHRASE, os.urandom(16), 1_000))


async def test_passlib_pbkdf2_known_vector(service: PasswordService) -> None:
    # Produced by passlib 1.7.4 itself:
    # pbkdf2_sha256.using(rounds=10000, salt=b"saltysalt-16byte").hash(PASSPHRASE)
    vector = (
        "$pbkdf2-sha256$10000$c2FsdHlzYWx0LTE2Ynl0ZQ$4QVAgH7XtrHd48bHBeDRiz67k0kvO46RB3COjl3HU3Q"
    )
    assert passlib_pbkdf2(PASSPHRASE, b"saltysalt-16byte", 10_000) == vector
    await assert_upgrades(service, PASSPHRASE, vector)


async def test_legacy_hash_of_an_unnormalised_password(service: PasswordService) -> None:
    typed = "cafe\u0301 au lait, s'il vous plait"  # Django never normalised it
    legacy = django_pbkdf2(typed, "Xq3k9ZpL2mNw", 1_000)
    ok, new_hash = await service.verify(typed, legacy)
    assert ok
    assert new_hash is not None
    # The upgraded hash is of the normal form, so either form logs in from now on.
    assert await service.verify(unicodedata.normalize("NFKC", typed), new_hash) == (True, None)
    assert await service.verify(typed, new_hash) == (True, None)


GOOD_DIGEST = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "not a hash",
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ",
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$!!!!",
        "$argon2id$v=19$m=19456,t=2,p=1$$",
        "$2b$12$short",
        "$2b$99$" + "a" * 53,
        "$2x$04$" + "a" * 53,
        "pbkdf2_sha256$abc$salt$" + GOOD_DIGEST,
        "pbkdf2_sha256$0$salt$" + GOOD_DIGEST,
        "pbkdf2_sha256$1000$salt$!!!!",
        "pbkdf2_sha256$1000$salt$QUJD",  # a 3-byte digest
        "pbkdf2_sha256$1000$salt$QUJD=",  # bad padding
        "pbkdf2_sha256$99999999999$salt$" + GOOD_DIGEST,
        "$pbkdf2-sha256$1000$c2FsdA$AAAA",
        "$pbkdf2-sha256$1000$c$" + "A" * 43,  # salt of one character is not base64
        "$pbkdf2-sha1$1000$c2FsdA$" + "A" * 27,
        "$1$salt$md5crypt",
        "sha1$salt$abcdef",
    ],
)
async def test_malformed_hashes_fail_without_raising(
    service: PasswordService, malformed: str
) -> None:
    assert await service.verify(PASSPHRASE, malformed) == (False, None)


# -- unknown users -----------------------------------------------------------------------------


async def test_unknown_user_takes_as_long_as_a_real_verify(service: PasswordService) -> None:
    real = await service.hash(PASSPHRASE)
    assert await service.verify(PASSPHRASE, None) == (False, None)

    async def median(call: Callable[[], Any]) -> float:
        samples = []
        for _ in range(7):
            started = time.perf_counter()
            await call()
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    known = await median(lambda: service.verify("wrong horse battery staple", real))
    unknown = await median(lambda: service.verify("wrong horse battery staple", None))
    assert 0.5 <= unknown / known <= 2.0


# -- the bounded pool --------------------------------------------------------------------------


async def test_pool_refuses_work_beyond_its_queue_limit() -> None:
    svc = PasswordService(make_settings(hash_workers=1, hash_queue_limit=1))
    try:
        results = await asyncio.gather(
            *(svc.hash(PASSPHRASE) for _ in range(5)), return_exceptions=True
        )
        refused = [r for r in results if isinstance(r, ServiceUnavailable)]
        hashed = [r for r in results if isinstance(r, str)]
        assert len(hashed) == 2  # one running + one waiting
        assert len(refused) == 3
        assert refused[0].status == 503
        assert refused[0].headers["Retry-After"] == "1"
        # Slots are given back once the work is done.
        assert (await svc.hash(PASSPHRASE)).startswith("$argon2id$")
        verified = await asyncio.gather(
            *(svc.verify(PASSPHRASE, None) for _ in range(3)), return_exceptions=True
        )
        assert sum(isinstance(r, ServiceUnavailable) for r in verified) == 1
    finally:
        await svc.close()


async def test_cancelled_request_keeps_its_slot_until_the_thread_is_free(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    svc = PasswordService(make_settings(hash_workers=1, hash_queue_limit=1))
    started, release = threading.Event(), threading.Event()

    def slow_hash(password: str, *, salt: bytes | None = None) -> str:
        started.set()
        release.wait(timeout=10)
        return "$argon2id$fake"

    monkeypatch.setattr(svc._argon2, "hash", slow_hash)
    try:
        running = asyncio.ensure_future(svc.hash(PASSPHRASE))
        assert await asyncio.to_thread(started.wait, 10)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        # The cancelled hash still occupies the only worker: one more may wait, no more.
        waiting = asyncio.ensure_future(svc.hash(PASSPHRASE))
        await asyncio.sleep(0)
        with pytest.raises(ServiceUnavailable):
            await svc.hash(PASSPHRASE)
        release.set()
        assert await waiting == "$argon2id$fake"
    finally:
        release.set()
        await svc.close()


async def test_closed_service_refuses_work() -> None:
    svc = PasswordService(make_settings())
    await svc.close()
    with pytest.raises(ServiceUnavailable):
        await svc.hash(PASSPHRASE)


# -- strength (zxcvbn) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    [
        "passwordpassword",
        "aaaaaaaaaaaaaaaa",
        "123456789012345",
        "qwertyuiopasdfgh",
        "iloveyouiloveyou",
    ],
)
async def test_guessable_passwords_are_refused(service: PasswordService, password: str) -> None:
    with pytest.raises(PasswordPolicyError) as exc:
        await service.validate(password, context=[EMAIL, NAME])
    assert reason(exc) in {"common", "weak"}
    assert exc.value.code == "weak_password"
    assert exc.value.detail.strip()


async def test_weak_detail_is_zxcvbn_feedback(service: PasswordService) -> None:
    with pytest.raises(PasswordPolicyError) as exc:
        await service.validate("abcabcabcabcabcabc")
    assert reason(exc) == "weak"
    assert "Repeats" in exc.value.detail  # zxcvbn's warning, then its suggestions
    assert "Add another word or two" in exc.value.detail


async def test_context_words_lower_the_score(service: PasswordService) -> None:
    """A password made of a rare word counts as strong, unless that word is the user's own."""
    password = "zanzibarquokkazanzibarquokka!"
    assert await service.validate(password) == password
    with pytest.raises(PasswordPolicyError) as exc:
        await service.validate(password, context=["zanzibar.quokka@example.com"])
    assert reason(exc) in {"context", "weak"}


async def test_min_strength_zero_switches_scoring_off() -> None:
    svc = PasswordService(make_settings(password_min_strength=0))
    try:
        assert await svc.validate("aaaaaaaaaaaaaaaa") == "aaaaaaaaaaaaaaaa"
        assert svc.policy.min_strength == 0
    finally:
        await svc.close()


async def test_min_strength_four_refuses_a_score_of_three() -> None:
    strict = PasswordService(make_settings(password_min_strength=4))
    try:
        with pytest.raises(PasswordPolicyError) as exc:
            await strict.validate("football baseball")  # zxcvbn: 3
        assert reason(exc) == "weak"
    finally:
        await strict.close()
    default = PasswordService(make_settings())
    try:
        assert await default.validate("football baseball") == "football baseball"
    finally:
        await default.close()


async def test_scoring_a_long_password_is_fast(service: PasswordService) -> None:
    """zxcvbn is super-linear; only the first STRENGTH_INPUT_LIMIT code points are scored."""
    digits = "".join(str(n % 10) for n in range(4_096))
    started = time.perf_counter()
    with pytest.raises(PasswordPolicyError) as exc:
        await service.validate(digits)
    assert reason(exc) == "too_long"
    assert time.perf_counter() - started < 0.05
    # The scorer itself, handed 4,096 characters of its worst kind (digits: the date matcher).
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        _strength(digits, ["authgate"])
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.05, timings
    # And through the service at the longest accepted length.
    svc = PasswordService(make_settings(password_max_length=1024))
    try:
        started = time.perf_counter()
        with pytest.raises(PasswordPolicyError):
            await svc.validate(digits[:1024])
        assert time.perf_counter() - started < 0.1
    finally:
        await svc.close()


async def test_scoring_runs_off_the_event_loop(
    service: PasswordService, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    original = passwords_module._strength

    def spy(password: str, words: list[str]) -> tuple[int, str]:
        seen.append(threading.current_thread().name)
        return original(password, words)

    monkeypatch.setattr(passwords_module, "_strength", spy)
    await service.validate(PASSPHRASE)
    assert seen and seen[0].startswith("authgate-strength")


def test_policy_reports_the_settings() -> None:
    svc = PasswordService(make_settings(password_min_length=16, password_min_strength=2))
    try:
        assert svc.policy == PasswordPolicy(
            min_length=16, max_length=256, min_strength=2, breach_check="off"
        )
    finally:
        svc._pool.shutdown()
