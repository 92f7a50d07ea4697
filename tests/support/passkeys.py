"""A software WebAuthn authenticator for API tests, and the passkey flows over HTTP.

``SoftAuthenticator`` makes what a browser + platform authenticator hand to the page: a
``RegistrationResponseJSON`` (attestation ``none``) for ``create`` and an
``AuthenticationResponseJSON`` for ``get``, with EC P-256 keys (ES256) and CBOR by ``cbor2``,
as py_webauthn's own tests build credentials. Every check the server makes can be broken on
purpose: the origin, the RP ID, the UP/UV flags, the challenge, the signature counter.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.api import API, bearer

ORIGIN = "http://localhost:5173"
RP_ID = "localhost"

_UP, _UV, _BE, _BS, _AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftCredential:
    credential_id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    #: The counter the next assertion reports (None: an authenticator that keeps none, 0).
    counter: int | None = None

    def cose_public_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )


@dataclass
class SoftAuthenticator:
    """A platform authenticator holding discoverable credentials, user-verifying by default."""

    origin: str = ORIGIN
    credentials: list[SoftCredential] = field(default_factory=list)
    #: Whether new credentials keep a signature counter (starting at 1) or none (always 0).
    counts_signatures: bool = False

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        user_verified: bool = True,
        user_present: bool = True,
        challenge: str | None = None,
        credential_id: bytes | None = None,
    ) -> dict[str, Any]:
        """``navigator.credentials.create()`` of ``options`` (creation options JSON) →
        ``credential.toJSON()``. ``credential_id`` forges a credential with that id (and a
        key of its own)."""
        rp = rp_id or options["rp"]["id"]
        cred = SoftCredential(
            credential_id=credential_id or secrets.token_bytes(32),
            key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=rp,
            user_handle=unb64url(options["user"]["id"]),
            counter=1 if self.counts_signatures else None,
        )
        flags = _AT | (_UP if user_present else 0) | (_UV if user_verified else 0)
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([flags])
            + struct.pack(">I", 0)
            + bytes(16)  # AAGUID: none given with attestation "none"
            + struct.pack(">H", len(cred.credential_id))
            + cred.credential_id
            + cred.cose_public_key()
        )
        client_data = _client_data(
            "webauthn.create", challenge or options["challenge"], origin or self.origin
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        if credential_id is None:  # a forged copy of another id is not kept
            self.credentials.append(cred)
        return {
            "id": b64url(cred.credential_id),
            "rawId": b64url(cred.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal", "hybrid"],
            },
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        credential: SoftCredential | None = None,
        origin: str | None = None,
        rp_id: str | None = None,
        user_verified: bool = True,
        counter: int | None = None,
    ) -> dict[str, Any]:
        """``navigator.credentials.get()`` of ``options`` (request options JSON) →
        ``credential.toJSON()``: the newest credential for the RP unless one is named."""
        rp = rp_id or options["rpId"]
        wanted = options["rpId"]
        cred = credential or next(c for c in reversed(self.credentials) if c.rp_id == wanted)
        if counter is None and cred.counter is not None:
            cred.counter += 1
        count = counter if counter is not None else (cred.counter or 0)
        flags = _UP | (_UV if user_verified else 0)
        auth_data = hashlib.sha256(rp.encode()).digest() + bytes([flags]) + struct.pack(">I", count)
        client_data = _client_data("webauthn.get", options["challenge"], origin or self.origin)
        signature = cred.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64url(cred.credential_id),
            "rawId": b64url(cred.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(cred.user_handle),
            },
        }


def _client_data(type_: str, challenge: str, origin: str) -> bytes:
    return json.dumps(
        {"type": type_, "challenge": challenge, "origin": origin, "crossOrigin": False},
        separators=(",", ":"),
    ).encode()


# -- flows over HTTP -------------------------------------------------------------------------


async def creation_options(client: httpx.AsyncClient, access_token: str) -> dict[str, Any]:
    response = await client.post(
        f"{API}/users/me/passkeys/options", json={}, headers=bearer(access_token)
    )
    assert response.status_code == 200, response.text
    options: dict[str, Any] = response.json()
    return options


async def submit(
    client: httpx.AsyncClient,
    access_token: str,
    credential: dict[str, Any],
    name: str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"credential": credential}
    if name is not None:
        body["name"] = name
    return await client.post(f"{API}/users/me/passkeys", json=body, headers=bearer(access_token))


async def register(
    client: httpx.AsyncClient,
    access_token: str,
    authenticator: SoftAuthenticator,
    name: str | None = None,
) -> dict[str, Any]:
    """Register a new passkey of the authenticator for the signed-in user: the ``Passkey``."""
    options = await creation_options(client, access_token)
    response = await submit(client, access_token, authenticator.create(options), name)
    assert response.status_code == 201, response.text
    passkey: dict[str, Any] = response.json()
    return passkey


async def request_options(client: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    response = await client.post(f"{API}/auth/passkey/options", json={})
    assert response.status_code == 200, response.text
    body = response.json()
    return body["flow_token"], body["options"]


async def verify(
    client: httpx.AsyncClient,
    flow_token: str,
    credential: dict[str, Any],
    **extra: Any,
) -> httpx.Response:
    return await client.post(
        f"{API}/auth/passkey/verify",
        json={"flow_token": flow_token, "credential": credential, **extra},
    )


async def sign_in(
    client: httpx.AsyncClient, authenticator: SoftAuthenticator, **get: Any
) -> httpx.Response:
    flow_token, options = await request_options(client)
    return await verify(client, flow_token, authenticator.get(options, **get))
