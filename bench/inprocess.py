"""Per-request CPU of one endpoint, in-process: how the hot paths of docs/performance.md were found.

``python -m bench.inprocess refresh|login|register|passkey|health|users-me|bare|webhooks
[--profile]`` starts a throwaway PostgreSQL (``tests.support.servers``), migrates it, registers
and verifies one user, and drives the ASGI app directly (no HTTP server, no load generator, no
other process on the CPU). It prints the CPU time of one request as the minimum and median of
batches:

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
- ``health``: ``time.process_time`` of ``GET /health/live`` (no database, no store: the floor
  every request pays, the middleware and FastAPI), in batches alternating with the ``bare``
  reference, and the ratio of the two.
- ``users-me``: ``time.process_time`` of ``GET /api/v1/users/me`` with one access token (the
  read-only hot path: the verified-token LRU, the revocation list, the 1 s principal snapshot),
  alternating with ``bare`` likewise; then the wall-clock latency of the same request with 32
  concurrent callers on the loop (p50, p99 and their ratio: ``--concurrency``), which is
  where the principal cache's refills and any stall of the loop show.
- ``bare``: ``GET /`` of ``bench/bare_app.py`` (FastAPI with one route returning a small JSON,
  the ceiling the wrk bench measures against) alone.
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
import gc
import json
import os
import pstats
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import update
from tests.support.servers import postgres_server

import authgate.app
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
    app: Any,
    path: str,
    payload: dict[str, Any] | None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, dict[str, Any]]:
    """One request through the ASGI app, as uvicorn would make it: a POST of ``payload`` as
    JSON, or a GET when ``payload`` is None."""
    status, _, body = await call_with_headers(app, path, payload, headers)
    return status, body


async def call_with_headers(
    app: Any,
    path: str,
    payload: dict[str, Any] | None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, list[tuple[bytes, bytes]], dict[str, Any]]:
    """``call``, with the response headers too."""
    body = b"" if payload is None else json.dumps(payload).encode()
    entity = (
        []
        if payload is None
        else [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    )
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
        "method": "GET" if payload is None else "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            *entity,
            (b"user-agent", b"bench-inprocess"),
            *(headers or []),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    await app(scope, receive, send)
    data = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], sent[0]["headers"], json.loads(data) if data else {}


async def per_call_ms(
    step: Callable[[], Awaitable[None]],
    clock: Callable[[], float],
    batch: int,
    batches: int = BATCHES,
) -> list[float]:
    timings = []
    for _ in range(batches):
        started = clock()
        for _ in range(batch):
            await step()
        timings.append((clock() - started) / batch * 1000)
    return timings


def report(label: str, timings: list[float]) -> None:
    print(f"{label:<44} min {min(timings):6.3f} ms   median {statistics.median(timings):6.3f} ms")


async def against_bare(
    label: str, step: Callable[[], Awaitable[None]], bare: Callable[[], Awaitable[None]], batch: int
) -> None:
    """CPU per request of ``step`` and of the bare app, batches alternating (a neighbour's load
    falls on both alike), and bare ÷ authgate: the share of the bare app's throughput that
    authgate would reach on CPU alone (the wrk bench's "÷ bare")."""
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(BATCHES):
        ours += await per_call_ms(step, time.process_time, batch, batches=1)
        theirs += await per_call_ms(bare, time.process_time, batch, batches=1)
    report(f"{label}, process CPU", ours)
    report("bare FastAPI GET /, process CPU", theirs)
    print(
        f"{'bare ÷ authgate CPU (≈ authgate rps ÷ bare)':<44} "
        f"min {min(theirs) / min(ours):6.3f}      median "
        f"{statistics.median(theirs) / statistics.median(ours):6.3f}"
    )


async def latency_under_load(
    label: str, step: Callable[[], Awaitable[None]], concurrency: int, per_caller: int
) -> None:
    """Wall-clock latency of ``step`` with ``concurrency`` callers looping on one event loop, as
    a server's connections would: every request also waits for the others' turns, for the
    principal cache's refills and for whatever stalls the loop."""
    latencies: list[float] = []

    async def caller() -> None:
        for _ in range(per_caller):
            started = time.perf_counter()
            # The request arrives as an event the loop serves in its turn, behind the others
            # (a request answered from memory would otherwise never wait for anything).
            await asyncio.sleep(0)
            await step()
            latencies.append(time.perf_counter() - started)

    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    began = 0.0

    def on_gc(phase: str, info: dict[str, int]) -> None:
        nonlocal began
        if phase == "start":
            began = time.perf_counter()
        else:
            pauses[info["generation"]].append(time.perf_counter() - began)

    gc.callbacks.append(on_gc)
    try:
        await asyncio.gather(*(caller() for _ in range(concurrency)))
    finally:
        gc.callbacks.remove(on_gc)
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(
        f"{label} x{concurrency}: {len(latencies)} requests, "
        f"p50 {p50:.2f} ms  p99 {p99:.2f} ms  p99/p50 {p99 / p50:.2f}"
    )
    # Whether the collector's pauses could explain the tail (tune it only if they do).
    print(
        "  gc pauses: "
        + ", ".join(
            f"gen{g} {len(p)}x max {max(p, default=0) * 1000:.2f} ms" for g, p in pauses.items()
        )
    )


def bare_step() -> Callable[[], Awaitable[None]]:
    """``GET /`` of the bare FastAPI app (``bench/bare_app.py``)."""
    from bench.bare_app import create_app as create_bare_app

    bare = create_bare_app()

    async def step() -> None:
        status, body = await call(bare, "/", None)
        assert status == 200, body

    return step


async def run_bare(profile: bool) -> None:
    target, clock, batch = bare_step(), time.process_time, 500
    for _ in range(200):
        await target()
    report("bare FastAPI GET /, process CPU", await per_call_ms(target, clock, batch))
    if profile:
        await print_profile(target, batch)


async def print_profile(target: Callable[[], Awaitable[None]], batch: int) -> None:
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    for _ in range(batch):
        await target()
    profiler.disable()
    pstats.Stats(profiler).sort_stats(
        os.environ.get("BENCH_PROFILE_SORT", "cumulative")
    ).print_stats(60)


def bench_settings(database_url: str, workdir: Path, **overrides: Any) -> Settings:
    """The settings of an in-process run: development, no rate limits, console mail."""
    values: dict[str, Any] = {
        "env": "development",
        "database_url": database_url,
        "keys_dir": workdir / "keys",
        "rate_limits_enabled": False,
        "email_backend": "console",
        "log_level": "WARNING",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def run(
    endpoint: str, profile: bool, database_url: str, workdir: Path, concurrency: int
) -> None:
    settings = bench_settings(database_url, workdir)
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

        cookie_token = ""

        async def http_refresh_cookie() -> None:
            nonlocal cookie_token
            headers = [
                (b"origin", b"http://localhost:5173"),
                (b"cookie", f"authgate_refresh={cookie_token}".encode()),
            ]
            status, answer, pair = await call_with_headers(app, f"{API}/auth/refresh", {}, headers)
            assert status == 200, pair
            cookie = next(value for name, value in answer if name == b"set-cookie").decode()
            cookie_token = cookie.split(";", 1)[0].split("=", 1)[1]

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
        # What the app's lifespan does once started (the bench drives the app without it);
        # absent from trees before it, for A/B runs.
        settle_heap: Callable[[], None] = getattr(authgate.app, "settle_heap", gc.collect)
        if os.environ.get("BENCH_GC_PROBE"):
            # What a full collection costs with the startup heap, and after settle_heap().
            for label in ("full collection", "again", "after settle_heap()"):
                if label.startswith("after"):
                    settle_heap()
                started = time.perf_counter()
                gc.collect()
                elapsed = (time.perf_counter() - started) * 1000
                print(f"{label}: {elapsed:.1f} ms, {len(gc.get_objects())} tracked objects")
        settle_heap()
        bare = bare_step()
        for _ in range(200):
            await bare()
        if endpoint == "health":

            async def health() -> None:
                status, body = await call(app, "/health/live", None)
                assert status == 200, body

            target, batch = health, 500
            for _ in range(200):
                await health()
            await against_bare("GET /health/live", health, bare, batch)
        elif endpoint == "users-me":
            bearer = [(b"authorization", f"Bearer {pair['access_token']}".encode())]

            async def users_me() -> None:
                status, body = await call(app, f"{API}/users/me", None, bearer)
                assert status == 200, body

            target, batch = users_me, 300
            for _ in range(200):
                await users_me()
            await against_bare("GET /users/me", users_me, bare, batch)
            # Long enough for the 1 s principal snapshot to expire a few times under load.
            await latency_under_load("GET /users/me wall latency", users_me, concurrency, 500)
        elif endpoint == "passkey":
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
            # The cookie transport on a second session, alternated with the body transport.
            status, pair = await call(app, f"{API}/auth/login", credentials)
            assert status == 200, pair
            cookie_token = str(pair["refresh_token"])
            for _ in range(50):
                await http_refresh_cookie()
            body_ms: list[float] = []
            cookie_ms: list[float] = []
            for _ in range(4):
                body_ms += await per_call_ms(target, clock, batch // 3)
                cookie_ms += await per_call_ms(http_refresh_cookie, clock, batch // 3)
            report("POST /auth/refresh (body), alternating", body_ms)
            report("POST /auth/refresh (cookie + Origin), alternating", cookie_ms)
            ratio = statistics.median(cookie_ms) / statistics.median(body_ms)
            print(f"cookie ÷ body CPU (medians): {ratio:.3f}")
        else:
            target, clock, batch = http_login, time.thread_time, 30
            for _ in range(20):
                await http_login()
            report(
                "POST /auth/login, event-loop thread CPU", await per_call_ms(target, clock, batch)
            )
        if profile:
            await print_profile(target, batch)
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
    settings = bench_settings(
        database_url,
        workdir,
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
        choices=[
            "refresh",
            "login",
            "register",
            "passkey",
            "health",
            "users-me",
            "bare",
            "password-check",
            "webhooks",
        ],
    )
    parser.add_argument("--profile", action="store_true", help="add a cProfile of the endpoint")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="callers at once for users-me's latency"
    )
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
    if args.endpoint == "bare":
        asyncio.run(run_bare(args.profile))
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
        database_url = pg.createdb("inprocess")
        asyncio.run(run(args.endpoint, args.profile, database_url, Path(workdir), args.concurrency))


if __name__ == "__main__":
    main()
