"""The codes of the second factor (``mfa/codes.py``) and the ``amr`` a completed sign-in gets."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest

from authgate.mfa.challenges import sign_in_amr
from authgate.mfa.codes import (
    RECOVERY_CODE_COUNT,
    new_recovery_codes,
    new_totp_secret,
    normalize_recovery_code,
    normalize_totp_code,
    provisioning_uri,
    qr_svg_data_uri,
    totp_step,
)

AT = datetime(2026, 12, 7, 12, 0, 15, tzinfo=UTC)


def test_a_secret_has_160_bits_of_base32() -> None:
    secrets = {new_totp_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert re.fullmatch(r"[A-Z2-7]{32}", secret)
        assert len(secret) * 5 >= 160


def test_the_step_of_a_code_within_one_step_either_side() -> None:
    secret = new_totp_secret()
    totp = pyotp.TOTP(secret)
    step = totp.timecode(AT)
    for offset in (-1, 0, 1):
        assert totp_step(secret, totp.at(AT, counter_offset=offset), AT) == step + offset
    for offset in (-3, -2, 2, 3):
        code = totp.at(AT, counter_offset=offset)
        if code not in {totp.at(AT, counter_offset=o) for o in (-1, 0, 1)}:
            assert totp_step(secret, code, AT) is None
    # Typed with a space or a dash; anything but six digits is no code.
    code = totp.at(AT)
    assert totp_step(secret, f"{code[:3]} {code[3:]}", AT) == step
    assert totp_step(secret, f"{code[:3]}-{code[3:]}", AT) == step
    for bad in (
        "",
        "12345",
        "1234567",
        "abcdef",
        "\uff11\uff12\uff13\uff14\uff15\uff16",
        code + "0",
    ):
        assert totp_step(secret, bad, AT) is None
    # RFC 6238's 30-second steps: the next step starts 30 s later.
    assert totp_step(secret, totp.at(AT + timedelta(seconds=30)), AT) == step + 1


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("123456", "123456"), (" 123 456 ", "123456"), ("123-456", "123456"), ("12345", None)],
)
def test_totp_codes_are_normalised(typed: str, expected: str | None) -> None:
    assert normalize_totp_code(typed) == expected


def test_recovery_codes_have_50_bits_each_and_are_distinct() -> None:
    codes = new_recovery_codes()
    assert len(codes) == len(set(codes)) == RECOVERY_CODE_COUNT
    for code in codes:
        assert re.fullmatch(r"[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}", code)
        assert math.log2(32**10) >= 50


def test_recovery_codes_ignore_spaces_dashes_and_case() -> None:
    code = "ab1cd-ef2gh"
    for typed in ("ab1cd-ef2gh", "AB1CD-EF2GH", "ab1cdef2gh", " AB1CD EF2GH ", "ab1cd\u2013ef2gh"):
        assert normalize_recovery_code(typed) == "ab1cdef2gh", typed
    # Crockford's reading of look-alike letters.
    assert normalize_recovery_code("oiL00-11111") == "0110011111"
    for bad in ("", "ab1cd-ef2g", "ab1cd-ef2ghj", "ab1cd-ef2gu", "ab1cd_ef2gh"):
        assert normalize_recovery_code(bad) is None, bad
    assert normalize_recovery_code(code.upper()) == normalize_recovery_code(code)


def test_the_provisioning_uri_and_its_qr_code() -> None:
    secret = new_totp_secret()
    uri = provisioning_uri(secret, "ada+totp@example.com", "Example Co")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/Example Co:ada+totp@example.com"
    assert parse_qs(parts.query) == {"secret": [secret], "issuer": ["Example Co"]}
    assert pyotp.parse_uri(uri).secret == secret  # what an authenticator app reads back
    svg = qr_svg_data_uri(uri)
    assert svg.startswith("data:image/svg+xml")
    assert secret not in svg  # the secret is drawn, not spelled out


def test_amr_of_a_sign_in_with_a_second_factor() -> None:
    assert sign_in_amr("password", "totp") == ("pwd", "otp", "mfa")
    assert sign_in_amr("password", "recovery_code") == ("pwd", "mfa")
    assert sign_in_amr("oauth:github", "totp") == ("fed", "otp", "mfa")
    assert sign_in_amr("oauth:test", "recovery_code") == ("fed", "mfa")
