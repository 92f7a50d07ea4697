"""Per-request CPU of one endpoint, in-process: how the hot paths of docs/performance.md were found.

``python -m bench.inprocess refresh|login|register|passkey|webhooks [--profile]`` starts a
throwaway PostgreSQL (``tests.support.servers``), migrates it, registers and verifies one user,
and drives the ASGI app directly (no HTTP server, no load generator, no other process on the
CPU). It prints the CPU time of one request as the minimum and median of batches:

- ``refresh``: ``time.process_time`` of ``POST /auth/refresh`` (each request spends the token
  the previous one returned) and of ``SessionService.refresh`` + commit alone; the difference
  is what FastAPI and the middleware add.
- ``login``: ``time.thread_time`` of the event-loop thread for ``POST /auth/login``, so the
  Argon2 hashing (in the pool's threads) is left out.
- ``register``: ``time.process_time`` of ``POST /auth/register`` with a new address each time:
  every thread's CPU (password policy and strength scoring, Argon2, the request, the mail).
- ``passkey``: ``time.process_time`` of ``POST /auth/passkey/verify`` alone (the options call
  and the software authenticator's signature are made outside the timed part): py_webauthn's
  checks, the one indexed credential lookup, the session. ``tests/support/passkeys.py`` is the
  authenticator.
- ``password-check``: what the strength check adds to a registration's password work, as an
  A/B in one process: 16 concurrent "validate + Argon2 hash" at a time (like 16 clients
  registering), ``AUTHGATE_PASSWORD_MIN_STRENGTH`` 0 and 3 alternating, process CPU per
  registration. No database.
- ``webhooks``: ``time.process_time`` of the webhook dispatcher per delivery, with three
  endpoints served by a receiver in another process (``http.server`` on loopback answering 204,
  HTTP/1.1 keep-alive; ``--receiver-close`` answers HTTP/1.0 and closes, as ``make bench``'s did)
  against a SQLite file as ``make bench`` uses (its work, in aiosqlite's thread, is counted;
  ``--db postgres`` for PostgreSQL), logging at
  INFO as ``serve`` does (to /dev/null). Two loads: *backlog*, 50 events (150 deliveries)
  written in one transaction, then drained (6 batches); *trickle*, 60 events one every 30 ms
  (≈ 33 registrations/s, what ``BENCH_WEBHOOK_ENDPOINTS=3 make bench`` sustained) with the
  dispatcher running, minus the same trickle with it stopped (the writes alone, also reported
  per event), 3 pairs. The trickle is what registrations cost: the dispatcher wakes after each
  commit.

CPU per request is far steadier on a shared machine than requests per second, and leaves the
database's own CPU out. ``--profile`` adds a ``cProfile`` (timer: the thread's CPU time) of
the endpoint, sorted by cumulative time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import update
from tests.support.servers import postgres_server

from authgate.app import create_app
from authgate.config import Settings
from authgate.core.http import ClientInfo
from authgate.core.migrate import upgrade_async
from authgate.models import User
from authgate.runtime import Runtime
from bench.seed import API, PASSWORD

EMAIL = "inprocess@example.com"
BATCHES = 12


async def call(
    app: Any, path: str, payload: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[int, dict[str, Any]]:
    """One POST through the ASGI app, as uvicorn would make it."""
    body = json.dumps(payload).encode()
    inbox = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0) if inbox else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"user-agent", b"bench-inprocess"),
            *(headers or []),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    await app(scope, receive, send)
    data = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], json.loads(data) if data else {}


async def per_call_ms(
    step: Callable[[], Awaitable[None]], clock: Callable[[], float], batch: int
) -> list[float]:
    timings = []
    for _ in range(BATCHES):
        started = clock()
        for _ in range(batch):
            await step()
        timings.append((clock() - started) / batch * 1000)
    return timings


def report(label: str, timings: list[float]) -> None:
    print(f"{label:<44} min {min(timings):6.3f} ms   median {statistics.median(timings):6.3f} ms")


async def run(endpoint: str, profile: bool, database_url: str, workdir: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        env="development",
        database_url=database_url,
        keys_dir=workdir / "keys",
        rate_limits_enabled=False,
        email_backend="console",
        log_level="WARNING",
    )
    await upgrade_async(settings)
    runtime = Runtime.build(settings)
    await runtime.start()
    app = create_app(settings, runtime=runtime)
    app.state.runtime = runtime
    try:
        status, _ = await call(app, f"{API}/auth/register", {"email": EMAIL, "password": PASSWORD})
        assert status == 202, status
        async with runtime.sessionmaker() as db:
            await db.execute(update(User).values(email_verified=True))
            await db.commit()
        credentials = {"email": EMAIL, "password": PASSWORD}
        status, pair = await call(app, f"{API}/auth/login", credentials)
        assert status == 200, pair
        token = str(pair["refresh_token"])

        async def http_refresh() -> None:
            nonlocal token
            status, pair = await call(app, f"{API}/auth/refresh", {"refresh_token": token})
            assert status == 200, pair
            token = str(pair["refresh_token"])

        async def service_refresh() -> None:
            nonlocal token
            async with runtime.sessionmaker() as db:
                issued = await runtime.sessions.refresh(db, token, client)
                await db.commit()
            token = issued.refresh_token

        async def http_login() -> None:
            status, pair = await call(app, f"{API}/auth/login", credentials)
            assert status == 200, pair

        registered = 0

        async def http_register() -> None:
            nonlocal registered
            registered += 1
            payload = {"email": f"register{registered}@example.com", "password": PASSWORD}
            status, body = await call(app, f"{API}/auth/register", payload)
            assert status == 202, body

        client = ClientInfo(ip_address="127.0.0.1", user_agent="bench-inprocess")
        if endpoint == "passkey":
            from tests.support.passkeys import SoftAuthenticator

            authenticator = SoftAuthenticator()
            bearer = [(b"authorization", f"Bearer {pair['access_token']}".encode())]
            path = f"{API}/users/me/passkeys"
            status, options = await call(app, f"{path}/options", {}, bearer)
            assert status == 200, options
            credential = authenticator.create(options)
            status, body = await call(app, path, {"credential": credential}, bearer)
            assert status == 201, body

            async def passkey_sign_in(clock: Callable[[], float] = time.process_time) -> float:
                status, body = await call(app, f"{API}/auth/passkey/options", {})
                assert status == 200, body
                answer = {"flow_token": body["flow_token"]}
                answer["credential"] = authenticator.get(body["options"])
                started = clock()
                status, body = await call(app, f"{API}/auth/passkey/verify", answer)
                spent = clock() - started
                assert status == 200, body
                return spent

            for _ in range(20):
                await passkey_sign_in()
            timings = []
            for _ in range(BATCHES):
                spent = [await passkey_sign_in() for _ in range(30)]
                timings.append(sum(spent) / len(spent) * 1000)
            report("POST /auth/passkey/verify, process CPU", timings)

            async def target() -> None:
                await passkey_sign_in()

            batch = 30
        elif endpoint == "register":
            # Every thread's CPU: the password check, the Argon2 hash, the request, the mail.
            target, clock, batch = http_register, time.process_time, 20
            for _ in range(10):
                await http_register()
            report("POST /auth/register, process CPU", await per_call_ms(target, clock, batch))
        elif endpoint == "refresh":
            target, clock, batch = http_refresh, time.process_time, 150
            for _ in range(200):
                await http_refresh()  # warm statement caches
            report("POST /auth/refresh, process CPU", await per_call_ms(target, clock, batch))
            report(
                "SessionService.refresh + commit, process CPU",
                await per_call_ms(service_refresh, clock, batch),
            )
        else:
            target, clock, batch = http_login, time.thread_time, 30
            for _ in range(20):
                await http_login()
            report(
                "POST /auth/login, event-loop thread CPU", await per_call_ms(target, clock, batch)
            )
        if profile:
            profiler = cProfile.Profile(time.thread_time)
            profiler.enable()
            for _ in range(batch):
                await target()
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(60)
    finally:
        await runtime.close()


async def password_check_ab(rounds: int = 6, batches: int = 10, concurrency: int = 16) -> None:
    from authgate.core.security.passwords import PasswordService

    async def register_password(service: PasswordService, n: int) -> None:
        address = f"register{n}@example.com"
        password = await service.validate(PASSWORD, context=[address, address.split("@")[0]])
        await service.hash(password)

    results: dict[int, list[float]] = {0: [], 3: []}
    serial = 0
    for _ in range(rounds):
        for strength in results:
            service = PasswordService(Settings(_env_file=None, password_min_strength=strength))
            try:
                await asyncio.gather(*(register_password(service, i) for i in range(concurrency)))
                started = time.process_time()
                for _ in range(batches):
                    serial += concurrency
                    await asyncio.gather(
                        *(register_password(service, serial + i) for i in range(concurrency))
                    )
                elapsed = time.process_time() - started
                results[strength].append(elapsed / (batches * concurrency) * 1000)
            finally:
                await service.close()
    off, on = statistics.median(results[0]), statistics.median(results[3])
    report("validate + hash, strength check off", results[0])
    report("validate + hash, strength check on (3)", results[3])
    print(f"the check adds {on - off:.2f} ms per registration (medians of {rounds} rounds)")


RECEIVER = """
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = sys.argv[1]
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


