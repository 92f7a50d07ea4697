from __future__ import annotations

import httpx

from tests.support.flows import Flows


async def test_register_verify_login_me(flows: Flows, client: httpx.AsyncClient) -> None:
    account = await flows.signed_up(name="Ada")
    me = await client.get("/api/v1/users/me", headers=account.auth)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["email"] == account.email
    assert body["email_verified"] is True
    assert body["name"] == "Ada"
