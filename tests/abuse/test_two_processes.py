"""Two real ``authgate serve`` processes on one PostgreSQL and one Redis share every state."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from authgate.config import Settings
from authgate.core.migrate import upgrade_async
from authgate.runtime import Runtime
from tests.support.factories import Factory
from tests.support.flows import TEST_PASSWORD
from tests.support.servers import PostgresServer, RedisServer, free_port, wait_for_port
from tests.support.settings import make_settings

pytestmark = pytest.mark.slow


@pytest.fixture
def server_env() -> dict[str, str]:
    """Extra environment of both servers (a test overrides it by parametrising)."""
    return {}


@pytest.fixture
def two_servers(
    pg_server: PostgresServer,
    redis_srv: RedisServer,
    tmp_path: Path,
    keys_dir: Path,
    server_env: dict[str, str],
) -> Iterator[tuple[str, str, str, str]]:
    db_url = pg_server.createdb(f"two_{os.getpid()}_{free_port()}")
    asyncio.run(upgrade_async(Settings(_env_file=None, database_url=db_url)))
    ports = [free_port(), free_port()]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")},
        "AUTHGATE_DATABASE_URL": db_url,
        "AUTHGATE_REDIS_URL": redis_srv.url,
        "AUTHGATE_KEYS_DIR": str(tmp_path / "keys"),
        "AUTHGATE_EMAIL_BACKEND": "console",
        "AUTHGATE_RATE_LIMITS": '{"login_account": "6/15minutes", "register_ip": "5/minute"}',
        "AUTHGATE_HASH_WORKERS": "1",
        "AUTHGATE_LOG_LEVEL": "WARNING",
        **server_env,
    }
    processes = []
    logs = []
    for port in ports:
        log = (tmp_path / f"server-{port}.log").open("w")
        logs.append(log)
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "authgate", "serve", "--port", str(port)],
                env={**env, "AUTHGATE_PUBLIC_URL": "http://127.0.0.1:8000"},
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        for port in ports:
            wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}", str(tmp_path), db_url
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)
        for log in logs:
            log.close()


async def test_state_is_shared_between_processes(
    two_servers: tuple[str, str, str, str],
) -> None:
    url_a, url_b, tmp, _db_url = two_servers
    async with httpx.AsyncClient(base_url=url_a) as a, httpx.AsyncClient(base_url=url_b) as b:
        # A rate limit of N admits N in total across both processes (register_ip = 5/minute).
        statuses = []
        for i in range(8):
            client = a if i % 2 == 0 else b
            response = await client.post(
                "/api/v1/auth/register",
                json={"email": f"p{i}@example.com", "password": TEST_PASSWORD},
            )
            statuses.append(response.status_code)
        assert statuses.count(202) == 5 and statuses.count(429) == 3, statuses

        # Verify p0 through the console log of whichever process sent its mail.
        token = await _token_from_logs(Path(tmp), "p0@example.com")
        assert (await b.post("/api/v1/auth/verify-email", json={"token": token})).status_code == 200
        login = await a.post(
            "/api/v1/auth/login", json={"email": "p0@example.com", "password": TEST_PASSWORD}
        )
        assert login.status_code == 200
        pair = login.json()
        auth = {"Authorization": f"Bearer {pair['access_token']}"}
        assert (await b.get("/api/v1/users/me", headers=auth)).status_code == 200

        # Logout through A: the access token fails on B at once.
        logout = await a.post(
            "/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}, headers=auth
        )
        assert logout.status_code == 204
        assert (await b.get("/api/v1/users/me", headers=auth)).status_code == 401

        # Failed logins through A and B count toward one account throttle (login_account = 6),
        # from a client that never signed in to the account (not a known device).
        results = []
        for i in range(10):
            client = a if i % 2 == 0 else b
            response = await client.post(
                "/api/v1/auth/login",
                json={"email": "p0@example.com", "password": f"wrong guess {i:02d} xx"},
                headers={"User-Agent": "guesser/1.0"},
            )
            results.append(response.status_code)
        assert results.count(401) == 5  # one of the 6 went to the successful login above
        assert results[5:] == [429] * 5, results
        # The pair that signed in through A is a known device on B too: the owner still gets in.
        owner = await b.post(
            "/api/v1/auth/login", json={"email": "p0@example.com", "password": TEST_PASSWORD}
        )
        assert owner.status_code == 200, owner.text


# Snapshots kept 5 s (the most allowed): only the revoke-all instant can stop them within 1 s.
@pytest.mark.parametrize("server_env", [{"AUTHGATE_ACCESS_CACHE_TTL": "5"}], ids=["cache-5s"])
async def test_revoke_all_reaches_both_processes_and_survives_a_redis_restart(
    two_servers: tuple[str, str, str, str], redis_srv: RedisServer
) -> None:
    """Tokens signed in through A and B are refused by both within 1 s of a revoke-all through
    A; Redis restarting (losing everything) afterwards brings none back; sign-ins work."""
    url_a, url_b, tmp, db_url = two_servers
    settings = make_settings(database_url=db_url, keys_dir=Path(tmp) / "keys")
    runtime = Runtime.build(settings, with_dispatcher=False)
    try:
        factory = Factory(runtime)
        admin = await factory.user("admin@example.com", password=TEST_PASSWORD, is_superuser=True)
        users = [await factory.user(f"u{i}@example.com", password=TEST_PASSWORD) for i in (1, 2)]
    finally:
        await runtime.close()

    async with httpx.AsyncClient(base_url=url_a) as a, httpx.AsyncClient(base_url=url_b) as b:

        async def login(client: httpx.AsyncClient, email: str) -> str:
            response = await client.post(
                "/api/v1/auth/login", json={"email": email, "password": TEST_PASSWORD}
            )
            assert response.status_code == 200, response.text
            return str(response.json()["access_token"])

        tokens = [
            await login(a, admin.email),
            await login(a, users[0].email),
            await login(b, users[1].email),
        ]

        async def statuses() -> list[int]:
            return [
                (await client.get("/api/v1/users/me", headers=_bearer(token))).status_code
                for client in (a, b)
                for token in tokens
            ]

        assert await statuses() == [200] * 6  # every process has a snapshot of every session
        revoke = await a.post("/api/v1/admin/sessions/revoke-all", headers=_bearer(tokens[0]))
        assert revoke.status_code == 204, revoke.text
        loop = asyncio.get_running_loop()
        revoked_at = loop.time()
        while (seen := await statuses()) != [401] * 6:
            assert loop.time() - revoked_at < 1.0, seen
            await asyncio.sleep(0.02)

        # Redis restarts empty: the revoked-session flags and the instant are gone from it. The
        # processes put the instant back from the database; no old token works again.
        redis_srv.stop()
        redis_srv.start()
        restarted = loop.time()
        while loop.time() - restarted < 2.0:
            seen = await statuses()
            assert 200 not in seen, seen
            await asyncio.sleep(0.05)
        assert await statuses() == [401] * 6
        with redis.Redis.from_url(redis_srv.url) as shared:
            assert shared.get("authgate:revoke-all:not-before") is not None

        for client in (a, b):
            fresh = await login(client, users[0].email)
            assert (await a.get("/api/v1/users/me", headers=_bearer(fresh))).status_code == 200
            assert (await b.get("/api/v1/users/me", headers=_bearer(fresh))).status_code == 200


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _token_from_logs(tmp: Path, email: str, timeout: float = 10.0) -> str:
    import re

    deadline = asyncio.get_running_loop().time() + timeout
    pattern = re.compile(
        r"To: " + re.escape(email) + r"\n.*?/verify-email\?token=(agv_[A-Za-z0-9_-]+)", re.S
    )
    while asyncio.get_running_loop().time() < deadline:
        for log in tmp.glob("server-*.log"):
            match = pattern.search(log.read_text())
            if match:
                return match.group(1)
        await asyncio.sleep(0.1)
    raise AssertionError("no verification link in the console logs")