async def webhooks_run(
    profile: bool, database_url: str, workdir: Path, *, close: bool, endpoints: int = 3
) -> None:
    import base64
    import logging
    import os
    import subprocess
    import sys
    import uuid

    from authgate.core.logging import configure_logging
    from authgate.core.metrics import WEBHOOK_DELIVERED
    from authgate.webhooks import WebhookEvent, user_data
    from authgate.webhooks.dispatcher import WebhookDispatcher

    protocol = "HTTP/1.0" if close else "HTTP/1.1"
    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, protocol], stdout=subprocess.PIPE, text=True
    )
    assert receiver.stdout is not None
    port = int(receiver.stdout.readline())
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        env="development",
        database_url=database_url,
        keys_dir=workdir / "keys",
        rate_limits_enabled=False,
        email_backend="console",
        email_dispatcher_enabled=False,  # the bench's own dispatcher, started and stopped below
        email_poll_interval=60.0,  # woken by notify() only, as after a request's commit
        log_level="INFO",
        webhooks=[
            {"url": f"http://127.0.0.1:{port}/hook/{n}", "secret": secret} for n in range(endpoints)
        ],
    )
    configure_logging(settings)
    devnull = open(os.devnull, "w")  # noqa: SIM115 (closed below)
    for handler in logging.getLogger("authgate").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)
    await upgrade_async(settings)
    runtime = Runtime.build(settings)
    await runtime.start()
    counters = [WEBHOOK_DELIVERED.labels(endpoint=e.name) for e in runtime.webhooks.endpoints]

    def delivered() -> float:
        # The counters themselves: a registry collection reads /proc (about 1 ms).
        return float(sum(counter._value.get() for counter in counters))

    async def emit(count: int) -> None:
        async with runtime.sessionmaker() as db, db.begin():
            for _ in range(count):
                data = user_data(uuid.uuid4(), email="hook@example.com")
                await runtime.webhooks.emit(db, WebhookEvent.user_created, data)

    async def drained(target: float) -> None:
        while delivered() < target:
            await asyncio.sleep(0.005)

    dispatcher = WebhookDispatcher(settings, runtime.sessionmaker, runtime.webhooks)

    async def backlog(events: int = 50) -> float:
        await emit(events)
        target = delivered() + events * endpoints
        started = time.process_time()
        dispatcher.notify()
        await drained(target)
        return (time.process_time() - started) / (events * endpoints) * 1000

    async def trickle(events: int = 60, interval: float = 0.03) -> float:
        for _ in range(events):
            await emit(1)
            dispatcher.notify()
            await asyncio.sleep(interval)
        return 0.0

    try:
        await dispatcher.start()
        for _ in range(2):
            await backlog()  # warm statement caches and connections
        timings = [await backlog() for _ in range(BATCHES // 2)]
        report("webhook delivery (backlog), process CPU", timings)
        trickled: list[float] = []
        writes: list[float] = []
        for _ in range(BATCHES // 4):
            target = delivered() + 60 * endpoints
            started = time.process_time()
            await trickle()
            await drained(target)
            with_dispatcher = time.process_time() - started
            await dispatcher.stop()
            started = time.process_time()
            await trickle()
            alone = time.process_time() - started
            await dispatcher.start()
            dispatcher.notify()
            await drained(target + 60 * endpoints)
            trickled.append((with_dispatcher - alone) / (60 * endpoints) * 1000)
            writes.append(alone / 60 * 1000)
        report("webhook delivery (trickle), process CPU", trickled)
        # For scale: one event written for every endpoint in its own transaction (a request
        # writes it in its own, so there it costs less than this).
        report("trickle writes alone, per event, process CPU", writes)
        if profile:
            profiler = cProfile.Profile(time.thread_time)
            profiler.enable()
            for _ in range(3):
                await backlog()
            profiler.disable()
            print("-- backlog")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(60)
            profiler = cProfile.Profile(time.thread_time)
            profiler.enable()
            target = delivered() + 60 * endpoints
            await trickle()
            await drained(target)
            profiler.disable()
            print("-- trickle (the writes included)")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(60)
    finally:
        await dispatcher.stop()
        await runtime.close()
        receiver.terminate()
        receiver.wait()
        devnull.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "endpoint",
        choices=["refresh", "login", "register", "passkey", "password-check", "webhooks"],
    )
    parser.add_argument("--profile", action="store_true", help="add a cProfile of the endpoint")
    parser.add_argument(
        "--db", choices=["sqlite", "postgres"], default="sqlite", help="webhooks: the database"
    )
    parser.add_argument(
        "--receiver-close",
        action="store_true",
        help="webhooks: the receiver answers HTTP/1.0 and closes each connection",
    )
    args = parser.parse_args()
    if args.endpoint == "password-check":
        asyncio.run(password_check_ab())
        return
    if args.endpoint == "webhooks" and args.db == "sqlite":
        with tempfile.TemporaryDirectory() as workdir:
            url = f"sqlite+aiosqlite:///{workdir}/bench.db"
            asyncio.run(webhooks_run(args.profile, url, Path(workdir), close=args.receiver_close))
        return
    if args.endpoint == "webhooks":
        with postgres_server() as pg, tempfile.TemporaryDirectory() as workdir:
            url = pg.createdb("inprocess")
            asyncio.run(webhooks_run(args.profile, url, Path(workdir), close=args.receiver_close))
        return
    with postgres_server() as pg, tempfile.TemporaryDirectory() as workdir:
        asyncio.run(run(args.endpoint, args.profile, pg.createdb("inprocess"), Path(workdir)))


if __name__ == "__main__":
    main()
