"""The rate-limit registry: every named limit, its default, what it is counted per and what it
protects, in one place. docs/rate-limits.md shows the same table (a unit test keeps them equal);
``AUTHGATE_RATE_LIMITS`` may override a default, never add a name.

Each limit is consumed in one layer by one rule, chosen by what it is counted per (``Per``):

- ``Per.client_ip``: on the route, by the ``per_ip(...)`` dependency (``deps.py``), or by the
  client-authentication dependency for ``client_auth_ip``;
- ``Per.address`` and ``Per.user``: in the service layer (``RateLimiter.per_address`` /
  ``per_user``; ``login_account`` through the login throttle, keyed by its bucket);
- ``Per.client``: by the client-authentication dependency, once the client is known.

Nothing here imports the settings, so ``config.py`` can validate overrides against ``Limit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum, auto

from authgate.users.emails import email_key


class Per(Enum):
    """What a limit is counted per; it decides who consumes the limit."""

    client_ip = auto()  #: the caller's address (``ip_key``), on the route
    address = auto()  #: a normalised email address (``account_key``), in a service
    user = auto()  #: a signed-in user's id, in a service
    client = auto()  #: an authenticated service client's id, by client authentication


class Limit(StrEnum):
    """A named rate limit. ``LIMITS[limit]`` (or ``limit.spec``) holds its default and docs."""

    login_ip = auto()
    login_account = auto()
    register_ip = auto()
    verify_resend_ip = auto()
    verify_resend_email = auto()
    forgot_password_ip = auto()
    forgot_password_email = auto()
    token_consume_ip = auto()
    refresh_ip = auto()
    change_password_account = auto()
    email_change_user = auto()
    email_change_recipient = auto()
    email_recipient = auto()
    introspect_client = auto()
    provider_token_client = auto()
    client_auth_ip = auto()
    oauth_ip = auto()
    mfa_verify_ip = auto()
    passkey_ip = auto()

    @property
    def spec(self) -> LimitSpec:
        return LIMITS[self]


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """One limit: its default (``limits`` notation), its key and its documentation."""

    default: str
    per: Per
    #: The "counted per" column of docs/rate-limits.md.
    counted_per: str
    #: The "meant for" column of docs/rate-limits.md: what the limit protects.
    meant_for: str


_IP = "client IP"
_EMAIL = "normalised email"

LIMITS: dict[Limit, LimitSpec] = {
    Limit.login_ip: LimitSpec(
        "30/minute",
        Per.client_ip,
        _IP,
        "`POST /auth/login`, password grant of `/auth/token`",
    ),
    Limit.login_account: LimitSpec(
        "10/15minutes",
        Per.address,
        _EMAIL,
        "the same, per account whatever the IP (consumed by the throttle, see below)",
    ),
    Limit.register_ip: LimitSpec("10/hour", Per.client_ip, _IP, "`POST /auth/register`"),
    Limit.verify_resend_ip: LimitSpec(
        "10/hour", Per.client_ip, _IP, "`POST /auth/verify-email/resend`"
    ),
    Limit.verify_resend_email: LimitSpec("3/hour", Per.address, _EMAIL, "the same, per address"),
    Limit.forgot_password_ip: LimitSpec(
        "10/hour", Per.client_ip, _IP, "`POST /auth/password/forgot`"
    ),
    Limit.forgot_password_email: LimitSpec("3/hour", Per.address, _EMAIL, "the same, per address"),
    Limit.token_consume_ip: LimitSpec(
        "30/minute",
        Per.client_ip,
        _IP,
        "endpoints that consume a one-time token (verify email, reset password, OAuth code)",
    ),
    Limit.refresh_ip: LimitSpec(
        "120/minute",
        Per.client_ip,
        _IP,
        "`POST /auth/refresh`, refresh grant of `/auth/token`",
    ),
    Limit.change_password_account: LimitSpec(
        "10/15minutes", Per.user, "user id", "`POST /users/me/password`"
    ),
    Limit.email_change_user: LimitSpec(
        "5/hour",
        Per.user,
        "user id",
        "`POST /users/me/email` (counted before the password is checked)",
    ),
    Limit.email_change_recipient: LimitSpec(
        "3/hour",
        Per.address,
        "normalised new address",
        "the same, per recipient (counted after a right password, whether or not the address"
        " is taken, so a 429 says nothing about who has it)",
    ),
    Limit.email_recipient: LimitSpec(
        "10/hour",
        Per.address,
        "recipient address",
        "mail written to the outbox, see [Mail per recipient](#mail-per-recipient)",
    ),
    Limit.introspect_client: LimitSpec(
        "600/minute", Per.client, "introspection client id", "`POST /auth/introspect`"
    ),
    Limit.provider_token_client: LimitSpec(
        "600/minute",
        Per.client,
        "provider-token client id",
        "`POST /oauth/internal/provider-token`",
    ),
    Limit.client_auth_ip: LimitSpec(
        "10/minute",
        Per.client_ip,
        _IP,
        "failed client authentication (HTTP Basic) on `/auth/introspect` and"
        " `/oauth/internal/provider-token`; while spent, every client authentication from the"
        " address is refused",
    ),
    Limit.oauth_ip: LimitSpec("60/minute", Per.client_ip, _IP, "the `/oauth/*` endpoints"),
    Limit.mfa_verify_ip: LimitSpec(
        "30/minute",
        Per.client_ip,
        _IP,
        "`POST /auth/mfa/verify` (each code also counts per account, in the throttle)",
    ),
    Limit.passkey_ip: LimitSpec(
        "60/minute",
        Per.client_ip,
        _IP,
        "`POST /auth/passkey/options` and `POST /auth/passkey/verify` (each counted; a"
        " sign-in is two requests)",
    ),
}

#: Every limit's default, by name (what ``AUTHGATE_RATE_LIMITS`` overrides).
DEFAULT_RATE_LIMITS: dict[str, str] = {limit.value: spec.default for limit, spec in LIMITS.items()}

if set(LIMITS) != set(Limit):  # pragma: no cover - a programming error, caught at import
    raise RuntimeError(f"rate limits without a spec: {sorted(set(Limit) - set(LIMITS))}")


def account_key(address: str | None, raw: str = "") -> str:
    """The one per-account key of the throttle and the per-address limits.

    The address's uniqueness key (``users.emails.email_key``: ASCII letters folded, so two
    mailboxes that only Unicode case-folding would merge keep apart), or the stripped raw input
    when it is not an address (so an invalid address is throttled like any other). A user's key
    is ``account_key(user.email)``.
    """
    return email_key(address) if address else email_key(raw.strip())


def ip_key(ip_address: str | None) -> str:
    """The key of the per-address limits: the client IP (``ClientInfo.ip_address``)."""
    return ip_address or "unknown"
