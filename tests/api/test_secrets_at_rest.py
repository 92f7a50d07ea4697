"""After a full flow no column holds a raw password, token or code."""

from __future__ import annotations

import httpx

from authgate.runtime import Runtime
from tests.support.db import scan_columns
from tests.support.factories import Factory
from tests.support.flows import Flows
from tests.support.mfa import enrol, mfa_token, totp_code, verify


async def test_no_raw_secret_in_any_column(
    flows: Flows, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    email = flows.new_email()
    password = "a very particular password 42"
    await flows.register(email, password)
    verification = await flows.verification_token(email)
    assert (
        await client.post("/api/v1/auth/verify-email", json={"token": verification})
    ).status_code == 200
    pair = (await flows.login(email, password)).json()
    refreshed = (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    ).json()
    await client.post("/api/v1/auth/password/forgot", json={"email": email})
    mails = await flows.sink.wait_for(email, 3)
    reset = next(m for m in mails if "/reset-password?token=" in m.text).token("/reset-password")
    secrets = [
        password,
        verification,
        reset,
        pair["refresh_token"],
        refreshed["refresh_token"],
        pair["access_token"],
        refreshed["access_token"],
    ]
    assert await scan_columns(runtime, secrets) == []


async def test_no_second_factor_secret_in_any_column(
    factory: Factory, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """The TOTP secret (encrypted), recovery codes and ``agm_`` tokens (keyed hashes) after
    enrolling, signing in with each factor and making new recovery codes."""
    account = await factory.account()
    enrolled = await enrol(client, account)
    totp_token = await mfa_token(client, account.email)
    assert (await verify(client, totp_token, totp_code(enrolled.secret, 1))).status_code == 200
    recovery_token = await mfa_token(client, account.email)
    used = enrolled.recovery_codes[0]
    assert (await verify(client, recovery_token, used, "recovery_code")).status_code == 200
    regenerated = await client.post(
        "/api/v1/users/me/mfa/recovery-codes",
        json={"password": account.password, "code": enrolled.recovery_codes[1]},
        headers=account.auth,
    )
    assert regenerated.status_code == 200, regenerated.text
    codes = enrolled.recovery_codes + regenerated.json()["recovery_codes"]
    secrets = [
        enrolled.secret,
        enrolled.secret.lower(),
        totp_token,
        recovery_token,
        *codes,
        *(code.replace("-", "") for code in codes),
    ]
    assert await scan_columns(runtime, secrets) == []
