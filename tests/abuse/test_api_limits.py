"""Rate limits, throttling, fail-closed and client IPs as a client meets them (Redis store)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from authgate.models import AuditEvent
from authgate.runtime import Runtime
from tests.support.factories import Factory
from tests.support.flows import Flows
from tests.support.servers import RedisServer


@pytest.fixture
def settings_overrides(redis_srv: RedisServer) -> dict[str, Any]:
    return {
        "redis_url": redis_srv.url,
        "rate_limits_enabled": True,
        "rate_limits": {
            "login_account": "10/15minutes",
            "login_ip": "1000/minute",
            "register_ip": "3/minute",
            "forgot_password_ip": "1000/minute",
            "forgot_password_email": "2/hour",
            "token_consume_ip": "1000/minute",
        },
        "trusted_proxies": ["10.0.0.0/8"],
        # These tests are about the limits' answers: a loaded CI machine (two cores, 50 requests
        # in flight) must not turn them into 503s by timing out a live Redis after 0.5 s (a CI
        # run saw every refusal of the parallel test become a 503). A stopped Redis refuses the
        # connection at once, so the fail-closed test does not wait for this.
        "store_timeout": 5.0,
    }


async def _failed_logins(runtime: Runtime) -> int:
    async with runtime.sessionmaker() as db:
        return int(
            (
                await db.execute(
                    select(func.count())
                    .select_from(AuditEvent)
                    .where(AuditEvent.type == "login_failed")
                )
            ).scalar_one()
        )


async def test_parallel_wrong_passwords_are_evaluated_no_more_often_than_sequential_ones(
    flows: Flows, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    guesser = {"User-Agent": "guesser/1.0"}  # not the device the owner signed in with
    sequential_account = await flows.signed_up()
    sequential = 0
    for i in range(50):
        response = await client.post(
            "/api/v1/auth/login",
            json={"email": sequential_account.email, "password": f"wrong password {i:03d}"},
            headers=guesser,
        )
        sequential += response.status_code == 401
    assert await _failed_logins(runtime) == sequential

    account = await flows.signed_up()
    responses = await asyncio.gather(
        *(
            client.post(
                "/api/v1/auth/login",
                json={"email": account.email, "password": f"wrong password number {i:03d}"},
                headers=guesser,
            )
            for i in range(50)
        )
    )
    statuses = [r.status_code for r in responses]
    evaluated = await _failed_logins(runtime) - sequential
    assert statuses.count(401) == evaluated
    assert evaluated <= 10 + 2, statuses
    assert evaluated <= sequential, (evaluated, sequential, statuses)
    # Refused without evaluation: 429, or 503 where a loaded machine timed the store out (the
    # store fails closed); either way no password was looked at.
    refused = [r for r in responses if r.status_code in (429, 503)]
    assert len(refused) == 50 - evaluated, statuses
    assert sum(r.status_code == 429 for r in refused) >= 1
    for response in refused:
        assert int(response.headers["retry-after"]) >= 1
        expected = "rate_limited" if response.status_code == 429 else "service_unavailable"
        assert response.json()["code"] == expected
    # The account is throttled whatever IP the next attempt comes from (other than a device
    # the owner signed in with) ...
    again = await client.post(
        "/api/v1/auth/login",
        json={"email": account.email, "password": account.password},
        headers={"X-Forwarded-For": "198.51.100.9", "User-Agent": "another/2.0"},
    )
    assert again.status_code == 429
    # ... and the owner's known device is not locked out.
    assert (await flows.login(account.email, account.password)).status_code == 200


async def test_forgot_password_past_the_limit_is_identical_for_every_address(
    factory: Factory, client: httpx.AsyncClient
) -> None:
    account = await factory.account()
    ghost = "nobody-at-all@example.com"
    for _ in range(2):
        for email in (account.email, ghost):
            assert (
                await client.post("/api/v1/auth/password/forgot", json={"email": email})
            ).status_code == 202
    known = await client.post("/api/v1/auth/password/forgot", json={"email": account.email})
    unknown = await client.post("/api/v1/auth/password/forgot", json={"email": ghost})
    assert known.status_code == unknown.status_code == 429
    assert known.content == unknown.content
    assert known.headers["retry-after"] == unknown.headers["retry-after"]


async def test_spoofed_forwarded_for_from_untrusted_peer_keeps_the_bucket(
    client: httpx.AsyncClient,
) -> None:
    """The test client's peer (203.0.113.7) is not a trusted proxy: its X-Forwarded-For is
    ignored, so rotating the header does not open fresh per-IP buckets (register_ip is 3/min)."""
    statuses = []
    for i in range(5):
        response = await client.post(
            "/api/v1/auth/register",
            json={"email": f"spoof{i}@example.com", "password": "correct horse battery staple"},
            headers={"X-Forwarded-For": f"198.51.100.{i}, garbage, ::1"},
        )
        statuses.append(response.status_code)
    assert statuses == [202, 202, 202, 429, 429]


def test_forwarded_for_is_believed_only_from_trusted_proxies(runtime: Runtime) -> None:
    from starlette.requests import Request

    from authgate.core.http import unparsable_key

    def request(peer: str, xff: str | None) -> Request:
        headers = [(b"x-forwarded-for", xff.encode())] if xff is not None else []
        return Request({"type": "http", "headers": headers, "client": (peer, 1234)})

    ip = runtime.clients.client_ip
    assert ip(request("203.0.113.7", "198.51.100.1")) == "203.0.113.7"
    assert ip(request("10.0.0.2", "198.51.100.1")) == "198.51.100.1"
    assert ip(request("10.0.0.2", "1.2.3.4, 198.51.100.1, 10.0.0.5")) == "198.51.100.1"
    # A hop that is no address never lands in the proxy's shared bucket: it gets its own.
    assert ip(request("10.0.0.2", "not-an-ip")) == unparsable_key("not-an-ip")
    assert ip(request("10.0.0.2", "198.51.100.1, not-an-ip")) == unparsable_key("not-an-ip")
    assert ip(request("10.0.0.2", "x" * 5000)) == unparsable_key("x" * 5000)
    assert unparsable_key("not-an-ip") != unparsable_key("x" * 5000)


async def test_redis_down_fails_closed_and_recovers(
    flows: Flows, factory: Factory, client: httpx.AsyncClient, redis_srv: RedisServer
) -> None:
    account = await factory.account()
    redis_srv.stop()
    try:
        checks = [
            await client.get("/api/v1/users/me", headers=account.auth),
            await flows.login(account.email, account.password),
            await client.post(
                "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
            ),
            await client.post("/api/v1/auth/password/forgot", json={"email": account.email}),
        ]
        for response in checks:
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "service_unavailable"
            assert int(response.headers["retry-after"]) >= 1
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"] == "down"
    finally:
        redis_srv.start()
    me = await client.get("/api/v1/users/me", headers=account.auth)
    assert me.status_code == 200
    assert (await client.get("/health/ready")).status_code == 200
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert refreshed.status_code == 200
