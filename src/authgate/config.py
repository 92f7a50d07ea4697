"""Settings: one ``Settings`` object, read from ``AUTHGATE_*`` variables and ``.env``.

Nothing here touches the disk or the network; development keys are generated later by
``core.security.keys`` when the app is built, never at import time.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from limits import parse as parse_limit
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The registry of named rate limits; DEFAULT_RATE_LIMITS re-exported for existing importers.
from authgate.core.limits import DEFAULT_RATE_LIMITS as DEFAULT_RATE_LIMITS
from authgate.core.limits import LIMITS, Limit
from authgate.webhooks.events import WebhookEvent


class Environment(StrEnum):
    development = "development"
    production = "production"
    test = "test"


JwtAlgorithm = Literal["EdDSA", "ES256", "RS256", "HS256"]
EmailBackend = Literal["console", "smtp", "ses"]
SmtpTls = Literal["none", "starttls", "tls"]
BreachCheck = Literal["off", "hibp"]
BreachFail = Literal["open", "closed"]
CookieSameSite = Literal["strict", "lax", "none"]

#: RFC 6265 §4.1.1: a cookie name is an HTTP token.
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: A host name (optionally with RFC 6265's ignored leading dot); no port, path or separators.
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_COOKIE_DOMAIN = re.compile(rf"\.?{_HOST_LABEL}(?:\.{_HOST_LABEL})*")

#: Production floors for secrets (docs/api.md §2).
MIN_SECRET_KEY_BYTES = 32
MIN_SECRET_KEY_BITS = 128
MIN_CLIENT_SECRET_LENGTH = 32


def looks_random(secret: str) -> bool:
    """A cheap sanity check that ``secret`` was generated, not typed: its Shannon estimate
    (length times the entropy of its own character distribution) reaches ``MIN_SECRET_KEY_BITS`` and
    it is not one short block repeated. Any ``secrets.token_urlsafe(32)`` or ``token_hex(32)``
    passes (about 200 bits); ``"s" * 48`` or ``"abcd" * 12`` do not."""
    if not secret:
        return False
    counts = Counter(secret)
    length = len(secret)
    per_char = -sum(n / length * math.log2(n / length) for n in counts.values())
    if per_char * length < MIN_SECRET_KEY_BITS:
        return False
    # "xyz12345" * 6: the smallest period of a string divides it into repeated blocks.
    period = (secret + secret).find(secret, 1)
    return period == length


class OAuthProviderConfig(BaseSettings):
    """One external identity provider (``AUTHGATE_OAUTH_PROVIDERS`` entries)."""

    model_config = SettingsConfigDict(extra="forbid")

    #: The provider's name in URLs (``/oauth/{name}/authorize``): lowercase letters, digits,
    #: ``_`` and ``-``.
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    #: ``oidc`` (discovered from ``issuer``) or ``github`` (plain OAuth 2 with GitHub's endpoints).
    kind: Literal["oidc", "github"] = "oidc"
    #: The OpenID Connect issuer (``{issuer}/.well-known/openid-configuration``); required for
    #: ``oidc``.
    issuer: str | None = None
    #: The client id registered at the provider.
    client_id: str
    #: The client secret registered at the provider.
    client_secret: SecretStr
    #: Scopes to ask for; default ``openid email profile`` (oidc), ``read:user user:email``
    #: (github).
    scopes: list[str] | None = None
    #: Overrides for plain OAuth2 providers and tests; discovered from ``issuer`` for OIDC.
    authorize_url: str | None = None
    #: Token endpoint override (discovered from ``issuer`` for OIDC).
    token_url: str | None = None
    #: UserInfo endpoint override (discovered from ``issuer`` for OIDC).
    userinfo_url: str | None = None
    #: RFC 7009 revocation endpoint (override, or supplied for GitHub-like providers).
    revocation_url: str | None = None


#: Bytes of key a Standard Webhooks secret (``whsec_`` + base64) must carry.
MIN_WEBHOOK_SECRET_BYTES = 24
MAX_WEBHOOK_SECRET_BYTES = 64


class WebhookEndpointConfig(BaseModel):
    """One receiver of events (an ``AUTHGATE_WEBHOOKS`` entry): where, signed with which secret,
    and which events (``None``: all of them)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    url: str
    secret: SecretStr
    events: list[WebhookEvent] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        try:
            parts = urlsplit(value)
        except ValueError:
            raise ValueError("a webhook URL is an absolute http(s) URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise ValueError("a webhook URL is an absolute http(s) URL without a fragment")
        if any(ch.isspace() or ord(ch) < 0x20 for ch in value):
            raise ValueError("a webhook URL contains whitespace or a control character")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        # Never echo the value: it is the signing key.
        text = value.get_secret_value().strip()
        if not text.startswith("whsec_"):
            raise ValueError("a webhook secret starts with whsec_ (Standard Webhooks)")
        encoded = text.removeprefix("whsec_")
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a webhook secret is whsec_ followed by base64") from None
        if not MIN_WEBHOOK_SECRET_BYTES <= len(key) <= MAX_WEBHOOK_SECRET_BYTES:
            raise ValueError(
                f"a webhook secret carries {MIN_WEBHOOK_SECRET_BYTES} to "
                f"{MAX_WEBHOOK_SECRET_BYTES} random bytes (base64 after whsec_)"
            )
        return SecretStr(text)

    @field_validator("events", mode="before")
    @classmethod
    def _events(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            raise ValueError("webhook events are a non-empty list (leave it out for all events)")
        known = {event.value for event in WebhookEvent}
        unknown = sorted({str(item) for item in value} - known)
        if unknown:
            raise ValueError(f"unknown webhook events {unknown}; known: {sorted(known)}")
        return value

    @property
    def subscribed(self) -> frozenset[WebhookEvent]:
        return frozenset(WebhookEvent) if self.events is None else frozenset(self.events)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""


def _split_list(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string for list settings."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


#: Shortest client secret production accepts (docs/api.md §2).
MIN_CLIENT_SECRET_LENGTH = 32


@dataclass(frozen=True, slots=True)
class ProviderTokenClient:
    """A back-end service allowed to read provider tokens: ``client_id:secret:provider|provider``."""

    client_id: str
    secret: SecretStr
    providers: frozenset[str]

    @classmethod
    def parse(cls, item: str) -> ProviderTokenClient:
        client_id, sep1, rest = item.partition(":")
        secret, sep2, providers = rest.rpartition(":")
        names = frozenset(p.strip() for p in providers.split("|") if p.strip())
        if not (sep1 and sep2 and client_id.strip() and secret and names):
            # Never echo the item: it holds a secret.
            raise ValueError(
                "provider-token clients are client_id:secret:provider|provider entries"
            )
        return cls(client_id.strip(), SecretStr(secret), names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AUTHGATE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # A refused value may be a secret (a client entry, a key): errors never echo it.
        hide_input_in_errors=True,
    )

    #: ``production`` refuses to start while a development default or an unsafe setting is in
    #: force (``production_problems``); ``test`` is for test suites.
    env: Environment = Environment.development
    #: Allow a single-node production on SQLite, deliberately (otherwise refused).
    allow_sqlite_in_production: bool = False

    #: SQLAlchemy async URL of the database: ``postgresql+asyncpg://…`` in production; the
    #: directory of a SQLite file is created.
    database_url: str = "sqlite+aiosqlite:///./var/authgate.db"
    #: Connections kept open per process (and as many again in overflow under bursts).
    database_pool_size: int = Field(default=20, ge=1)
    #: ``redis://…`` for rate-limit windows, the login throttle and revocations; unset, an
    #: in-process store is used, which is right for one process only.
    redis_url: str | None = None
    #: Seconds each Redis call (connect and answer) may take; past it the request answers 503
    #: (never admitted unchecked).
    store_timeout: float = Field(default=0.5, gt=0)

    #: The URL clients reach authgate at: the ``iss`` of every token and the base of API links;
    #: never taken from the ``Host`` header. Production requires https.
    public_url: str = "http://127.0.0.1:8000"
    #: The SPA: base of the links in emails (``{FRONTEND_URL}/verify-email?token=…``,
    #: ``/reset-password?token=…``) and the default CORS origin and redirect target.
    frontend_url: str = "http://localhost:5173"
    #: Where an OAuth sign-in may send the browser back to, compared as exact strings;
    #: unset: ``[FRONTEND_URL]``. Production requires https.
    allowed_redirect_urls: Annotated[list[str] | None, NoDecode] = None
    #: Exact origins allowed by CORS (with credentials) and by the refresh cookie's Origin check;
    #: unset: ``[FRONTEND_URL]``; ``*`` is refused.
    cors_origins: Annotated[list[str] | None, NoDecode] = None
    #: IPs or CIDRs of the proxies whose ``X-Forwarded-For`` is believed; the right-most
    #: untrusted hop is the client. A range covering every address is refused in production.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Largest request body accepted; a larger one is refused with 413.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)

    #: Algorithm of the access tokens' signing keys (``authgate keys rotate`` makes a key of it).
    jwt_algorithm: JwtAlgorithm = "EdDSA"
    #: The ``aud`` claim of access tokens.
    jwt_audience: str = "authgate"
    #: Seconds of clock skew allowed on ``exp``, ``nbf`` and ``iat``.
    jwt_leeway: int = Field(default=30, ge=0, le=60)
    #: Seconds an access token is valid.
    access_token_ttl: int = Field(default=900, ge=1)
    #: Absolute lifetime of a session in seconds, whatever its refreshes.
    refresh_token_ttl: int = Field(default=2_592_000, ge=1)
    #: Seconds a session may go without a refresh before it ends.
    refresh_token_idle_ttl: int = Field(default=1_209_600, ge=1)
    #: Seconds during which a replay of the refresh token just rotated returns the same
    #: successor instead of ending the session (two tabs, a retried request); 10 is
    #: recommended for SPAs in cookie mode, 0 switches it off.
    refresh_reuse_grace: int = Field(default=0, ge=0, le=60)
    #: Seconds an email verification link is valid.
    verification_token_ttl: int = Field(default=86_400, ge=1)
    #: Seconds a password reset link is valid.
    reset_token_ttl: int = Field(default=1_800, ge=1)
    #: Seconds the confirmation link of an email change is valid.
    email_change_token_ttl: int = Field(default=86_400, ge=1)
    #: Seconds the one-time ``ago_`` code of a provider sign-in may be redeemed.
    oauth_code_ttl: int = Field(default=60, ge=1)
    #: Lifetime of the ``agm_`` token of a sign-in waiting for its second factor.
    mfa_token_ttl: int = Field(default=300, ge=1)
    #: The issuer an authenticator app shows next to the account (``otpauth://`` URI); no
    #: colon (it separates issuer and account in the URI's label) and no control characters.
    totp_issuer: str = Field(
        default="authgate", min_length=1, max_length=64, pattern=r"^[^:\x00-\x1f\x7f]+$"
    )
    #: The WebAuthn Relying Party ID passkeys are bound to: the SPA's host or a registrable
    #: suffix of it; unset: the host of ``FRONTEND_URL``. Changing it orphans every passkey.
    webauthn_rp_id: str | None = Field(default=None, min_length=1, max_length=253)
    #: The name an authenticator shows for this service when a passkey is made.
    webauthn_rp_name: str = Field(
        default="authgate", min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$"
    )
    #: Exact origins a WebAuthn ceremony may come from (the page's origin, as the browser
    #: reports it in ``clientDataJSON``); unset: ``[FRONTEND_URL]``.
    webauthn_origins: Annotated[list[str] | None, NoDecode] = None
    #: Seconds a WebAuthn challenge (passkey registration or sign-in) may be answered.
    webauthn_challenge_ttl: int = Field(default=300, ge=1)

    #: Name of the HttpOnly cookie that carries the refresh token of a browser session
    #: (``refresh_token_transport: "cookie"``, docs/api.md §3.9). Its ``Path`` is always
    #: ``/api/v1/auth``, so a ``__Host-`` name is refused; a ``__Secure-`` name needs
    #: ``REFRESH_COOKIE_SECURE=true``.
    refresh_cookie_name: str = Field(default="authgate_refresh", min_length=1, max_length=64)
    #: ``SameSite`` of the refresh cookie: ``strict`` (the browser never sends it on a request
    #: started by another site), ``lax``, or ``none`` (an SPA on another site than the API;
    #: needs ``Secure``). Cross-site use is refused by the Origin check whatever this is.
    refresh_cookie_samesite: CookieSameSite = "strict"
    #: ``Secure`` on the refresh cookie (browsers accept Secure cookies from
    #: ``http://localhost`` too); ``false`` is refused in production.
    refresh_cookie_secure: bool = True
    #: ``Domain`` of the refresh cookie; unset: a host-only cookie (sent to this host only),
    #: which is the safer choice unless sibling hosts must read it.
    refresh_cookie_domain: str | None = None
    #: Seconds a process may reuse what the database said about a token's user and session
    #: (revocations still apply at once through the store); 0 disables the cache.
    access_cache_ttl: float = Field(default=1.0, ge=0, le=5)
    #: Access tokens whose signature and claims a process remembers as verified (LRU,
    #: each until its ``exp``); 0 disables the cache.
    verified_token_cache_size: int = Field(default=10_000, ge=0)
    #: How often a process re-reads the signing key directory (key rotation reaches it by then).
    key_reload_interval: int = Field(default=30, ge=1, le=60)

    #: Overrides of the named rate limits (``core/limits.py``, docs/rate-limits.md), a JSON
    #: object ``{"login_ip": "20/minute"}``; an unknown name or a value that does not parse
    #: refuses to start.
    rate_limits: dict[Limit, str] = Field(default_factory=dict)
    #: false switches off every rate limit and the login throttle (tests only; refused in production).
    rate_limits_enabled: bool = True
    #: ``client_id:secret`` pairs for HTTP Basic on /auth/introspect; secrets of at least
    #: ``MIN_CLIENT_SECRET_LENGTH`` characters in production.
    introspection_clients: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    #: Clients of ``POST /oauth/internal/provider-token`` (``client_id:secret:provider|provider``,
    #: comma-separated or a JSON list); the endpoint answers 404 while this is empty.
    provider_token_clients: Annotated[list[ProviderTokenClient], NoDecode] = Field(
        default_factory=list
    )

    #: Keys the hashes of every opaque token (refresh tokens, links, codes) and the throttle's
    #: known devices: at least 32 random bytes. Development: generated under ``KEYS_DIR``;
    #: production: supplied. Changing it signs everybody out.
    secret_key: SecretStr | None = None
    #: Directory of the JWT signing key ring (``authgate keys rotate/list/retire``); unset in
    #: development: ``KEYS_DIR/signing``, generated. Production: supplied, never generated.
    signing_keys_dir: Path | None = None
    #: Key ring for data encrypted at rest (provider tokens, TOTP secrets, outbox payloads):
    #: ``kid:base64key,…``, the first one encrypts. Development: generated under ``KEYS_DIR``.
    encryption_keys: SecretStr | None = None
    #: Where development keys are generated and kept (directories 0700, files 0600).
    keys_dir: Path = Path("./var/keys")

    #: Fewest code points (after NFKC) a new password may have; no composition rules.
    password_min_length: int = Field(default=15, ge=8, le=64)
    #: Most code points a password may have; longer input is refused before hashing.
    password_max_length: int = Field(default=256, ge=64, le=1024)
    #: Lowest zxcvbn score (0-4) a new password may have; 0 switches the strength check off.
    password_min_strength: int = Field(default=3, ge=0, le=4)
    #: ``hibp``: refuse passwords found in breaches through the k-anonymity range API.
    password_breach_check: BreachCheck = "off"  # noqa: S105 (a mode, not a secret)
    #: Base URL of the Pwned Passwords range API (``GET {url}/range/{5 hex}``).
    hibp_url: str = "https://api.pwnedpasswords.com"
    #: When the range API cannot answer within 2 s: ``open`` accepts the password (logged,
    #: counted), ``closed`` answers 503.
    password_breach_fail: BreachFail = "open"  # noqa: S105 (a mode, not a secret)
    #: Argon2id cost. OWASP minimum is m=19 MiB, t=2, p=1; see docs/passwords.md for the measurement.
    argon2_memory_cost: int = Field(default=19_456, ge=19_456)
    #: Argon2id iterations (``t``).
    argon2_time_cost: int = Field(default=2, ge=2)
    #: Argon2id lanes (``p``).
    argon2_parallelism: int = Field(default=1, ge=1)
    #: Threads that hash passwords (0 = one per core) and how many hashes may wait for one.
    hash_workers: int = Field(default=0, ge=0)
    #: Jobs that may wait for a hashing thread; beyond it a request answers 503 at once.
    hash_queue_limit: int = Field(default=64, ge=1)

    #: How mail leaves: ``console`` (printed; development only), ``smtp`` or ``ses``.
    email_backend: EmailBackend = "console"
    #: The sender address of every message.
    email_from: str = "authgate@localhost"
    #: SMTP server host (``EMAIL_BACKEND=smtp``).
    smtp_host: str = "localhost"
    #: SMTP server port.
    smtp_port: int = 25
    #: SMTP user name; unset: no authentication.
    smtp_username: str | None = None
    #: SMTP password.
    smtp_password: SecretStr | None = None
    #: ``none``, ``starttls`` (upgrade after connecting) or ``tls`` (implicit TLS).
    smtp_tls: SmtpTls = "none"
    #: Seconds an SMTP connection or command may take.
    smtp_timeout: float = 10.0
    #: AWS region of SES (``EMAIL_BACKEND=ses``); credentials come from the standard AWS chain.
    ses_region: str = "us-east-1"
    #: SES endpoint; unset: the region's default. Points at a local stand-in in development.
    ses_endpoint_url: str | None = None
    #: SES configuration set to send with (event publishing); unset: none.
    ses_configuration_set: str | None = None
    #: Check the address's domain in DNS at registration (never on look-ups).
    email_check_deliverability: bool = False
    #: Run the outbox dispatcher inside ``serve`` (switch off when ``authgate worker`` runs).
    email_dispatcher_enabled: bool = True
    #: Delivery attempts of an outbox row before it is dead (``authgate email dead``).
    email_max_attempts: int = Field(default=8, ge=1)
    #: Base of the exponential back-off between attempts (full jitter, capped at 1 h).
    email_retry_base_seconds: float = Field(default=2.0, gt=0)
    #: Seconds the dispatcher waits between looks at the outbox when nothing woke it.
    email_poll_interval: float = Field(default=1.0, gt=0)
    #: Days sent outbox rows are kept before the dispatcher deletes them.
    email_sent_retention_days: int = Field(default=7, ge=0)
    #: Mail the account (``new_sign_in``) when a sign-in comes from an IP address + User-Agent
    #: pair that none of its sign-ins of the last 90 days came from; never for an account's
    #: first sign-in. The pairs are recorded either way (so switching it on sends no wave).
    new_sign_in_alerts: bool = True

    #: Receivers of events (docs/webhooks.md): a JSON list of ``{"url", "secret", "events"?}``.
    #: ``secret`` is a Standard Webhooks secret, ``whsec_`` + base64 of 24 to 64 random bytes;
    #: ``events`` names the events sent there (default: all). Each URL at most once; an
    #: ``http://`` URL is refused in production. Secrets are never logged or shown.
    webhooks: Annotated[list[WebhookEndpointConfig], NoDecode] = Field(default_factory=list)
    #: Seconds one delivery attempt may take in all (connecting included); a slower endpoint
    #: fails the attempt and is retried.
    webhook_timeout: float = Field(default=10.0, gt=0, le=30)
    #: Pause before the first retry of an event; it doubles with each failed attempt up to
    #: 5 minutes (with jitter), for 24 hours from the event.
    webhook_retry_base_seconds: float = Field(default=1.0, gt=0, le=300)
    #: Days a delivered event (its body already wiped) is kept before it is deleted.
    webhook_delivered_retention_days: int = Field(default=7, ge=0)

    #: External identity providers, a JSON list of ``{name, kind: oidc|github, issuer?,
    #: client_id, client_secret, scopes?}`` (the entries are below; docs/oauth.md).
    oauth_providers: Annotated[list[OAuthProviderConfig], NoDecode] = Field(default_factory=list)
    #: A provider sign-in with a provider-verified address joins the verified local
    #: account of that address (off: ``?error=account_exists``).
    oauth_link_by_email: bool = False
    #: Seconds each request to a provider may take.
    oauth_http_timeout: float = 10.0

    #: Level of the service's logs (``DEBUG``, ``INFO``, ``WARNING``, ``ERROR``).
    log_level: str = "INFO"
    #: JSON log lines; unset: JSON in production, text otherwise.
    log_json: bool | None = None

    @field_validator(
        "allowed_redirect_urls",
        "cors_origins",
        "trusted_proxies",
        "introspection_clients",
        "webauthn_origins",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("provider_token_clients", mode="before")
    @classmethod
    def _provider_token_clients(cls, value: Any) -> Any:
        items = _split_list(value)
        if not isinstance(items, list):
            raise ValueError("provider-token clients must be a list")
        parsed = [
            item if isinstance(item, ProviderTokenClient) else ProviderTokenClient.parse(str(item))
            for item in items
        ]
        ids = [client.client_id for client in parsed]
        if len(set(ids)) != len(ids):
            raise ValueError("provider-token client ids must be unique")
        return parsed

    @field_validator("oauth_providers", mode="before")
    @classmethod
    def _providers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else []
        return value

    @field_validator("webhooks", mode="before")
    @classmethod
    def _webhooks(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else []
            except json.JSONDecodeError:
                # Never echo the text: it holds the secrets.
                raise ValueError(
                    "AUTHGATE_WEBHOOKS is a JSON list of {url, secret, events?}"
                ) from None
        if not isinstance(value, list):
            raise ValueError("AUTHGATE_WEBHOOKS is a JSON list of {url, secret, events?}")
        return value

    @field_validator("webhooks")
    @classmethod
    def _unique_webhook_urls(
        cls, value: list[WebhookEndpointConfig]
    ) -> list[WebhookEndpointConfig]:
        urls = [endpoint.url for endpoint in value]
        if len(set(urls)) != len(urls):
            raise ValueError("each webhook URL may appear once in AUTHGATE_WEBHOOKS")
        return value

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _rate_limits(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if not isinstance(value, dict):
            raise ValueError("rate limits are a JSON object of limit names to limits")
        unknown = {str(name) for name in value} - set(DEFAULT_RATE_LIMITS)
        if unknown:
            raise ValueError(f"unknown rate limit names: {sorted(unknown)}")
        # Parsed here, so a bad value refuses to start whoever builds the settings.
        for name, text in value.items():
            try:
                parse_limit(str(text))
            except ValueError:
                raise ValueError(f"rate limit {str(name)!r}: cannot parse {text!r}") from None
        return value

    @field_validator("ses_endpoint_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `AUTHGATE_SES_ENDPOINT_URL=` (e.g. from compose's `${VAR:-}`) means "the AWS default",
        # which boto3 takes from None, not from "" (it refuses an empty endpoint).
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("refresh_cookie_name")
    @classmethod
    def _cookie_name(cls, value: str) -> str:
        if not _COOKIE_NAME.fullmatch(value):
            raise ValueError(
                "a cookie name is an RFC 6265 token (letters, digits, !#$%&'*+-.^_`|~)"
            )
        if value.lower().startswith("__host-"):
            raise ValueError(
                "a __Host- cookie needs Path=/; the refresh cookie's path is /api/v1/auth"
            )
        return value

    @field_validator("refresh_cookie_samesite", mode="before")
    @classmethod
    def _samesite(cls, value: Any) -> Any:
        # Written as browsers show it (``Strict``) or as documented (``strict``).
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("refresh_cookie_domain", mode="before")
    @classmethod
    def _cookie_domain(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return None
            if not _COOKIE_DOMAIN.fullmatch(value):
                raise ValueError("the refresh cookie domain is a host name such as example.com")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("public_url", "frontend_url", "hibp_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _derived(self) -> Settings:
        for item in self.introspection_clients:
            if ":" not in item.get_secret_value():
                raise ValueError("introspection clients are client_id:secret pairs")
        if self.cors_origins and "*" in self.cors_origins:
            raise ValueError("wildcard CORS origin is refused (credentials are allowed)")
        if (
            self.refresh_cookie_name.lower().startswith("__secure-")
            and not self.refresh_cookie_secure
        ):
            raise ValueError(
                "a __Secure- refresh cookie name needs AUTHGATE_REFRESH_COOKIE_SECURE=true"
            )
        return self

    # -- derived values -------------------------------------------------------------------

    @property
    def is_production(self) -> bool:
        return self.env == Environment.production

    @property
    def redirect_allowlist(self) -> list[str]:
        return (
            self.allowed_redirect_urls
            if self.allowed_redirect_urls is not None
            else [self.frontend_url]
        )

    @property
    def cors_allowlist(self) -> list[str]:
        return self.cors_origins if self.cors_origins is not None else [self.frontend_url]

    @property
    def webauthn_rp(self) -> str:
        """The effective Relying Party ID (``webauthn_rp_id``, else the front end's host)."""
        if self.webauthn_rp_id:
            return self.webauthn_rp_id
        return urlsplit(self.frontend_url).hostname or "localhost"

    @property
    def webauthn_origin_allowlist(self) -> list[str]:
        return self.webauthn_origins if self.webauthn_origins is not None else [self.frontend_url]

    @property
    def effective_rate_limits(self) -> dict[Limit, str]:
        """Every named limit: its override, else the registry's default."""
        return {limit: self.rate_limits.get(limit, spec.default) for limit, spec in LIMITS.items()}

    @property
    def checks_breaches(self) -> bool:
        """Whether new passwords are checked against the Pwned Passwords range API."""
        return self.password_breach_check == "hibp"  # noqa: S105 (a mode, not a secret)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def effective_signing_keys_dir(self) -> Path:
        return self.signing_keys_dir or self.keys_dir / "signing"

    @property
    def introspection_secrets(self) -> dict[str, SecretStr]:
        """Introspection clients: client id → secret (kept wrapped)."""
        pairs = (item.get_secret_value().split(":", 1) for item in self.introspection_clients)
        return {client_id: SecretStr(secret) for client_id, secret in pairs}

    def production_problems(self, *, workers: int = 1) -> list[str]:
        """Every unsafe development default or unsafe setting in force (empty when safe).

        ``workers`` is the number of server processes ``authgate serve`` is about to start.
        """
        problems: list[str] = []
        if self.secret_key is None:
            problems.append("AUTHGATE_SECRET_KEY is missing")
        elif len(self.secret_key.get_secret_value().encode()) < MIN_SECRET_KEY_BYTES:
            problems.append("AUTHGATE_SECRET_KEY is shorter than 32 bytes")
        elif not looks_random(self.secret_key.get_secret_value()):
            problems.append(
                "AUTHGATE_SECRET_KEY has low entropy (repeated pattern or few distinct characters);"
                " use e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        if not self.rate_limits_enabled:
            problems.append(
                "AUTHGATE_RATE_LIMITS_ENABLED=false (it also switches off the login throttle)"
            )
        for proxy in self.trusted_proxies:
            if ipaddress.ip_network(proxy, strict=False).prefixlen == 0:
                problems.append(
                    f"AUTHGATE_TRUSTED_PROXIES contains {proxy}: every peer could forge its address"
                )
        for client_id, secret in self.introspection_secrets.items():
            if len(secret.get_secret_value()) < MIN_CLIENT_SECRET_LENGTH:
                problems.append(
                    f"AUTHGATE_INTROSPECTION_CLIENTS: the secret of {client_id!r} is shorter than "
                    f"{MIN_CLIENT_SECRET_LENGTH} characters"
                )
        if workers > 1 and self.redis_url is None:
            problems.append(
                f"{workers} workers without AUTHGATE_REDIS_URL: rate limits, throttles and "
                "revocations would be per process"
            )
        for url in self.redirect_allowlist:
            if not url.lower().startswith("https://"):
                problems.append(f"AUTHGATE_ALLOWED_REDIRECT_URLS: {url!r} is not https")
        if self.signing_keys_dir is None:
            problems.append("AUTHGATE_SIGNING_KEYS_DIR is missing (keys are never generated)")
        if self.encryption_keys is None:
            problems.append("AUTHGATE_ENCRYPTION_KEYS is missing")
        if self.email_backend == "console":
            problems.append("AUTHGATE_EMAIL_BACKEND is console")
        if self.is_sqlite and not self.allow_sqlite_in_production:
            problems.append("SQLite without AUTHGATE_ALLOW_SQLITE_IN_PRODUCTION=true")
        if any(origin.strip() == "*" for origin in self.cors_allowlist):
            problems.append("wildcard CORS origin")
        if not self.public_url.startswith("https://"):
            problems.append("AUTHGATE_PUBLIC_URL is not https")
        if not self.refresh_cookie_secure:
            if self.refresh_cookie_samesite == "none":
                problems.append(
                    "AUTHGATE_REFRESH_COOKIE_SAMESITE=none without AUTHGATE_REFRESH_COOKIE_SECURE: "
                    "browsers drop such a cookie, and it would travel over plain http"
                )
            else:
                problems.append(
                    "AUTHGATE_REFRESH_COOKIE_SECURE=false: the refresh cookie would travel over "
                    "plain http"
                )
        if self.checks_breaches and not self.hibp_url.lower().startswith("https://"):
            problems.append("AUTHGATE_HIBP_URL is not https (the breached-password check)")
        for index, endpoint in enumerate(self.webhooks, start=1):
            if not endpoint.url.lower().startswith("https://"):
                # The host only: a URL may carry a credential in its path or query.
                problems.append(
                    f"AUTHGATE_WEBHOOKS: endpoint {index} ({endpoint.host}) is not https"
                )
        for origin in self.webauthn_origins or ():
            if not origin.lower().startswith("https://"):
                # Browsers make passkeys over plain http for localhost only.
                problems.append(f"AUTHGATE_WEBAUTHN_ORIGINS: {origin!r} is not https")
        short = [
            c.client_id
            for c in self.provider_token_clients
            if len(c.secret.get_secret_value()) < MIN_CLIENT_SECRET_LENGTH
        ]
        if short:
            problems.append(
                "AUTHGATE_PROVIDER_TOKEN_CLIENTS: secrets shorter than "
                f"{MIN_CLIENT_SECRET_LENGTH} characters ({', '.join(sorted(short))})"
            )
        return problems
