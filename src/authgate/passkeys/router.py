"""HTTP for passkeys: the signed-in user's registration and management, and the passwordless
sign-in. Handlers resolve dependencies and call one service."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response, status

from authgate.auth.schemas import TokenPair
from authgate.auth.transport import ISSUES_TOKENS, NO_STORE, TokenTransportDep
from authgate.core.limits import Limit
from authgate.deps import ClientDep, CurrentUser, DbDep, RuntimeDep, per_ip
from authgate.passkeys.schemas import (
    PasskeyOut,
    PasskeyVerifyRequest,
    RegisterPasskeyRequest,
    RenamePasskeyRequest,
    SignInOptionsOut,
)
from authgate.problems import error_responses

router = APIRouter(tags=["passkeys"])


@router.post(
    "/users/me/passkeys/options",
    status_code=status.HTTP_200_OK,
    response_model=dict[str, Any],
    responses=error_responses(401),
)
async def registration_options(
    user: CurrentUser, response: Response, db: DbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """`PublicKeyCredentialCreationOptionsJSON` for a new passkey (a discoverable credential,
    user verification required, attestation `none`, the user's passkeys excluded), for
    `PublicKeyCredential.parseCreationOptionsFromJSON`. Its challenge is single use and lives
    `AUTHGATE_WEBAUTHN_CHALLENGE_TTL` seconds; a newer call replaces it. The body, if any, is
    ignored."""
    response.headers.update(NO_STORE)
    return await runtime.passkeys.registration_options(db, user)


@router.post(
    "/users/me/passkeys",
    status_code=status.HTTP_201_CREATED,
    response_model=PasskeyOut,
    responses=error_responses(400, 401, 409, 422),
)
async def register_passkey(
    body: RegisterPasskeyRequest,
    user: CurrentUser,
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> PasskeyOut:
    """Registers the credential `navigator.credentials.create()` made from the newest options
    (its `toJSON()`). Checked: the challenge, the origin (`AUTHGATE_WEBAUTHN_ORIGINS`), the RP
    ID hash, user presence and verification. Anything wrong, or no live options → 400
    `invalid_credential` (the options are spent either way); registered already → 409
    `conflict`."""
    passkey = await runtime.passkeys.register(db, user, body.credential, body.name, client)
    return PasskeyOut.model_validate(passkey)


@router.get(
    "/users/me/passkeys",
    status_code=status.HTTP_200_OK,
    response_model=list[PasskeyOut],
    responses=error_responses(401),
)
async def list_passkeys(user: CurrentUser, db: DbDep, runtime: RuntimeDep) -> list[PasskeyOut]:
    return [PasskeyOut.model_validate(p) for p in await runtime.passkeys.list(db, user)]


@router.patch(
    "/users/me/passkeys/{passkey_id}",
    status_code=status.HTTP_200_OK,
    response_model=PasskeyOut,
    responses=error_responses(401, 404, 422),
)
async def rename_passkey(
    passkey_id: uuid.UUID,
    body: RenamePasskeyRequest,
    user: CurrentUser,
    db: DbDep,
    runtime: RuntimeDep,
) -> PasskeyOut:
    """Renames one of the user's passkeys; another user's or an unknown id → 404."""
    passkey = await runtime.passkeys.rename(db, user, passkey_id, body.name)
    return PasskeyOut.model_validate(passkey)


@router.delete(
    "/users/me/passkeys/{passkey_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 404, 422),
)
async def delete_passkey(
    passkey_id: uuid.UUID,
    user: CurrentUser,
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> Response:
    """Removes one of the user's passkeys (it no longer signs in); another user's or an
    unknown id → 404."""
    await runtime.passkeys.delete(db, user, passkey_id, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/auth/passkey/options",
    status_code=status.HTTP_200_OK,
    response_model=SignInOptionsOut,
    responses=error_responses(429),
    dependencies=[per_ip(Limit.passkey_ip)],
)
async def sign_in_options(response: Response, db: DbDep, runtime: RuntimeDep) -> SignInOptionsOut:
    """Starts a sign-in with a passkey: an `agw_` flow token and
    `PublicKeyCredentialRequestOptionsJSON` with no `allowCredentials` (the browser offers the
    user's discoverable passkeys; no account is named), user verification required. The body,
    if any, is ignored."""
    started = await runtime.passkeys.sign_in_options(db)
    response.headers.update(NO_STORE)
    return SignInOptionsOut(flow_token=started.flow_token, options=started.options)


@router.post(
    "/auth/passkey/verify",
    status_code=status.HTTP_200_OK,
    response_model=TokenPair,
    responses={**ISSUES_TOKENS, **error_responses(400, 401, 422, 429)},
    dependencies=[per_ip(Limit.passkey_ip)],
)
async def verify(
    body: PasskeyVerifyRequest,
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
    transport: TokenTransportDep,
) -> TokenPair:
    """Completes a sign-in with a passkey: the flow token and the assertion
    `navigator.credentials.get()` made (its `toJSON()`). No password and no TOTP step: the
    access token's `amr` is `["swk", "user", "mfa"]`. Every refusal — unknown credential, bad
    signature, wrong origin or RP ID, user verification missing, a used, expired, unknown or
    forged flow token, a signature counter that did not increase, a disabled account — is 401
    `invalid_credentials`. `refresh_token_transport: "cookie"` puts the refresh token in the
    HttpOnly cookie, as for `/auth/login`."""
    issued = await runtime.auth.verify_passkey(db, body.flow_token, body.credential, client)
    return transport.issue(issued, body.refresh_token_transport)
