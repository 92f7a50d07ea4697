"""Email address normalisation (email-validator), the same for every entry point."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from authgate.core.errors import ValidationFailed


def normalize_email(value: str, *, field: str = "email", check_deliverability: bool = False) -> str:
    """The normalised address, or a 422 naming the field. Lookups never check deliverability."""
    if not isinstance(value, str) or len(value) > 320:
        raise _invalid(field, "The email address is not valid.")
    try:
        result = validate_email(value.strip(), check_deliverability=check_deliverability)
    except EmailNotValidError as exc:
        raise _invalid(field, str(exc)) from None
    return result.normalized


def try_normalize_email(value: str) -> str | None:
    try:
        return normalize_email(value)
    except ValidationFailed:
        return None


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        [{"loc": ["body", field], "msg": message, "type": "value_error.email"}],
        detail="The email address is not valid.",
    )


_ASCII_UPPER_TO_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """``text`` with A-Z lowered and every other character left exactly as it is."""
    return text.translate(_ASCII_UPPER_TO_LOWER)


def email_key(normalized_email: str) -> str:
    """The uniqueness key of a normalised address (the output of ``normalize_email``).

    Only ASCII letters of the local part are lowered: Unicode case-folding merges distinct
    mailboxes (``straße`` and ``strasse``, ``ﬁ`` and ``fi``), so non-ASCII local parts compare
    exactly (email-validator has NFC-normalised them). The domain is lowered in full: domains
    are case-insensitive and email-validator has already IDNA-normalised it. Every comparison of
    two addresses ("same address?", throttle keys) goes through this function.
    """
    local, at, domain = normalized_email.rpartition("@")
    if not at:
        return ascii_lower(normalized_email)
    return f"{ascii_lower(local)}@{domain.lower()}"
