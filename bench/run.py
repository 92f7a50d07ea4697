"""The benchmark suite: ``make bench`` (``python -m bench.run``).

Starts authgate (``authgate serve --workers 1``) and a bare FastAPI app the same way, on free
loopback ports, against a throwaway database (SQLite file by default, ``BENCH_DB=postgres`` for a
throwaway PostgreSQL), drives them with wrk and prints one table plus
``bench/results/latest.json``. See docs/performance.md for how to read it.

Environment: ``BENCH_DB`` (sqlite|postgres), ``BENCH_DURATION`` (seconds per scenario, 8),
``BENCH_WRK_THREADS`` (1), ``BENCH_CONNECTIONS`` (32), ``BENCH_STORM_CONNECTIONS`` (64),
``BENCH_USERS`` (4), ``BENCH_MFA_CHALLENGES`` (4000), ``BENCH_PASSKEY_ASSERTIONS`` (3000),
``BENCH_WEBHOOK_ENDPOINTS`` (0), ``BENCH_DELIVERY`` (serve|worker), ``BENCH_PROBE_RATE`` (requests/s of the health probe, 20),
``BENCH_SCENARIOS`` (comma-separated scenario names to run, e.g. ``register`` or
``bare,health_live,users_me``; all of them when unset; ``login_storm`` is one of them).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tests.support.servers import free_port, postgres_server, wait_for_port

from bench import seed

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "lua"
RESULTS = ROOT / "bench" / "results"
API = "/api/v1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

#: Targets of issue 7: (key in "derived", comparison, threshold, label).
TARGETS: list[tuple[str, str, float, str]] = [
    ("me_vs_bare", ">=", 0.40, "GET /users/me rps / bare FastAPI rps"),
    ("health_vs_bare", ">=", 0.85, "GET /health/live rps / bare FastAPI rps"),
    ("me_p99_vs_p50", "<=", 3.0, "GET /users/me p99 / p50"),
    ("login_efficiency", ">=", 0.70, "login rps / (cores / hash time)"),
    ("refresh_rps", ">=", 300.0, "refresh rps (target set for PostgreSQL)"),
    ("health_p99_storm_ms", "<=", 25.0, "health p99 during login storm (ms)"),
    ("rss_storm_mb", "<", 300.0, "worker RSS under login storm (MB)"),
    ("errors_total", "<=", 0.0, "non-2xx + socket errors + failed probes"),
]


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass
class Config:
    db: str = field(default_factory=lambda: os.environ.get("BENCH_DB", "sqlite").lower())
    duration: float = field(default_factory=lambda: float(os.environ.get("BENCH_DURATION", "8")))
    threads: int = field(default_factory=lambda: env_int("BENCH_WRK_THREADS", 1))
    connections: int = field(default_factory=lambda: env_int("BENCH_CONNECTIONS", 32))
    storm_connections: int = field(default_factory=lambda: env_int("BENCH_STORM_CONNECTIONS", 64))
    users: int = field(default_factory=lambda: env_int("BENCH_USERS", 4))
    #: Pending second-factor sign-ins made for the mfa_verify scenario (one user each).
    mfa_challenges: int = field(default_factory=lambda: env_int("BENCH_MFA_CHALLENGES", 4000))
    #: Signed passkey assertions made for the passkey_verify scenario (one flow each).
    passkey_assertions: int = field(
        default_factory=lambda: env_int("BENCH_PASSKEY_ASSERTIONS", 3000)
    )
    #: The scenarios to run (``BENCH_SCENARIOS``); None: all.
    only: frozenset[str] | None = field(
        default_factory=lambda: (
            frozenset(n.strip() for n in os.environ["BENCH_SCENARIOS"].split(",") if n.strip())
            if os.environ.get("BENCH_SCENARIOS")
            else None
        )
    )
    probe_rate: float = field(
        default_factory=lambda: float(os.environ.get("BENCH_PROBE_RATE", "20"))
    )
    #: Webhook endpoints configured on the server (a local receiver answering 204): every
    #: change then writes one outbox row per endpoint and the process delivers them.
    webhook_endpoints: int = field(default_factory=lambda: env_int("BENCH_WEBHOOK_ENDPOINTS", 0))
    #: Where mail and webhooks are delivered: "serve" (its in-process dispatcher, the default)
    #: or "worker" (the server without its dispatcher, and ``nice -n 10 authgate worker`` next
    #: to it: background work that yields the CPU to requests, as a separate worker would).
    delivery: str = field(default_factory=lambda: os.environ.get("BENCH_DELIVERY", "serve"))
    #: Extra AUTHGATE_* variables of the authgate process (set by the run, e.g. AUTHGATE_WEBHOOKS).
    extra_env: dict[str, str] = field(default_factory=dict)


# -- wrk -------------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        print(
            "wrk is not installed and apt-get is unavailable: install wrk (https://github.com/wg/wrk)"
        )
        raise SystemExit(1)
    print("installing wrk with apt-get ...", flush=True)
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    install = [*prefix, apt, "install", "-y", "-q", "wrk"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT, "check": False}
    if subprocess.run(install, **quiet).returncode != 0:  # type: ignore[call-overload]
        subprocess.run([*prefix, apt, "update", "-q"], **quiet)  # type: ignore[call-overload]
        subprocess.run(install, **quiet)  # type: ignore[call-overload]
    found = shutil.which("wrk")
    if found is None:
        print("could not install wrk with apt-get (as root: apt-get install -y wrk)")
        raise SystemExit(1)
    return found


# -- processes -------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    workers: int = 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serving_pid(self) -> int:
        """The process that serves requests: uvicorn with one worker serves in-process; with
        more it forks, then the first child python process is the one that serves."""
        children = descendants(self.process.pid)
        return children[0] if children else self.process.pid

    def cpu_pids(self) -> list[int]:
        """Whose CPU a scenario counts: the serving process, or every process of the server
        when it runs several workers."""
        if self.workers == 1:
            return [self.serving_pid()]
        return [self.process.pid, *descendants(self.process.pid)]


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    found += [int(child), *descendants(int(child))]
    return found


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores, from the first line of /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_server(
    name: str, argv: list[str], env: dict[str, str], port: int, tmp: Path, *, listens: bool = True
) -> Server:
    """Start ``argv`` logging to ``<tmp>/<name>.log``; wait for ``port`` when it ``listens``."""
    log = tmp / f"{name}.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            argv,
            env=env,
            cwd=tmp,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, process, port, log)
    if not listens:
        return server
    try:
        wait_for_port(port, timeout=60)
    except RuntimeError:
        stop(server.process)
        print(log.read_text()[-3000:])
        raise
    return server


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


@contextlib.contextmanager
def database(cfg: Config, tmp: Path) -> Iterator[str]:
    if cfg.db == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp / 'authgate.db'}"
    elif cfg.db in {"postgres", "postgresql"}:
        with postgres_server() as pg:
            yield pg.createdb("authgate_bench")
    else:
        raise SystemExit(f"BENCH_DB must be sqlite or postgres, not {cfg.db!r}")


def authgate_overrides() -> dict[str, str]:
    """AUTHGATE_* variables of the caller, passed through to try a setting
    (``AUTHGATE_HASH_WORKERS=1 make bench``); the ones the bench sets itself win."""
    return {k: v for k, v in os.environ.items() if k.startswith("AUTHGATE_")}


#: The introspection client of the ``introspect`` scenario (HTTP Basic ``user:password``).
INTROSPECTION_CLIENT = "bench-service:" + "s" * 40


def authgate_env(
    tmp: Path, database_url: str, port: int, extra: dict[str, str] | None = None
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra or {})
    env.update(
        AUTHGATE_ENV="development",
        AUTHGATE_DATABASE_URL=database_url,
        AUTHGATE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        AUTHGATE_KEYS_DIR=str(tmp / "keys"),
        AUTHGATE_RATE_LIMITS_ENABLED="false",
        AUTHGATE_EMAIL_BACKEND="console",
        AUTHGATE_INTROSPECTION_CLIENTS=INTROSPECTION_CLIENT,
        PYTHONPATH=str(ROOT),
    )
    return env


# -- measuring -------------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    path: str
    script: str
    connections: int
    env: dict[str, str] = field(default_factory=dict)


def run_wrk(
    wrk: str, cfg: Config, server: Server, scenario: Scenario, duration: float | None = None
) -> dict[str, Any]:
    """One wrk run; the server's CPU% (of one core) over it and its RSS at the end."""
    duration = duration or cfg.duration
    env = {
        **os.environ,
        "BENCH_LUA_DIR": str(LUA),
        "BENCH_WRK_THREADS": str(cfg.threads),
        **scenario.env,
    }
    argv = [
        wrk,
        f"-t{cfg.threads}",
        f"-c{scenario.connections}",
        f"-d{duration:.0f}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA / scenario.script),
        server.url + scenario.path,
    ]
    pid, pids = server.serving_pid(), server.cpu_pids()
    ticks, machine, started = sum(map(cpu_ticks, pids)), machine_ticks(), time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 60)
    wall = time.monotonic() - started
    cpu_seconds = (sum(map(cpu_ticks, pids)) - ticks) / CLK_TCK
    cpu = cpu_seconds / wall * 100
    busy, total = (after - before for after, before in zip(machine_ticks(), machine, strict=True))
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("BENCHJSON "))
    errors = raw["errors"]
    seconds = raw["duration_us"] / 1e6
    lat = raw["latency_us"]
    return {
        "scenario": scenario.name,
        "path": scenario.path,
        "connections": scenario.connections,
        "threads": cfg.threads,
        "duration_s": round(seconds, 2),
        "requests": raw["requests"],
        "rps": round(raw["requests"] / seconds, 1),
        "p50_ms": round(lat["p50"] / 1000, 2),
        "p90_ms": round(lat["p90"] / 1000, 2),
        "p99_ms": round(lat["p99"] / 1000, 2),
        "max_ms": round(lat["max"] / 1000, 2),
        "non_2xx": errors["status"],
        "socket_errors": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        "socket_error_detail": {k: v for k, v in errors.items() if k != "status"},
        "server_cpu_pct": round(cpu, 1),
        # The serving process's CPU per request (all its threads; the database's own too on
        # SQLite): steadier than rps on a shared machine, and what a CPU-bound rate divides.
        "server_cpu_ms_per_request": round(cpu_seconds * 1000 / max(raw["requests"], 1), 3),
        "server_rss_mb": round(rss_mb(pid), 1),
        # Everything on the machine (wrk, the database, other users): near 100 = CPU-starved.
        "machine_busy_pct": round(busy / max(total, 1) * 100, 1),
    }


