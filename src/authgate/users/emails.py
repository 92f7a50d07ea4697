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
