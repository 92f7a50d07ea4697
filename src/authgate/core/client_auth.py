"""Client authentication of trusted back-end services: HTTP Basic against configured clients.

Two kinds of clients exist, each with its own list in the settings and its own per-client
rate limit: introspection clients (``AUTHGATE_INTROSPECTION_CLIENTS``, ``/auth/introspect``) and
provider-token clients (``AUTHGATE_PROVIDER_TOKEN_CLIENTS``,
``/oauth/internal/provider-token``). A client of one kind is never accepted by the other.

This module decides; ``deps.client_auth(kind)`` is the one route dependency that uses it (and
applies ``client_auth_ip`` to failures and the kind's per-client limit to successes).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum, auto

from pydantic import SecretStr

from authgate.config import Settings
from authgate.core.limits import Limit

#: Longer Basic credentials are refused before decoding.
MAX_CREDENTIALS = 1024
#: Compared against when the client id is unknown, so both cases take the same time.
_NO_SECRET = b"\x00" * 64


class ClientKind(StrEnum):
    introspection = auto()
    provider_token = auto()


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    #: Spent once per authenticated request, per client id.
    limit: Limit
    #: While no client of the kind is configured the endpoint does not exist (404).
    absent_when_unconfigured: bool


POLICIES: dict[ClientKind, ClientPolicy] = {
    ClientKind.introspection: ClientPolicy(Limit.introspect_client, False),
    ClientKind.provider_token: ClientPolicy(Limit.provider_token_client, True),
}


def registered_clients(settings: Settings, kind: ClientKind) -> Mapping[str, SecretStr]:
    """Client id → secret of the clients of ``kind`` (secrets stay wrapped)."""
    if kind is ClientKind.introspection:
        return settings.introspection_secrets
    return {client.client_id: client.secret for client in settings.provider_token_clients}


def authenticate_basic(header: str | None, clients: Mapping[str, SecretStr]) -> str | None:
    """The client id of a valid ``Authorization: Basic`` header, else ``None``.

    The secret is compared in constant time, against a dummy for an unknown id, so the time
    says nothing about which ids exist."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic" or len(value) > MAX_CREDENTIALS:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    expected = clients.get(client_id) if colon else None
    reference = expected.get_secret_value().encode() if expected is not None else _NO_SECRET
    matches = secrets.compare_digest(reference, secret.encode())
    if expected is None or not matches:
        return None
    return client_id