def probe_health(url: str, rate: float, seconds: float) -> tuple[list[float], int]:
    """Latencies (ms) of GET /health/live at ``rate`` per second on one keep-alive connection,
    and how many probes failed (an error or a status other than 200)."""
    latencies: list[float] = []
    failures = 0
    interval = 1 / rate
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=10) as client:
        next_at = time.monotonic()
        while next_at < deadline:
            started = time.perf_counter()
            try:
                response = client.get("/health/live")
            except httpx.HTTPError:
                failures += 1
            else:
                if response.status_code == 200:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    failures += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    return latencies, failures


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def probe_summary(probe: tuple[list[float], int]) -> dict[str, Any]:
    latencies, failures = probe
    return {
        "samples": len(latencies),
        "failures": failures,
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2) if latencies else None,
    }


def login_storm(
    wrk: str, cfg: Config, server: Server, scenario: Scenario
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """wrk on /auth/login with many connections; meanwhile a slow health probe and an RSS
    sampler. Returns (wrk figures, probe figures, peak RSS in MB)."""
    pid = server.serving_pid()
    peak = [rss_mb(pid)]
    probe: list[tuple[list[float], int]] = []
    stop_sampling = threading.Event()
    settle = min(1.5, cfg.duration / 4)
    probe_seconds = max(1.0, cfg.duration - settle - 0.5)

    def sample_rss() -> None:
        while not stop_sampling.wait(0.2):
            with contextlib.suppress(OSError):
                peak[0] = max(peak[0], rss_mb(pid))

    def run_probe() -> None:
        time.sleep(settle)  # let the storm fill the hashing queue first
        probe.append(probe_health(server.url, cfg.probe_rate, probe_seconds))

    threads = [threading.Thread(target=sample_rss), threading.Thread(target=run_probe)]
    for thread in threads:
        thread.start()
    try:
        figures = run_wrk(wrk, cfg, server, scenario)
    finally:
        stop_sampling.set()
        for thread in threads:
            thread.join()
    return figures, probe_summary(probe[0] if probe else ([], 0)), peak[0]


def argon2_hash_timings(rounds: int = 9) -> list[float]:
    """Wall times of ``rounds`` sequential ``PasswordService.hash`` calls (default settings)."""
    from authgate.config import Settings
    from authgate.core.security.passwords import PasswordService

    async def measure() -> list[float]:
        service = PasswordService(Settings(_env_file=None))  # type: ignore[call-arg]
        try:
            await service.hash(seed.PASSWORD)  # warm the pool thread
            timings = []
            for _ in range(rounds):
                started = time.perf_counter()
                await service.hash(seed.PASSWORD)
                timings.append(time.perf_counter() - started)
            return timings
        finally:
            await service.close()

    return asyncio.run(measure())


def argon2_parallel_rate(threads: int, seconds: float = 2.0) -> float:
    """Hashes per second with ``threads`` threads hashing at once: what this machine's cores
    actually deliver together (memory bandwidth and neighbours included), for the diagnosis
    of the login figure; the target itself uses ``cores / hash time``."""
    from authgate.config import Settings
    from authgate.core.security.passwords import PasswordService

    async def measure() -> float:
        service = PasswordService(Settings(_env_file=None, hash_workers=threads))  # type: ignore[call-arg]
        try:
            await asyncio.gather(*(service.hash(seed.PASSWORD) for _ in range(threads)))
            done = 0
            started = time.perf_counter()
            deadline = started + seconds

            async def worker() -> None:
                nonlocal done
                while time.perf_counter() < deadline:
                    await service.hash(seed.PASSWORD)
                    done += 1

            await asyncio.gather(*(worker() for _ in range(threads)))
            return done / (time.perf_counter() - started)
        finally:
            await service.close()

    return asyncio.run(measure())


# -- reporting -------------------------------------------------------------------------------------


def start_profiler(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy on the serving process when BENCH_PYSPY names a py-spy binary (never installed
    into the project: ``python3 -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy``)."""
    binary = os.environ.get("BENCH_PYSPY")
    if not binary:
        return None
    argv = [
        binary,
        "record",
        "--pid",
        str(pid),
        "--duration",
        f"{seconds:.0f}",
        "--rate",
        "200",
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(out),
    ]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


#: py-spy frames read "func (/path/to/site-packages/pkg/mod.py:123)": keep "func (pkg/mod.py)".
_FRAME = re.compile(r"\((?:[^()]*/(?:site-packages|src|python3\.\d+)/)?")
_LINE = re.compile(r":\d+\)$")


def profile_summary(path: Path, top: int = 80) -> dict[str, Any]:
    """Self and inclusive shares of the event-loop thread's samples, from py-spy's collapsed
    stacks (the database driver's idle worker threads are left out)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "_run_module_as_main" not in stack or not count.isdigit():
            continue
        frames = [_LINE.sub(")", _FRAME.sub("(", frame)) for frame in stack.split(";")]
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(frame, round(n / total * 100, 1)) for frame, n in counter.most_common(top)]

    return {"samples": total, "self_pct": share(own), "inclusive_pct": share(inclusive)}


def machine_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "loadavg_at_start": os.getloadavg(),
    }


def derive(
    results: dict[str, dict[str, Any]],
    hash_timings: list[float],
    parallel_rate: float,
    probe: dict[str, Any] | None,
    rss_storm: float | None,
    cores: int,
) -> dict[str, Any]:
    """The ratios read against the targets; None where a scenario they need did not run."""

    def rps(name: str) -> float | None:
        return results[name]["rps"] if name in results else None

    def ratio(a: float | None, b: float | None, digits: int = 3) -> float | None:
        return round(a / b, digits) if a is not None and b else None

    hash_s = statistics.median(hash_timings)
    ideal_login = cores / hash_s
    me = results.get("users_me")
    return {
        "argon2_hash_ms": round(hash_s * 1000, 1),
        "argon2_hash_ms_samples": [round(t * 1000, 1) for t in hash_timings],
        "ideal_login_rps": round(ideal_login, 1),
        "login_efficiency": ratio(rps("login"), ideal_login),
        "argon2_parallel_rate": round(parallel_rate, 1),
        "login_vs_parallel_hashing": ratio(rps("login"), parallel_rate or None),
        "me_vs_bare": ratio(rps("users_me"), rps("bare")),
        "health_vs_bare": ratio(rps("health_live"), rps("bare")),
        "me_p99_vs_p50": ratio(me["p99_ms"], me["p50_ms"], 1) if me else None,
        "me_two_workers_vs_one": ratio(rps("users_me_2w"), rps("users_me")),
        "refresh_rps": rps("refresh"),
        "refresh_cookie_vs_body": ratio(rps("refresh_cookie"), rps("refresh")),
        "health_p50_storm_ms": probe["p50_ms"] if probe else None,
        "health_p99_storm_ms": probe["p99_ms"] if probe else None,
        "rss_storm_mb": round(rss_storm, 1) if rss_storm is not None else None,
        "errors_total": (probe["failures"] if probe else 0)
        + sum(r["non_2xx"] + r["socket_errors"] for r in results.values()),
    }


def verdicts(derived: dict[str, Any]) -> list[dict[str, Any]]:
    checks = {
        ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b,
        "<": lambda a, b: a < b,
    }
    return [
        {
            "target": key,
            "label": label,
            "value": derived[key],
            "wanted": f"{op} {threshold:g}",
            "pass": bool(checks[op](derived[key], threshold)),
        }
        for key, op, threshold, label in TARGETS
        if derived[key] is not None
    ]


def print_table(report: dict[str, Any]) -> None:
    head = (
        f"{'scenario':<14} {'conn':>4} {'rps':>9} {'p50 ms':>8} {'p99 ms':>8} {'non2xx':>7} "
        f"{'sockerr':>7} {'cpu %':>6} {'cpu ms/req':>10} {'rss MB':>7} {'host %':>6}"
    )
    print()
    print(
        f"authgate bench - db={report['db']} duration={report['duration_s']}s/scenario "
        f"cores={report['machine']['cores']} commit={report['machine']['commit'][:10]}"
    )
    print(head)
    print("-" * len(head))
    for row in report["scenarios"].values():
        print(
            f"{row['scenario']:<14} {row['connections']:>4} {row['rps']:>9.1f} "
            f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['non_2xx']:>7} "
            f"{row['socket_errors']:>7} {row['server_cpu_pct']:>6.0f} "
            f"{row['server_cpu_ms_per_request']:>10.3f} {row['server_rss_mb']:>7.1f} "
            f"{row['machine_busy_pct']:>6.0f}"
        )
    if report.get("webhook_endpoints"):
        print(
            f"webhooks: {report['webhook_endpoints']} endpoints, "
            f"{report['webhook_deliveries']} deliveries received during the run"
        )
    for name, probe in report["health_probe"].items():
        if probe is None:
            continue
        print(
            f"health probe ({name}): p50 {probe['p50_ms']} ms, p99 {probe['p99_ms']} ms, "
            f"max {probe['max_ms']} ms, {probe['samples']} samples, {probe['failures']} failed"
        )
    derived = report["derived"]
    print(
        f"ratios: login rps / (cores / hash time) = {derived['login_efficiency']}; "
        f"/users/me rps / bare rps = {derived['me_vs_bare']}; "
        f"/health/live rps / bare rps = {derived['health_vs_bare']}; "
        f"/users/me p99 / p50 = {derived['me_p99_vs_p50']}; "
        f"/users/me two workers / one = {derived['me_two_workers_vs_one']}; "
        f"cookie / body refresh = {derived['refresh_cookie_vs_body']}"
    )
    print(
        f"argon2 hash {derived['argon2_hash_ms']} ms -> ideal login "
        f"{derived['ideal_login_rps']} rps on {report['machine']['cores']} cores; "
        f"worker RSS idle {report['rss_idle_mb']} MB, storm peak {derived['rss_storm_mb']} MB"
    )
    print(
        f"argon2 on {report['machine']['cores']} threads at once: "
        f"{derived['argon2_parallel_rate']} hashes/s "
        f"(x{derived['argon2_parallel_rate'] * derived['argon2_hash_ms'] / 1000:.2f} of one "
        f"thread); login rps / that = {derived['login_vs_parallel_hashing']}"
    )
    print()
    for verdict in report["targets"]:
        mark = "PASS" if verdict["pass"] else "MISS"
        print(
            f"  {mark}  {verdict['label']:<42} {verdict['value']!s:>9}  (want {verdict['wanted']})"
        )
    print()
    profile = report.get("profile_users_me")
    if profile:
        which = os.environ.get("BENCH_PROFILE_SCENARIO", "users_me")
        print(f"py-spy, {which}, event-loop thread ({profile['samples']} samples):")
        print("  self:      " + "; ".join(f"{f} {pct}%" for f, pct in profile["self_pct"][:8]))
        wanted = [(f, pct) for f, pct in profile["inclusive_pct"] if "authgate" in f or "jwt" in f]
        print("  inclusive: " + "; ".join(f"{f} {pct}%" for f, pct in wanted[:8]))
        print()


