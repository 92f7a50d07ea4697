"""Identity providers from configuration, and every HTTP exchange with them.

An OpenID Connect provider is described by its issuer: the rest comes from
``{issuer}/.well-known/openid-configuration`` (cached per process). GitHub is plain OAuth 2.0 with
fixed endpoints (overridable for tests). Authlib's ``AsyncOAuth2Client`` performs the token
requests (code exchange, refresh, RFC 7009 revocation); the ID token is validated in
``oauth.idtoken``.

Nothing here logs a token, a code or a secret: failures carry the provider's error code only.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from authgate.config import OAuthProviderConfig, Settings
from authgate.oauth.errors import ProviderError, UnknownProvider

with warnings.catch_warnings():
    # authlib >= 1.9 prefers the httpx2 package and warns when it falls back to httpx, which is
    # what this project ships; importing authlib.deprecate first lets our filter win over the
    # "always" filter that module installs. catch_warnings restores the global filters after.
    import authlib.deprecate  # noqa: F401

    warnings.filterwarnings(
        "ignore", message="The httpx module is deprecated", category=DeprecationWarning
    )
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

GITHUB_AUTHORIZE_URL = "https://github.com/login/oauth/authorize"
GITHUB_TOKEN_URL = "https://github.com/login/oauth/access_token"  # noqa: S105
GITHUB_USER_URL = "https://api.github.com/user"

DEFAULT_OIDC_SCOPES = ["openid", "email", "profile"]
DEFAULT_GITHUB_SCOPES = ["read:user", "user:email"]

#: How long discovery documents and key sets are trusted before being fetched again.
METADATA_TTL = 3600.0
#: An unknown ``kid`` refetches the key set, but not more often than this (key rotation).
JWKS_MIN_REFRESH = 30.0
MAX_RESPONSE_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """Everything needed to talk to one provider."""

    name: str
    kind: str
    client_id: str
    client_secret: str
    scopes: list[str]
    authorization_endpoint: str
    token_endpoint: str
    issuer: str | None = None
    userinfo_endpoint: str | None = None
    jwks_uri: str | None = None
    revocation_endpoint: str | None = None
    token_endpoint_auth_method: str = "client_secret_basic"  # noqa: S105 - a method name
    id_token_algorithms: list[str] = field(default_factory=list)
    #: RFC 9207: the provider sends ``iss`` with the authorization response.
    sends_iss_parameter: bool = False

    @property
    def is_oidc(self) -> bool:
        return self.kind == "oidc"


@dataclass(frozen=True, slots=True)
class ProviderProfile:
    """Who signed in at the provider. ``email_verified`` is True only when the provider says so."""

    subject: str
    email: str | None
    email_verified: bool
    name: str | None


class ProviderRegistry:
    """The configured providers, their discovered metadata and key sets (cached per process)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._configs: dict[str, OAuthProviderConfig] = {
            p.name: p for p in settings.oauth_providers
        }
        #: name -> (value, time.monotonic() when fetched)
        self._metadata: dict[str, tuple[ProviderMetadata, float]] = {}
        self._jwks: dict[str, tuple[dict[str, Any], float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._ssl: ssl.SSLContext | None = None

    # -- configuration ----------------------------------------------------------------------

    def configs(self) -> list[OAuthProviderConfig]:
        return list(self._configs.values())

    def config(self, name: str) -> OAuthProviderConfig:
        found = self._configs.get(name)
        if found is None:
            raise UnknownProvider()
        return found

    def callback_url(self, name: str) -> str:
        return f"{self._settings.public_url}/api/v1/oauth/{name}/callback"

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _tls(self) -> ssl.SSLContext:
        # Loading the CA bundle takes tens of milliseconds: once per process, not per request.
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self._settings.oauth_http_timeout, follow_redirects=False, verify=self._tls()
        )

    # -- metadata ---------------------------------------------------------------------------

    async def metadata(self, name: str) -> ProviderMetadata:
        config = self.config(name)
        if config.kind == "github":
            return self._github(config)
        cached = self._metadata.get(name)
        if cached is not None and time.monotonic() - cached[1] < METADATA_TTL:
            return cached[0]
        async with self._lock(f"meta:{name}"):
            cached = self._metadata.get(name)
            if cached is not None and time.monotonic() - cached[1] < METADATA_TTL:
                return cached[0]
            meta = await self._discover(config)
            self._metadata[name] = (meta, time.monotonic())
            return meta

    def _github(self, config: OAuthProviderConfig) -> ProviderMetadata:
        return ProviderMetadata(
            name=config.name,
            kind="github",
            client_id=config.client_id,
            client_secret=config.client_secret.get_secret_value(),
            scopes=config.scopes or DEFAULT_GITHUB_SCOPES,
            authorization_endpoint=config.authorize_url or GITHUB_AUTHORIZE_URL,
            token_endpoint=config.token_url or GITHUB_TOKEN_URL,
            userinfo_endpoint=config.userinfo_url or GITHUB_USER_URL,
            revocation_endpoint=config.revocation_url,
            token_endpoint_auth_method="client_secret_post",  # noqa: S106 - a method name
        )

    async def _discover(self, config: OAuthProviderConfig) -> ProviderMetadata:
        if not config.issuer:
            raise ProviderError("an OpenID Connect provider needs an issuer")
        url = config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = await self._get_json(url)
        # OpenID Connect Discovery §4.3: the document's issuer is exactly the configured one.
        if doc.get("issuer") != config.issuer:
            raise ProviderError("discovery issuer mismatch")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(key), str):
                raise ProviderError(f"discovery document lacks {key}")
        methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        auth_method = (
            "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
        )
        algorithms = [
            alg
            for alg in doc.get("id_token_signing_alg_values_supported") or ["RS256"]
            if isinstance(alg, str)
        ]
        return ProviderMetadata(
            name=config.name,
            kind="oidc",
            client_id=config.client_id,
            client_secret=config.client_secret.get_secret_value(),
            scopes=config.scopes or DEFAULT_OIDC_SCOPES,
            issuer=config.issuer,
            authorization_endpoint=config.authorize_url or doc["authorization_endpoint"],
            token_endpoint=config.token_url or doc["token_endpoint"],
            userinfo_endpoint=config.userinfo_url or _optional_str(doc, "userinfo_endpoint"),
            jwks_uri=doc["jwks_uri"],
            revocation_endpoint=config.revocation_url or _optional_str(doc, "revocation_endpoint"),
            token_endpoint_auth_method=auth_method,
            id_token_algorithms=algorithms,
            sends_iss_parameter=doc.get("authorization_response_iss_parameter_supported") is True,
        )

    async def jwks(self, meta: ProviderMetadata, *, refresh: bool = False) -> dict[str, Any]:
        """The provider's key set; ``refresh`` refetches it unless it was fetched just now."""
        if meta.jwks_uri is None:
            raise ProviderError("no jwks_uri")
        cached = self._jwks.get(meta.name)
        now = time.monotonic()
        if cached is not None and now - cached[1] < (JWKS_MIN_REFRESH if refresh else METADATA_TTL):
            return cached[0]
        async with self._lock(f"jwks:{meta.name}"):
            cached = self._jwks.get(meta.name)
            if cached is not None and cached[1] > now:  # fetched while we waited for the lock
                return cached[0]
            doc = await self._get_json(meta.jwks_uri)
            if not isinstance(doc.get("keys"), list):
                raise ProviderError("the key set has no keys")
            self._jwks[meta.name] = (doc, time.monotonic())
            return doc

    async def _get_json(self, url: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        try:
            async with self._http() as http:
                response = await http.get(
                    url, headers={"Accept": "application/json", **(headers or {})}
                )
        except httpx.HTTPError as exc:
            raise ProviderError(f"request failed: {type(exc).__name__}", transient=True) from None
        if response.status_code != 200:
            raise ProviderError(
                f"HTTP {response.status_code}", transient=response.status_code >= 500
            )
        return _json_object(response)

    # -- the authorization request ----------------------------------------------------------

    def authorization_url(
        self, meta: ProviderMetadata, *, state: str, code_verifier: str, nonce: str | None
    ) -> str:
        params: dict[str, str] = {
            "response_type": "code",
            "client_id": meta.client_id,
            "redirect_uri": self.callback_url(meta.name),
            "scope": " ".join(meta.scopes),
            "state": state,
            "code_challenge": create_s256_code_challenge(code_verifier),
            "code_challenge_method": "S256",
        }
        if nonce is not None:
            params["nonce"] = nonce
        return add_query(meta.authorization_endpoint, params)

    # -- token endpoint (authlib) -----------------------------------------------------------

    def _client(self, meta: ProviderMetadata) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=meta.client_id,
            client_secret=meta.client_secret,
            token_endpoint_auth_method=meta.token_endpoint_auth_method,
            revocation_endpoint_auth_method=meta.token_endpoint_auth_method,
            redirect_uri=self.callback_url(meta.name),
            timeout=self._settings.oauth_http_timeout,
            verify=self._tls(),
        )

    async def exchange_code(
        self, meta: ProviderMetadata, code: str, code_verifier: str
    ) -> dict[str, Any]:
        try:
            async with self._client(meta) as client:
                token = await client.fetch_token(
                    meta.token_endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                    headers={"Accept": "application/json"},
                )
        except OAuthError as exc:
            raise ProviderError(f"token endpoint error: {exc.error}") from None
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderError(
                f"token request failed: {type(exc).__name__}", transient=True
            ) from None
        return _token_response(token)

    async def refresh(self, meta: ProviderMetadata, refresh_token: str) -> dict[str, Any]:
        try:
            async with self._client(meta) as client:
                token = await client.refresh_token(
                    meta.token_endpoint,
                    refresh_token=refresh_token,
                    headers={"Accept": "application/json"},
                )
        except OAuthError as exc:
            raise ProviderError(f"refresh refused: {exc.error}") from None
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderError(f"refresh failed: {type(exc).__name__}", transient=True) from None
        return _token_response(token)

    async def revoke(self, meta: ProviderMetadata, token: str, hint: str) -> None:
        """RFC 7009 revocation; raises ProviderError on any failure (callers audit it)."""
        if meta.revocation_endpoint is None:
            raise ProviderError("no revocation endpoint")
        try:
            async with self._client(meta) as client:
                response = await client.revoke_token(
                    meta.revocation_endpoint, token=token, token_type_hint=hint
                )
        except (OAuthError, httpx.HTTPError, ValueError) as exc:
            raise ProviderError(f"revocation failed: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise ProviderError(f"revocation answered HTTP {response.status_code}")

    # -- who signed in ----------------------------------------------------------------------

    async def userinfo(self, meta: ProviderMetadata, access_token: str) -> dict[str, Any]:
        if meta.userinfo_endpoint is None:
            raise ProviderError("no userinfo endpoint")
        return await self._get_json(
            meta.userinfo_endpoint, headers={"Authorization": f"Bearer {access_token}"}
        )

    async def github_profile(self, meta: ProviderMetadata, access_token: str) -> ProviderProfile:
        """GitHub: ``/user`` for the id, ``/user/emails`` for a primary *verified* address."""
        assert meta.userinfo_endpoint is not None  # noqa: S101 - set for every github provider
        headers = {
            "Authorization": f"Bearer {access_token}",
            "Accept": "application/vnd.github+json",
        }
        user = await self._get_json(meta.userinfo_endpoint, headers)
        subject = user.get("id")
        if not isinstance(subject, int | str) or isinstance(subject, bool) or str(subject) == "":
            raise ProviderError("GitHub user has no id")
        try:
            async with self._http() as http:
                response = await http.get(
                    meta.userinfo_endpoint.rstrip("/") + "/emails", headers=headers
                )
        except httpx.HTTPError as exc:
            raise ProviderError(f"request failed: {type(exc).__name__}", transient=True) from None
        email: str | None = None
        verified = False
        if response.status_code == 200:
            emails = _json_list(response)
            primary = [e for e in emails if isinstance(e, dict) and e.get("primary") is True]
            chosen = primary[0] if primary else None
            if chosen is not None and isinstance(chosen.get("email"), str):
                email = chosen["email"]
                verified = chosen.get("verified") is True
        name = user.get("name") if isinstance(user.get("name"), str) else None
        return ProviderProfile(str(subject), email, verified, name)


def add_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` added to its query string (existing parameters are kept)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _optional_str(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return value if isinstance(value, str) else None


def _json_object(response: httpx.Response) -> dict[str, Any]:
    if len(response.content) > MAX_RESPONSE_BYTES:
        raise ProviderError("response too large")
    try:
        body = response.json()
    except ValueError:
        raise ProviderError("response is not JSON") from None
    if not isinstance(body, dict):
        raise ProviderError("response is not a JSON object")
    return body


def _json_list(response: httpx.Response) -> list[Any]:
    try:
        body = response.json()
    except ValueError:
        return []
    return body if isinstance(body, list) else []


def _token_response(token: Mapping[str, Any]) -> dict[str, Any]:
    """The fields we keep of a token response, checked for shape."""
    access = token.get("access_token")
    if not isinstance(access, str) or not access:
        raise ProviderError("token response without access_token")
    result: dict[str, Any] = {"access_token": access}
    for key in ("refresh_token", "id_token", "token_type", "scope"):
        value = token.get(key)
        if isinstance(value, str) and value:
            result[key] = value
    expires_in: Any = token.get("expires_in")
    numeric = isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
    if numeric or (isinstance(expires_in, str) and expires_in.isdigit()):
        result["expires_in"] = int(expires_in)
    return result
