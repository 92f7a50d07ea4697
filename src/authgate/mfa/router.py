"""HTTP for the second factor: the signed-in user's TOTP and recovery codes, and the sign-in
step that completes a ``mfa_required`` answer. Handlers resolve dependencies and call one
service."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from authgate.auth.schemas import TokenPair
from authgate.auth.transport import ISSUES_TOKENS, NO_STORE, TokenTransportDep
from authgate.core.limits import Limit
from authgate.deps import ClientDep, CurrentPrincipal, CurrentUser, DbDep, RuntimeDep, per_ip
from authgate.mfa.schemas import (
    CodeRequest,
    MfaStatusOut,
    MfaVerifyRequest,
    PasswordAndCodeRequest,
    RecoveryCodesOut,
    StartTotpRequest,
    TotpEnrollmentOut,
)
from authgate.problems import error_responses

router = APIRouter(tags=["mfa"])


@router.get(
    "/users/me/mfa",
    status_code=status.HTTP_200_OK,
    response_model=MfaStatusOut,
    responses=error_responses(401),
)
async def mfa_status(user: CurrentUser, db: DbDep, runtime: RuntimeDep) -> MfaStatusOut:
    return MfaStatusOut.model_validate(await runtime.mfa.status(db, user))


@router.post(
    "/users/me/mfa/totp",
    status_code=status.HTTP_200_OK,
    response_model=TotpEnrollmentOut,
    responses=error_responses(400, 401, 403, 409, 422, 429),
)
async def start_totp(
    body: StartTotpRequest,
    principal: CurrentPrincipal,
    response: Response,
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> TotpEnrollmentOut:
    """Starts (or restarts) setting up TOTP: the secret, shown this once, for an authenticator
    app. Body ``{password}``: wrong → 400 ``invalid_password`` (counted in the per-account
    sign-in throttle); an account without a password needs a sign-in younger than 5 minutes
    instead (else 403 ``reauthentication_required``). TOTP already on → 409 ``conflict``.
    Nothing changes for signing in until ``/users/me/mfa/totp/confirm``."""
    enrollment = await runtime.mfa.start_totp(
        db, principal.user, principal.session, body.password, client
    )
    response.headers.update(NO_STORE)
    return TotpEnrollmentOut.model_validate(enrollment)


@router.post(
    "/users/me/mfa/totp/confirm",
    status_code=status.HTTP_200_OK,
    response_model=RecoveryCodesOut,
    responses=error_responses(400, 401, 409, 422),
)
async def confirm_totp(
    body: CodeRequest,
    principal: CurrentPrincipal,
    response: Response,
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> RecoveryCodesOut:
    """Turns TOTP on with a code of the new secret (wrong → 400 ``invalid_code``; nothing
    pending → 409 ``conflict``). Answers 10 single-use recovery codes, shown this once. Every
    other session of the user ends; the owner is mailed."""
    codes = await runtime.mfa.confirm_totp(db, principal.user, principal.session, body.code, client)
    response.headers.update(NO_STORE)
    return RecoveryCodesOut(recovery_codes=codes)


@router.delete(
    "/users/me/mfa/totp",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(400, 401, 403, 409, 422, 429),
)
async def disable_totp(
    body: PasswordAndCodeRequest,
    principal: CurrentPrincipal,
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> Response:
    """Turns TOTP off; the recovery codes go too. Body ``{password, code}``: ``code`` is a
    current TOTP code or an unused recovery code. Wrong password → 400 ``invalid_password``,
    wrong code → 400 ``invalid_code`` (both counted in the sign-in throttle); TOTP not on →
    409. The owner is mailed."""
    await runtime.mfa.disable_totp(
        db, principal.user, principal.session, body.password, body.code, client
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users/me/mfa/recovery-codes",
    status_code=status.HTTP_200_OK,
    response_model=RecoveryCodesOut,
    responses=error_responses(400, 401, 403, 409, 422, 429),
)
async def regenerate_recovery_codes(
    body: PasswordAndCodeRequest,
    principal: CurrentPrincipal,
    response: Response,
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
) -> RecoveryCodesOut:
    """A new set of 10 recovery codes; the old set stops working. Checked like turning TOTP
    off; the owner is mailed."""
    codes = await runtime.mfa.regenerate_recovery_codes(
        db, principal.user, principal.session, body.password, body.code, client
    )
    response.headers.update(NO_STORE)
    return RecoveryCodesOut(recovery_codes=codes)


@router.post(
    "/auth/mfa/verify",
    status_code=status.HTTP_200_OK,
    response_model=TokenPair,
    responses={**ISSUES_TOKENS, **error_responses(400, 422, 429)},
    dependencies=[per_ip(Limit.mfa_verify_ip)],
)
async def verify(
    body: MfaVerifyRequest,
    db: DbDep,
    runtime: RuntimeDep,
    client: ClientDep,
    transport: TokenTransportDep,
) -> TokenPair:
    """Completes a sign-in answered with 403 ``mfa_required``: its ``mfa_token`` and a code.
    A wrong or used code → 400 ``invalid_code`` (it counts as a failed sign-in); after 5 wrong
    codes, once used, after ``AUTHGATE_MFA_TOKEN_TTL`` or for anything that is not a live
    ``agm_`` token → 400 ``invalid_token``. ``refresh_token_transport: "cookie"`` puts the
    refresh token in the HttpOnly cookie, as for ``/auth/login``."""
    issued = await runtime.auth.verify_mfa(db, body.mfa_token, body.method, body.code, client)
    return transport.issue(issued, body.refresh_token_transport)