# -- the run ---------------------------------------------------------------------------------------


def settle(server: Server, timeout: float = 8.0) -> None:
    """Wait until the server is idle (< 10% CPU over 0.3 s): work queued by the previous
    scenario (logins still hashing after wrk stopped) must not leak into the next one."""
    pid = server.serving_pid()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ticks = cpu_ticks(pid)
        time.sleep(0.3)
        if (cpu_ticks(pid) - ticks) / CLK_TCK < 0.03:
            return


def start_servers(cfg: Config, tmp: Path, database_url: str, servers: list[Server]) -> None:
    env = authgate_env(tmp, database_url, 0, cfg.extra_env)
    migrate = [sys.executable, "-m", "authgate", "migrate"]
    subprocess.run(migrate, env=env, cwd=tmp, check=True, capture_output=True)
    servers.append(start_app(cfg, tmp, database_url))
    bare_port = free_port()
    flags = ["--host", "127.0.0.1", "--workers", "1", "--port", str(bare_port)]
    bare = [sys.executable, "-m", "bench.bare_app", *flags]
    servers.append(start_server("bare", bare, env, bare_port, tmp))


def start_worker(cfg: Config, tmp: Path, database_url: str, public_port: int) -> Server:
    """``authgate worker`` at nice 10 on the server's database (``BENCH_DELIVERY=worker``)."""
    env = authgate_env(tmp, database_url, public_port, cfg.extra_env)
    env["AUTHGATE_EMAIL_DISPATCHER_ENABLED"] = "true"
    argv = ["nice", "-n", "10", sys.executable, "-m", "authgate", "worker"]
    return start_server("authgate-worker", argv, env, 0, tmp, listens=False)


