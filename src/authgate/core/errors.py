"""One error hierarchy. Services raise these; one handler renders RFC 9457 problem+json."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

PROBLEM_TYPE_BASE = "https://authgate.dev/problems/"


class AuthgateError(Exception):
    """An expected outcome that becomes a problem response (never a 500)."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"
    default_detail: ClassVar[str] = "The request could not be processed."

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        super().__init__(self.detail)

    def to_problem(self) -> dict[str, Any]:
        return problem_body(self.status, self.code, self.title, self.detail, **self.extra)


def problem_body(status: int, code: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


class InvalidToken(AuthgateError):
    """A one-time token (verification, reset, email change, OAuth code) that is not usable."""

    status = 400
    code = "invalid_token"
    title = "Invalid token"
    default_detail = "The token is invalid, expired or already used."


class InvalidPassword(AuthgateError):
    """The current password given to confirm a change is wrong (400: SPAs read 401 as signed out)."""

    status = 400
    code = "invalid_password"
    title = "Invalid password"
    default_detail = "The password is not correct."


class InvalidCode(AuthgateError):
    """A second-factor code (TOTP or recovery code) that is wrong, malformed or already used."""

    status = 400
    code = "invalid_code"
    title = "Invalid code"
    default_detail = "The code is not correct."


class InvalidCredential(AuthgateError):
    """A WebAuthn credential offered for registration that does not verify (challenge, origin,
    RP ID, flags, attestation), or that is not a credential at all."""

    status = 400
    code = "invalid_credential"
    title = "Invalid credential"
    default_detail = "The passkey could not be verified."


class PasswordPolicyError(AuthgateError):
    status = 422
    code = "weak_password"
    title = "Password refused"
    default_detail = "The password does not meet the policy."


class ValidationFailed(AuthgateError):
    status = 422
    code = "validation_error"
    title = "Validation error"
    default_detail = "The request is not valid."

    def __init__(self, errors: Sequence[Mapping[str, Any]], detail: str | None = None) -> None:
        super().__init__(detail, extra={"errors": list(errors)})


class Unauthorized(AuthgateError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"
    default_detail = "Authentication is required."

    def __init__(self, detail: str | None = None, *, error: str = "invalid_token") -> None:
        challenge = f'Bearer error="{error}"' if error else "Bearer"
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class NotAuthenticated(Unauthorized):
    code = "not_authenticated"
    default_detail = "A bearer access token is required."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, error="")


class InvalidAccessToken(Unauthorized):
    code = "invalid_token"
    title = "Invalid token"
    default_detail = "The access token is invalid."


class TokenExpired(Unauthorized):
    code = "token_expired"
    title = "Token expired"
    default_detail = "The access token has expired."


class InvalidRefreshToken(Unauthorized):
    code = "invalid_token"
    title = "Invalid token"
    default_detail = "The refresh token is invalid, expired or revoked."


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    title = "Invalid credentials"
    default_detail = "The email or password is incorrect."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, error="")


class InvalidClient(Unauthorized):
    code = "invalid_client"
    title = "Invalid client"
    default_detail = "Client authentication failed."

    def __init__(self, detail: str | None = None) -> None:
        AuthgateError.__init__(self, detail, headers={"WWW-Authenticate": 'Basic realm="authgate"'})


class EmailNotVerified(AuthgateError):
    status = 403
    code = "email_not_verified"
    title = "Email not verified"
    default_detail = "The email address has not been verified yet."


#: The second factors ``POST /auth/mfa/verify`` accepts (the ``methods`` of ``mfa_required``).
MFA_METHODS = ("totp", "recovery_code")


class MfaRequired(AuthgateError):
    """A right first factor of an account with a second one: no token is issued; the caller
    completes the sign-in at ``POST /auth/mfa/verify`` with ``mfa_token``."""

    status = 403
    code = "mfa_required"
    title = "Second factor required"
    default_detail = "Enter a code from your authenticator app or a recovery code."

    def __init__(self, mfa_token: str) -> None:
        super().__init__(
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
            extra={"mfa_token": mfa_token, "methods": list(MFA_METHODS)},
        )
        self.mfa_token = mfa_token


class Forbidden(AuthgateError):
    status = 403
    code = "forbidden"
    title = "Forbidden"
    default_detail = "You are not allowed to do this."


class CsrfFailed(AuthgateError):
    """A request authenticated by the refresh cookie came without an allowed ``Origin``: it is
    refused before the cookie's token is looked at (nothing spent, revoked, set or cleared)."""

    status = 403
    code = "csrf_failed"
    title = "Cross-site request refused"
    default_detail = (
        "The refresh cookie is accepted only from an allowed Origin; send the refresh token in "
        "the body, or call from an allowed origin."
    )


class ReauthenticationRequired(AuthgateError):
    """The action needs a recent sign-in (an account without a password cannot re-enter one)."""

    status = 403
    code = "reauthentication_required"
    title = "Reauthentication required"
    default_detail = "Sign in again (within the last 5 minutes) to do this."


class NotFound(AuthgateError):
    status = 404
    code = "not_found"
    title = "Not found"
    default_detail = "The resource does not exist."


class Conflict(AuthgateError):
    status = 409
    code = "conflict"
    title = "Conflict"
    default_detail = "The request conflicts with the current state."


class PayloadTooLarge(AuthgateError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"
    default_detail = "The request body is too large."


class RateLimited(AuthgateError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"
    default_detail = "Too many requests; try again later."

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, int(retry_after)))})


class ServiceUnavailable(AuthgateError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"
    default_detail = "The service is temporarily unavailable; try again shortly."

    def __init__(self, detail: str | None = None, *, retry_after: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class OAuth2TokenError(AuthgateError):
    """A refusal of ``POST /auth/token``, rendered in the RFC 6749 §5.2 form
    (``{"error", "error_description"}``, ``Cache-Control: no-store``), not as a problem."""

    status = 400
    code = "invalid_grant"
    title = "Invalid grant"

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
        self.error = error

    def to_oauth2(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.detail}


class OAuth2MfaRequired(OAuth2TokenError):
    """``mfa_required`` in the form of ``POST /auth/token`` (403, with the ``mfa_token``)."""

    status = 403
    code = "mfa_required"
    title = "Second factor required"

    def __init__(self, description: str, mfa_token: str) -> None:
        super().__init__("mfa_required", description)
        self.mfa_token = mfa_token

    def to_oauth2(self) -> dict[str, str]:
        return {**super().to_oauth2(), "mfa_token": self.mfa_token}
