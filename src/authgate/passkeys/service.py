"""PasskeyService: WebAuthn registration and sign-in ceremonies, and a user's passkeys.

Ceremonies are checked by py_webauthn (``webauthn``): challenge, origin (one of
``AUTHGATE_WEBAUTHN_ORIGINS``), RP ID hash, user presence and user verification (both always
required), signature, signature counter. Attestation is ``none``: authgate does not check which
authenticator model made a passkey, so it claims nothing about the key's hardware.

Challenges are single use and live ``AUTHGATE_WEBAUTHN_CHALLENGE_TTL`` seconds. A registration
answers the user's newest options call; a sign-in names its challenge by an ``agw_`` flow token
(keyed hash stored). An answer spends its challenge whether it verifies or not (a failure's
spend is a security write, kept though the request fails).

Sign-in is usernameless: the options allow any discoverable credential of the RP, and the
credential id the browser answers with names the passkey and so the user. Every refusal is the
same 401 ``invalid_credentials``, so a caller learns nothing about which check failed.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any, Never

from sqlalchemy.ext.asyncio import AsyncSession
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import parse_authentication_credential_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from authgate.audit import AuditService, AuditType
from authgate.config import Settings
from authgate.core.db import security_write
from authgate.core.email import EmailService, EmailTemplate
from authgate.core.errors import Conflict, InvalidCredential, InvalidCredentials, NotFound
from authgate.core.http import ClientInfo
from authgate.core.security.opaque import OpaqueTokens, TokenKind
from authgate.core.time import utc_now
from authgate.models import Passkey, User
from authgate.passkeys.repository import (
    AUTHENTICATE,
    REGISTER,
    NewPasskey,
    PasskeyRepository,
)

logger = logging.getLogger("authgate.passkeys")

#: RFC 8176 ``amr`` of a passkey sign-in. ``swk``: proof of possession of a key — software-
#: secured as far as authgate knows (attestation ``none`` proves no hardware, and synced
#: passkeys are not hardware-bound); ``user``: the authenticator tested the user's presence and
#: verified the user (PIN or biometric, it does not say which); ``mfa``: something held (the
#: key) and something known or are (the verification) — a passkey with user verification is
#: multi-factor (NIST SP 800-63B), which is why it skips TOTP.
PASSKEY_AMR: tuple[str, ...] = ("swk", "user", "mfa")

#: WebAuthn's bound on a credential id (credentialIdLength, L3 §6.5.1).
MAX_CREDENTIAL_ID_BYTES = 1023

#: The name of a passkey registered without one.
DEFAULT_NAME = "Passkey"

#: What py_webauthn or the decoders under it raise for a credential that is not one (malformed
#: base64, CBOR, COSE key): a 400/401, never a 500.
_MALFORMED = (WebAuthnException, ValueError, KeyError, TypeError, IndexError)


@dataclass(frozen=True, slots=True)
class SignInOptions:
    flow_token: str
    options: dict[str, Any]


class PasskeyService:
    def __init__(
        self,
        settings: Settings,
        opaque: OpaqueTokens,
        audit: AuditService,
        email: EmailService,
        repository: PasskeyRepository | None = None,
    ) -> None:
        self._email = email
        self._rp_id = settings.webauthn_rp
        self._rp_name = settings.webauthn_rp_name
        self._origins = settings.webauthn_origin_allowlist
        self._ttl = timedelta(seconds=settings.webauthn_challenge_ttl)
        self._opaque = opaque
        self._audit = audit
        self._repo = repository or PasskeyRepository()

    # -- registration -----------------------------------------------------------------------

    async def registration_options(self, db: AsyncSession, user: User) -> dict[str, Any]:
        """``PublicKeyCredentialCreationOptionsJSON`` for a new passkey of ``user``: a
        discoverable credential with user verification, none of the user's passkeys again."""
        existing = await self._repo.list_for(db, user.id)
        options = generate_registration_options(
            rp_id=self._rp_id,
            rp_name=self._rp_name,
            user_id=user.id.bytes,
            user_name=user.email,
            user_display_name=user.name or user.email,
            timeout=int(self._ttl.total_seconds() * 1000),
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                require_resident_key=True,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[_descriptor(p) for p in existing],
        )
        now = utc_now()
        self._repo.add_challenge(
            db,
            purpose=REGISTER,
            challenge=options.challenge,
            user_id=user.id,
            now=now,
            expires_at=now + self._ttl,
        )
        result: dict[str, Any] = json.loads(options_to_json(options))
        return result

    async def register(
        self,
        db: AsyncSession,
        user: User,
        credential: dict[str, Any],
        name: str | None,
        client: ClientInfo,
    ) -> Passkey:
        """Check a new credential against the user's newest registration challenge and keep it:
        400 ``invalid_credential`` when it does not verify (or no live challenge is waiting),
        409 ``conflict`` when the credential is registered already."""
        now = utc_now()
        spent = await self._repo.spend_registration_challenge(db, user.id, now)
        if spent is None:
            raise InvalidCredential("No passkey registration is waiting; ask for options again.")
        try:
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=spent.challenge,
                expected_rp_id=self._rp_id,
                expected_origin=self._origins,
                require_user_presence=True,
                require_user_verification=True,
            )
        except _MALFORMED as exc:
            logger.info("passkeys.register.refused", extra={"reason": type(exc).__name__})
            await security_write(db, partial(self._burn, spent.id))
            raise InvalidCredential() from None
        if len(verified.credential_id) > MAX_CREDENTIAL_ID_BYTES:
            await security_write(db, partial(self._burn, spent.id))
            raise InvalidCredential("The credential id is longer than WebAuthn allows.")
        transports = _transports(credential)
        passkey = await self._repo.create(
            db,
            NewPasskey(
                user_id=user.id,
                credential_id=verified.credential_id,
                public_key=verified.credential_public_key,
                sign_count=verified.sign_count,
                aaguid=verified.aaguid,
                name=(name or "").strip() or DEFAULT_NAME,
                transports=transports,
                backup_eligible=verified.credential_device_type
                == CredentialDeviceType.MULTI_DEVICE,
                backed_up=verified.credential_backed_up,
            ),
            now,
        )
        if passkey is None:
            await security_write(db, partial(self._burn, spent.id))
            raise Conflict("This passkey is registered already.")
        self._audit.record(
            db,
            AuditType.passkey_added,
            user_id=user.id,
            client=client,
            detail={"passkey_id": str(passkey.id)},
        )
        # A passkey signs in alone: whoever held a session (a stolen access token) could keep a
        # way in by adding one, so the owner is told at once, like for a provider link.
        await self._email.enqueue(
            db,
            to=user.email,
            template=EmailTemplate.passkey_added,
            context={"name": user.name, "passkey_name": passkey.name},
            user_id=user.id,
        )
        return passkey

    # -- management -------------------------------------------------------------------------

    async def list(self, db: AsyncSession, user: User) -> Sequence[Passkey]:
        return await self._repo.list_for(db, user.id)

    async def rename(
        self, db: AsyncSession, user: User, passkey_id: uuid.UUID, name: str
    ) -> Passkey:
        passkey = await self._repo.get(db, user.id, passkey_id)
        if passkey is None:
            raise NotFound("No such passkey.")
        await self._repo.rename(db, passkey, name.strip() or DEFAULT_NAME)
        return passkey

    async def delete(
        self, db: AsyncSession, user: User, passkey_id: uuid.UUID, client: ClientInfo
    ) -> None:
        if not await self._repo.delete(db, user.id, passkey_id):
            raise NotFound("No such passkey.")
        self._audit.record(
            db,
            AuditType.passkey_removed,
            user_id=user.id,
            client=client,
            detail={"passkey_id": str(passkey_id)},
        )

    async def delete_all(self, db: AsyncSession, user_id: uuid.UUID) -> int:
        """Remove every passkey of the user (an admin's action; the caller audits it)."""
        return await self._repo.delete_all(db, user_id)

    async def counts(self, db: AsyncSession, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        return await self._repo.counts(db, user_ids)

    # -- sign-in ----------------------------------------------------------------------------

    async def sign_in_options(self, db: AsyncSession) -> SignInOptions:
        """A usernameless sign-in: an ``agw_`` flow token and
        ``PublicKeyCredentialRequestOptionsJSON`` with no ``allowCredentials``."""
        options = generate_authentication_options(
            rp_id=self._rp_id,
            timeout=int(self._ttl.total_seconds() * 1000),
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        token, token_hash = self._opaque.new(TokenKind.passkey)
        now = utc_now()
        self._repo.add_challenge(
            db,
            purpose=AUTHENTICATE,
            challenge=options.challenge,
            token_hash=token_hash,
            now=now,
            expires_at=now + self._ttl,
        )
        return SignInOptions(token, json.loads(options_to_json(options)))

    async def authenticate(
        self, db: AsyncSession, flow_token: str, credential: dict[str, Any], client: ClientInfo
    ) -> User:
        """The user a passkey assertion proves, its challenge spent and the passkey's counter
        and last use recorded; 401 ``invalid_credentials`` for anything else (the challenge
        spent all the same, and the failure audited when the passkey was known)."""
        if not OpaqueTokens.looks_like(TokenKind.passkey, flow_token):
            raise InvalidCredentials("The passkey could not be verified.")
        try:
            parsed = parse_authentication_credential_json(credential)
        except _MALFORMED:
            parsed = None
        now = utc_now()
        # The challenge is spent first whatever the credential: a malformed answer spends it too.
        attempt = await self._repo.spend_sign_in(
            db, self._opaque.hash(flow_token), None if parsed is None else parsed.raw_id, now
        )
        if attempt is None:
            raise InvalidCredentials("The passkey could not be verified.")
        if parsed is None:
            await self._refuse(db, attempt.challenge_id, None, "malformed", client)
        passkey = attempt.passkey
        if passkey is None:
            await self._refuse(db, attempt.challenge_id, None, "unknown_credential", client)
        handle = parsed.response.user_handle
        if handle is not None and handle != passkey.user_id.bytes:
            await self._refuse(db, attempt.challenge_id, passkey.user_id, "user_handle", client)
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=attempt.challenge,
                expected_rp_id=self._rp_id,
                expected_origin=self._origins,
                credential_public_key=passkey.public_key,
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=True,
            )
        except _MALFORMED as exc:
            logger.info("passkeys.sign_in.refused", extra={"reason": type(exc).__name__})
            await self._refuse(db, attempt.challenge_id, passkey.user_id, "not_verified", client)
        user = attempt.user
        if user is None or not user.is_active or not user.email_verified:
            await self._refuse(
                db, attempt.challenge_id, passkey.user_id, "account_unusable", client
            )
        if not await self._repo.record_use(
            db,
            passkey.id,
            passkey.sign_count,
            verified.new_sign_count,
            verified.credential_backed_up,
            now,
        ):
            await self._refuse(db, attempt.challenge_id, passkey.user_id, "counter_race", client)
        return user

    async def _refuse(
        self,
        db: AsyncSession,
        challenge_id: uuid.UUID,
        user_id: uuid.UUID | None,
        reason: str,
        client: ClientInfo,
    ) -> Never:
        await security_write(db, partial(self._failed, challenge_id, user_id, reason, client))
        raise InvalidCredentials("The passkey could not be verified.")

    async def _failed(
        self,
        challenge_id: uuid.UUID,
        user_id: uuid.UUID | None,
        reason: str,
        client: ClientInfo,
        tx: AsyncSession,
    ) -> None:
        await self._repo.burn_challenge(tx, challenge_id, utc_now())
        self._audit.record(
            tx,
            AuditType.login_failed,
            user_id=user_id,
            client=client,
            detail={"method": "passkey", "reason": reason},
        )

    async def _burn(self, challenge_id: uuid.UUID, tx: AsyncSession) -> None:
        await self._repo.burn_challenge(tx, challenge_id, utc_now())

    async def purge(self, db: AsyncSession) -> int:
        return await self._repo.purge_challenges(db, utc_now())


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = []
    for value in passkey.transports:
        try:
            transports.append(AuthenticatorTransport(value))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(id=passkey.credential_id, transports=transports or None)


def _transports(credential: dict[str, Any]) -> list[str]:
    response = credential.get("response")
    values = response.get("transports") if isinstance(response, dict) else None
    if not isinstance(values, list):
        return []
    known = {t.value for t in AuthenticatorTransport}
    return [v for v in values if isinstance(v, str) and v in known][:8]
