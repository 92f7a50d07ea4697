"""Every security event leaves exactly one audit row with its fields, and never a secret."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
from sqlalchemy import select

from authgate.models import AuditEvent
from authgate.runtime import Runtime
from tests.support.flows import Flows


async def _events(runtime: Runtime) -> list[AuditEvent]:
    async with runtime.sessionmaker() as db:
        return list(
            (await db.execute(select(AuditEvent).order_by(AuditEvent.created_at))).scalars()
        )


async def test_each_security_event_leaves_exactly_one_row(
    flows: Flows, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    account = await flows.signed_up()
    await flows.login(account.email, "a wrong password here")  # login_failed
    second = (await flows.login(account.email)).json()  # login_succeeded (2nd)
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert refreshed.status_code == 200  # refresh
    replay = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert replay.status_code == 401  # refresh_reuse_detected (first session)
    auth2 = {"Authorization": f"Bearer {second['access_token']}"}
    third = (await flows.login(account.email)).json()
    sessions = (await client.get("/api/v1/sessions", headers=auth2)).json()
    assert len(sessions) == 2, sessions
    other = next(s["id"] for s in sessions if not s["current"])
    assert (
        await client.delete(f"/api/v1/sessions/{other}", headers=auth2)
    ).status_code == 204  # session_revoked
    assert (
        await client.post("/api/v1/auth/logout", json={"refresh_token": second["refresh_token"]})
    ).status_code == 204
    del third
    fourth = (await flows.login(account.email)).json()
    auth4 = {"Authorization": f"Bearer {fourth['access_token']}"}
    assert (await client.post("/api/v1/auth/logout-all", headers=auth4)).status_code == 204
    await client.post("/api/v1/auth/password/forgot", json={"email": account.email})
    for _ in range(200):
        resets = [m for m in flows.sink.to(account.email) if "/reset-password?token=" in m.text]
        if resets:
            break
        await asyncio.sleep(0.05)
    reset_token = resets[-1].token("/reset-password")
    new_password = "a brand new password for ada"
    reset = await client.post(
        "/api/v1/auth/password/reset", json={"token": reset_token, "new_password": new_password}
    )
    assert reset.status_code == 204
    fifth = (await flows.login(account.email, new_password)).json()
    auth5 = {"Authorization": f"Bearer {fifth['access_token']}"}
    changed = await client.post(
        "/api/v1/users/me/password",
        json={"current_password": new_password, "new_password": "yet another password for ada"},
        headers=auth5,
    )
    assert changed.status_code == 200
    auth6 = {"Authorization": f"Bearer {changed.json()['access_token']}"}
    email_change = await client.post(
        "/api/v1/users/me/email",
        json={"new_email": "moved@example.com", "password": "yet another password for ada"},
        headers=auth6,
    )
    assert email_change.status_code == 202
    link = await flows.sink.latest("moved@example.com")
    confirmed = await client.post(
        "/api/v1/auth/verify-email", json={"token": link.token("/verify-email")}
    )
    assert confirmed.status_code == 200
    deleted = await client.request(
        "DELETE",
        "/api/v1/users/me",
        json={"password": "yet another password for ada"},
        headers=auth6,
    )
    assert deleted.status_code == 204

    events = await _events(runtime)
    counts = Counter(e.type for e in events)
    expected_once = [
        "login_failed",
        "refresh",
        "refresh_reuse_detected",
        "session_revoked",
        "logout",
        "logout_all",
        "password_reset_requested",
        "password_reset_completed",
        "password_changed",
        "email_change_requested",
        "email_change_confirmed",
        "account_deleted",
        "email_verified",
    ]
    for event_type in expected_once:
        assert counts[event_type] == 1, (event_type, counts)
    assert counts["login_succeeded"] == 5
    user_ids = {e.user_id for e in events if e.type != "register"}
    assert len(user_ids) == 1 and isinstance(next(iter(user_ids)), uuid.UUID)
    for event in events:
        if event.type in {
            "login_failed",
            "login_succeeded",
            "refresh",
            "logout",
            "account_deleted",
        }:
            assert event.ip_address == "203.0.113.7", event.type
            assert event.user_agent == "pytest-agent/1.0", event.type
        text = repr(event.detail)
        assert "password" not in text.replace("reason", "") or event.type == "login_failed"
        assert "agr_" not in text and "agp_" not in text and "agv_" not in text
