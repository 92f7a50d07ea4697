"""The codes of the second factor: TOTP (RFC 6238, through pyotp) and recovery codes.

TOTP is SHA-1, 6 digits, 30 s steps, and a code of the step before or after the current one is
accepted too (clock drift). ``totp_step`` names the time-step a code belongs to, so the caller
can refuse a code whose step is not later than the last one accepted: each code works once.

Recovery codes are 10 characters of Crockford's base32 (50 random bits), shown as
``xxxxx-xxxxx``. Typed back, spaces, dashes and case do not matter, and the letters Crockford
reads as digits (``o`` → ``0``, ``i``/``l`` → ``1``) are read so too.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime

import pyotp
import segno
from pyotp.exceptions import OTPVerificationError

#: 160 bits: 32 characters of base32 (RFC 4226 §4 recommends 160).
TOTP_SECRET_CHARS = 32
TOTP_DIGITS = 6
TOTP_INTERVAL = 30
#: Steps accepted either side of the current one.
TOTP_WINDOW = 1

RECOVERY_CODE_COUNT = 10
#: Characters per code: 10 characters of 5 bits = 50 bits each.
RECOVERY_CODE_LENGTH = 10
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_READ_AS = str.maketrans({"o": "0", "i": "1", "l": "1"})
_TYPING_NOISE = re.compile("[\\s\\-\u2010-\u2015]+")
_TOTP_CODE = re.compile(f"[0-9]{{{TOTP_DIGITS}}}")


def new_totp_secret() -> str:
    """A fresh base32 secret (pyotp draws it from ``secrets.SystemRandom``)."""
    return pyotp.random_base32(TOTP_SECRET_CHARS)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://totp/…`` URI authenticator apps read (Google's Key URI Format)."""
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_INTERVAL)
    return totp.provisioning_uri(name=account, issuer_name=issuer)


def qr_svg_data_uri(uri: str) -> str:
    """The URI as a QR code, an SVG ``data:`` URI an ``<img src>`` shows as it is."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=4))


def normalize_totp_code(code: str) -> str | None:
    """The code's digits, spaces and dashes ignored; None unless exactly six digits."""
    digits = _TYPING_NOISE.sub("", code)
    return digits if _TOTP_CODE.fullmatch(digits) else None


def totp_step(secret: str, code: str, at: datetime) -> int | None:
    """The RFC 6238 time-step whose code ``code`` is, within ``TOTP_WINDOW`` of ``at``'s step;
    None when it is none of them (compared in constant time by pyotp)."""
    digits = normalize_totp_code(code)
    if digits is None:
        return None
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_INTERVAL)
    try:
        return totp.verify_and_get_timecode(digits, for_time=at, valid_window=TOTP_WINDOW)
    except OTPVerificationError:
        return None


def new_recovery_codes() -> list[str]:
    """``RECOVERY_CODE_COUNT`` distinct codes, formatted ``xxxxx-xxxxx``."""
    codes: set[str] = set()
    while len(codes) < RECOVERY_CODE_COUNT:
        codes.add("".join(secrets.choice(_CROCKFORD) for _ in range(RECOVERY_CODE_LENGTH)))
    half = RECOVERY_CODE_LENGTH // 2
    return [f"{code[:half]}-{code[half:]}" for code in sorted(codes)]


def normalize_recovery_code(code: str) -> str | None:
    """The code as stored (lower case, no separators); None if it cannot be one."""
    compact = _TYPING_NOISE.sub("", code).lower().translate(_READ_AS)
    if len(compact) != RECOVERY_CODE_LENGTH or any(c not in _CROCKFORD for c in compact):
        return None
    return compact
