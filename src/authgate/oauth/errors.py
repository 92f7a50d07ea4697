"""Errors of the OAuth feature.

Two kinds: problems answered as JSON (``AuthgateError`` subclasses), and ``FlowFailure``, a failure
inside the browser flow once a trusted ``redirect_url`` is known, answered as a redirect with
``?error=<code>``.
"""

from __future__ import annotations

from enum import StrEnum

from authgate.core.errors import AuthgateError, Conflict


class FlowError(StrEnum):
    """The short codes sent back to the front end as ``?error=``."""

    access_denied = "access_denied"
    invalid_state = "invalid_state"
    invalid_request = "invalid_request"
    invalid_id_token = "invalid_id_token"  # noqa: S105 - an error code
    provider_error = "provider_error"
    account_exists = "account_exists"
    account_disabled = "account_disabled"
    already_linked = "already_linked"
    email_required = "email_required"
    #: The provider did not verify the address, or the identity no longer proves the user's.
    email_not_verified = "email_not_verified"
    server_error = "server_error"


class FlowFailure(Exception):
    """The browser flow failed; the user goes back to the redirect URL with ``?error=code``."""

    def __init__(self, code: FlowError, reason: str | None = None) -> None:
        self.code = code
        #: For the log line only (never shown to the user).
        self.reason = reason or code.value
        super().__init__(self.reason)


class ProviderError(Exception):
    """The provider could not be reached or answered something unusable (no secret inside).

    ``transient`` tells a network failure (try again later) from a refusal (e.g. ``invalid_grant``:
    the grant is gone and only a new sign-in helps).
    """

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        self.transient = transient
        super().__init__(reason)


class InvalidIdToken(Exception):
    """The ID token failed validation; the message names the check, never the token."""


class InvalidRedirectUrl(AuthgateError):
    status = 400
    code = "invalid_redirect_url"
    title = "Invalid redirect URL"
    default_detail = "The redirect URL is not in the allowlist."


class InvalidState(AuthgateError):
    """The callback's state is missing or unknown: there is no trusted place to redirect to."""

    status = 400
    code = "invalid_state"
    title = "Invalid state"
    default_detail = "The sign-in request is unknown or has expired; start again."


class UnknownProvider(AuthgateError):
    status = 404
    code = "unknown_provider"
    title = "Unknown provider"
    default_detail = "No such identity provider is configured."


class ProviderUnavailable(AuthgateError):
    status = 503
    code = "provider_unavailable"
    title = "Provider unavailable"
    default_detail = "The identity provider cannot be reached; try again shortly."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": "30"})


class LastSignInMethod(Conflict):
    """409 ``conflict``: unlinking would leave the account without any way to sign in."""

    default_detail = (
        "This connection is the only way to sign in to the account; set a password or connect "
        "another provider first."
    )


class ProviderTokenUnavailable(Conflict):
    """No usable provider token: never stored, revoked at the provider, or undecryptable."""

    code = "provider_token_unavailable"
    default_detail = (
        "No valid provider token is available; the user must connect the provider again."
    )