def start_app(
    cfg: Config,
    tmp: Path,
    database_url: str,
    workers: int = 1,
    name: str = "authgate",
    public_port: int | None = None,
) -> Server:
    """``authgate serve`` on a free port with ``workers`` worker processes; ``public_port``: the
    port of the public URL (the tokens' issuer) when it is another server's."""
    port = free_port()
    env = authgate_env(tmp, database_url, public_port or port, cfg.extra_env)
    flags = ["--host", "127.0.0.1", "--workers", str(workers), "--port", str(port)]
    serve = [sys.executable, "-m", "authgate", "serve", *flags]
    server = start_server(name, serve, env, port, tmp)
    server.workers = workers
    return server


class WebhookReceiver:
    """The bench's webhook endpoints: a threaded HTTP server on loopback answering 204 to every
    POST (it does not verify signatures: that is the tests' job) and counting them. It keeps
    connections alive (HTTP/1.1), as a product's backend does: a receiver that closes each one
    costs the dispatcher a new connection per event (``bench.inprocess webhooks
    --receiver-close``)."""

    def __init__(self) -> None:
        import http.server

        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.received += 1
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.lock = threading.Lock()
        self.received = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True  # a kept-alive connection does not hold up close()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def settings(self, endpoints: int) -> str:
        import base64

        port = self.server.server_address[1]
        secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        return json.dumps(
            [
                {"url": f"http://127.0.0.1:{port}/hook/{n}", "secret": secret}
                for n in range(endpoints)
            ]
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_suite(cfg: Config, wrk: str, tmp: Path, database_url: str) -> dict[str, Any]:
    servers: list[Server] = []
    receiver = WebhookReceiver() if cfg.webhook_endpoints else None
    if receiver is not None:
        cfg.extra_env["AUTHGATE_WEBHOOKS"] = receiver.settings(cfg.webhook_endpoints)
    if cfg.delivery not in {"serve", "worker"}:
        raise SystemExit(f"BENCH_DELIVERY must be serve or worker, not {cfg.delivery!r}")
    if cfg.delivery == "worker":
        cfg.extra_env["AUTHGATE_EMAIL_DISPATCHER_ENABLED"] = "false"
    results: dict[str, dict[str, Any]] = {}
    profile: dict[str, Any] | None = None
    parallel_rate = 0.0
    storm_probe: dict[str, Any] | None = None
    rss_storm: float | None = None
    try:
        start_servers(cfg, tmp, database_url, servers)
        app, bare = servers
        if cfg.delivery == "worker":
            servers.append(start_worker(cfg, tmp, database_url, app.port))
        print(f"bench: authgate pid {app.serving_pid()}, bare pid {bare.serving_pid()}", flush=True)

        hash_timings = argon2_hash_timings()
        emails = seed.seed(app.url, database_url, cfg.users)
        chains = 2 * cfg.connections
        pairs = asyncio.run(seed.login_pairs(app.url, emails, 1 + 2 * chains))
        tokens_file = tmp / "refresh_tokens.txt"
        tokens = [str(p["refresh_token"]) for p in pairs[1:]]
        tokens_file.write_text("\n".join(tokens[:chains]) + "\n")
        mfa_file = tmp / "mfa_challenges.txt"
        cookie_tokens_file = tmp / "refresh_cookie_tokens.txt"
        cookie_tokens_file.write_text("\n".join(tokens[chains:]) + "\n")
        settle(app)
        rss_idle = rss_mb(app.serving_pid())
        idle_probe = probe_health(app.url, cfg.probe_rate, 2.0)

        logins = {"BENCH_PASSWORD": seed.PASSWORD, "BENCH_USERS": ",".join(emails)}
        registers = {"BENCH_PASSWORD": seed.PASSWORD, "BENCH_RUN_ID": str(os.getpid())}
        bearer = {"BENCH_ACCESS_TOKEN": str(pairs[0]["access_token"])}
        introspection = {
            "BENCH_ACCESS_TOKEN": str(pairs[0]["access_token"]),
            "BENCH_AUTHORIZATION": "Basic "
            + base64.b64encode(INTROSPECTION_CLIENT.encode()).decode(),
        }
        passkey_file = tmp / "passkey_assertions.txt"
        c = cfg.connections
        scenarios = [
            (bare, Scenario("bare", "/", "get.lua", c)),
            (app, Scenario("health_live", "/health/live", "get.lua", c)),
            (app, Scenario("users_me", f"{API}/users/me", "get.lua", c, bearer)),
            (None, Scenario("users_me_2w", f"{API}/users/me", "get.lua", c, bearer)),
            (
                app,
                Scenario(
                    "refresh",
                    f"{API}/auth/refresh",
                    "refresh.lua",
                    c,
                    {"BENCH_TOKENS_FILE": str(tokens_file)},
                ),
            ),
            (
                app,
                Scenario(
                    "refresh_cookie",
                    f"{API}/auth/refresh",
                    "refresh_cookie.lua",
                    c,
                    {"BENCH_TOKENS_FILE": str(cookie_tokens_file), "BENCH_ORIGIN": app.url},
                ),
            ),
            (
                app,
                Scenario(
                    "introspect", f"{API}/auth/introspect", "introspect.lua", c, introspection
                ),
            ),
            (
                app,
                Scenario(
                    "mfa_verify",
                    f"{API}/auth/mfa/verify",
                    "bodies.lua",
                    c,
                    {"BENCH_BODIES_FILE": str(mfa_file)},
                ),
            ),
            (
                app,
                Scenario(
                    "passkey_verify",
                    f"{API}/auth/passkey/verify",
                    "bodies.lua",
                    c,
                    {"BENCH_BODIES_FILE": str(passkey_file)},
                ),
            ),
            (app, Scenario("login", f"{API}/auth/login", "login.lua", 16, logins)),
            (app, Scenario("register", f"{API}/auth/register", "register.lua", 16, registers)),
        ]
        for target, scenario in scenarios:
            if cfg.only is not None and scenario.name not in cfg.only:
                continue
            if target is None:
                # authgate with two workers, alive for this scenario only: the same database,
                # keys and issuer as the one-worker server, so its tokens are valid there.
                target = start_app(
                    cfg, tmp, database_url, workers=2, name="authgate-2w", public_port=app.port
                )
                servers.append(target)
            server = target
            settle(server)
            if scenario.name == "mfa_verify":
                # One user per request (a code counts once per account); codes live 30-60 s.
                env = authgate_env(tmp, database_url, app.port, cfg.extra_env)
                pairs_mfa = asyncio.run(seed.mfa_challenges(env, cfg.mfa_challenges))
                mfa_file.write_text(
                    "".join(
                        json.dumps({"mfa_token": t, "method": "totp", "code": code}) + "\n"
                        for t, code in pairs_mfa
                    )
                )
                settle(server)
            if scenario.name == "passkey_verify":
                # One sign-in flow per request: options fetched and signed ahead (challenges
                # live AUTHGATE_WEBAUTHN_CHALLENGE_TTL, 300 s).
                bodies = asyncio.run(
                    seed.passkey_assertions(
                        app.url, str(pairs[0]["access_token"]), cfg.passkey_assertions
                    )
                )
                passkey_file.write_text("".join(json.dumps(b) + "\n" for b in bodies))
                settle(server)
            if scenario.name == "login":
                # The machine's speed drifts (shared hosts): time the hash next to the logins.
                hash_timings += argon2_hash_timings()
            if scenario.script == "get.lua":  # cheap to warm up: statement caches, imports
                run_wrk(wrk, cfg, server, scenario, duration=1)
            print(f"bench: {scenario.name} ...", flush=True)
            out = RESULTS / f"{scenario.name}-{cfg.db}.pyspy.txt"
            spy = None
            if scenario.name == os.environ.get("BENCH_PROFILE_SCENARIO", "users_me"):
                RESULTS.mkdir(parents=True, exist_ok=True)
                spy = start_profiler(server.serving_pid(), cfg.duration - 1, out)
            results[scenario.name] = run_wrk(wrk, cfg, server, scenario)
            if scenario.name == "login":
                settle(server)
                hash_timings += argon2_hash_timings()
                parallel_rate = argon2_parallel_rate(os.cpu_count() or 1)
            if spy is not None and spy.wait(30) == 0:
                profile = profile_summary(out)
                results[scenario.name]["profiled"] = True
            if server is not app and server is not bare:
                stop(server.process)

        settle(app)
        if cfg.only is None or "login_storm" in cfg.only:
            print("bench: login storm + health probe ...", flush=True)
            storm = Scenario(
                "login_storm", f"{API}/auth/login", "login.lua", cfg.storm_connections, logins
            )
            results["login_storm"], storm_probe, rss_storm = login_storm(wrk, cfg, app, storm)
            settle(app)
    finally:
        for server in reversed(servers):
            stop(server.process)
        if receiver is not None:
            receiver.close()
        RESULTS.mkdir(parents=True, exist_ok=True)
        for server in servers:
            kept = RESULTS / f"{server.name}-{cfg.db}.log"
            shutil.copyfile(server.log, kept)
            text = kept.read_text(errors="replace")
            errors = sum("Traceback" in line or " ERROR " in line for line in text.splitlines())
            if errors:
                print(f"bench: {server.name} logged {errors} error lines, see {kept}")

    cores = os.cpu_count() or 1
    derived = derive(results, hash_timings, parallel_rate, storm_probe, rss_storm, cores)
    return {
        "scenarios": results,
        "health_probe": {
            "idle": probe_summary(idle_probe),
            "login_storm": storm_probe,
        },
        "rss_idle_mb": round(rss_idle, 1),
        "webhook_endpoints": cfg.webhook_endpoints,
        "webhook_deliveries": receiver.received if receiver is not None else 0,
        "derived": derived,
        "targets": verdicts(derived),
        "profile_users_me": profile,
    }


def main() -> int:
    cfg = Config()
    wrk = ensure_wrk()
    started = time.monotonic()
    report: dict[str, Any] = {
        "db": cfg.db,
        "duration_s": cfg.duration,
        "config": cfg.__dict__,
        "machine": machine_info(),
        "authgate_overrides": {
            k: v for k, v in authgate_overrides().items() if "SECRET" not in k and "KEY" not in k
        },
    }
    tmp = Path(tempfile.mkdtemp(prefix="authgate-bench-"))
    print(f"bench: db={cfg.db} duration={cfg.duration}s workdir={tmp}", flush=True)
    with database(cfg, tmp) as database_url:
        report.update(run_suite(cfg, wrk, tmp, database_url))
    report["wall_s"] = round(time.monotonic() - started, 1)
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    print_table(report)
    payload = json.dumps(report, indent=2, default=str) + "\n"
    (RESULTS / "latest.json").write_text(payload)
    (RESULTS / f"latest-{cfg.db}.json").write_text(payload)
    print(f"results: {RESULTS / 'latest.json'} (wall {report['wall_s']} s)")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
