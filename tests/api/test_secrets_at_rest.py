"""After a full flow no column holds a raw password, token or code."""

from __future__ import annotations

import httpx

from authgate.runtime import Runtime
from tests.support.db import scan_columns
from tests.support.flows import Flows


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
