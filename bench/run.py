"""The benchmark suite: ``make bench`` (``python -m bench.run``).

Starts authgate (``authgate serve --workers 1``) and a bare FastAPI app the same way, on free
loopback ports, against a throwaway database (SQLite file by default, ``BENCH_DB=postgres`` for a
throwaway PostgreSQL), drives them with wrk and prints one table plus
``bench/results/latest.json``. See docs/performance.md for how to read it.

Environment: ``BENCH_DB`` (sqlite|postgres), ``BENCH_DURATION`` (seconds per scenario, 8),
``BENCH_WRK_THREADS`` (1), ``BENCH_CONNECTIONS`` (32), ``BENCH_STORM_CONNECTIONS`` (64),
``BENCH_USERS`` (4), ``BENCH_PROBE_RATE`` (requests/s of the health probe, 20).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
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
    ("refresh_rps", ">=", 300.0, "refresh rps (target set for PostgreSQL)"),
    ("health_p99_storm_ms", "<=", 25.0, "health p99 during login storm (ms)"),
    ("rss_storm_mb", "<", 300.0, "worker RSS under login storm (MB)"),
    ("errors_total", "<=", 0.0, "non-2xx + socket errors, all scenarios"),
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
    probe_rate: float = field(
        default_factory=lambda: float(os.environ.get("BENCH_PROBE_RATE", "20"))
    )


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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serving_pid(self) -> int:
        """The process that serves requests: uvicorn with one worker serves in-process; with
        more it forks, then the first child python process is the one that serves."""
        children = descendants(self.process.pid)
        return children[0] if children else self.process.pid


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


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_server(name: str, argv: list[str], env: dict[str, str], port: int, tmp: Path) -> Server:
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


def authgate_env(tmp: Path, database_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env.update(
        AUTHGATE_ENV="development",
        AUTHGATE_DATABASE_URL=database_url,
        AUTHGATE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        AUTHGATE_KEYS_DIR=str(tmp / "keys"),
        AUTHGATE_RATE_LIMITS_ENABLED="false",
        AUTHGATE_EMAIL_BACKEND="console",
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
    pid = server.serving_pid()
    ticks, started = cpu_ticks(pid), time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 60)
    wall = time.monotonic() - started
    cpu = (cpu_ticks(pid) - ticks) / CLK_TCK / wall * 100
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
        "server_rss_mb": round(rss_mb(pid), 1),
    }


def probe_health(url: str, rate: float, seconds: float) -> list[float]:
    """Latencies (ms) of GET /health/live at ``rate`` per second on one keep-alive connection."""
    latencies: list[float] = []
    interval = 1 / rate
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=10) as client:
        next_at = time.monotonic()
        while next_at < deadline:
            with contextlib.suppress(httpx.HTTPError):
                started = time.perf_counter()
                response = client.get("/health/live")
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code == 200:
                    latencies.append(elapsed)
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    return latencies


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def probe_summary(latencies: list[float], expected: int) -> dict[str, Any]:
    return {
        "samples": len(latencies),
        "expected": expected,
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
    probe: list[float] = []
    stop_sampling = threading.Event()
    settle = min(1.5, cfg.duration / 4)
    probe_seconds = max(1.0, cfg.duration - settle - 0.5)

    def sample_rss() -> None:
        while not stop_sampling.wait(0.2):
            with contextlib.suppress(OSError):
                peak[0] = max(peak[0], rss_mb(pid))

    def run_probe() -> None:
        time.sleep(settle)  # let the storm fill the hashing queue first
        probe.extend(probe_health(server.url, cfg.probe_rate, probe_seconds))

    threads = [threading.Thread(target=sample_rss), threading.Thread(target=run_probe)]
    for thread in threads:
        thread.start()
    try:
        figures = run_wrk(wrk, cfg, server, scenario)
    finally:
        stop_sampling.set()
        for thread in threads:
            thread.join()
    return figures, probe_summary(probe, int(probe_seconds * cfg.probe_rate)), peak[0]


def argon2_hash_seconds(rounds: int = 9) -> float:
    """Median wall time of one ``PasswordService.hash`` with the default settings."""
    from authgate.config import Settings
    from authgate.core.security.passwords import PasswordService

    async def measure() -> float:
        service = PasswordService(Settings(_env_file=None))  # type: ignore[call-arg]
        try:
            await service.hash(seed.PASSWORD)  # warm the pool thread
            timings = []
            for _ in range(rounds):
                started = time.perf_counter()
                await service.hash(seed.PASSWORD)
                timings.append(time.perf_counter() - started)
            return statistics.median(timings)
        finally:
            await service.close()

    return asyncio.run(measure())


# -- reporting -------------------------------------------------------------------------------------


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
    hash_s: float,
    probe: dict[str, Any],
    rss_storm: float,
    cores: int,
) -> dict[str, Any]:
    ideal_login = cores / hash_s
    return {
        "argon2_hash_ms": round(hash_s * 1000, 1),
        "ideal_login_rps": round(ideal_login, 1),
        "login_efficiency": round(results["login"]["rps"] / ideal_login, 3),
        "me_vs_bare": round(results["users_me"]["rps"] / results["bare"]["rps"], 3),
        "refresh_rps": results["refresh"]["rps"],
        "health_p50_storm_ms": probe["p50_ms"],
        "health_p99_storm_ms": probe["p99_ms"],
        "rss_storm_mb": round(rss_storm, 1),
        "errors_total": sum(r["non_2xx"] + r["socket_errors"] for r in results.values()),
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
    ]


def print_table(report: dict[str, Any]) -> None:
    head = (
        f"{'scenario':<12} {'conn':>4} {'rps':>9} {'p50 ms':>8} {'p99 ms':>8} {'non2xx':>7} "
        f"{'sockerr':>7} {'cpu %':>6} {'rss MB':>7}"
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
            f"{row['scenario']:<12} {row['connections']:>4} {row['rps']:>9.1f} "
            f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['non_2xx']:>7} "
            f"{row['socket_errors']:>7} {row['server_cpu_pct']:>6.0f} {row['server_rss_mb']:>7.1f}"
        )
    for name, probe in report["health_probe"].items():
        print(
            f"health probe ({name}): p50 {probe['p50_ms']} ms, p99 {probe['p99_ms']} ms, "
            f"max {probe['max_ms']} ms, {probe['samples']}/{probe['expected']} samples"
        )
    derived = report["derived"]
    print(
        f"ratios (no target): login rps / (cores / hash time) = {derived['login_efficiency']}; "
        f"/users/me rps / bare rps = {derived['me_vs_bare']}"
    )
    print(
        f"argon2 hash {derived['argon2_hash_ms']} ms -> ideal login "
        f"{derived['ideal_login_rps']} rps on {report['machine']['cores']} cores; "
        f"worker RSS idle {report['rss_idle_mb']} MB, storm peak {derived['rss_storm_mb']} MB"
    )
    print()
    for verdict in report["targets"]:
        mark = "PASS" if verdict["pass"] else "MISS"
        print(
            f"  {mark}  {verdict['label']:<42} {verdict['value']!s:>9}  (want {verdict['wanted']})"
        )
    print()


# -- the run ---------------------------------------------------------------------------------------


def main() -> int:
    cfg = Config()
    wrk = ensure_wrk()
    machine = machine_info()
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="authgate-bench-"))
    servers: list[Server] = []
    print(f"bench: db={cfg.db} duration={cfg.duration}s workdir={tmp}", flush=True)
    try:
        with database(cfg, tmp) as database_url:
            port, bare_port = free_port(), free_port()
            env = authgate_env(tmp, database_url, port)
            subprocess.run(
                [sys.executable, "-m", "authgate", "migrate"],
                env=env,
                cwd=tmp,
                check=True,
                capture_output=True,
            )
            python = [sys.executable, "-m"]
            servers.append(
                start_server(
                    "authgate",
                    [
                        *python,
                        "authgate",
                        "serve",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--workers",
                        "1",
                    ],
                    env,
                    port,
                    tmp,
                )
            )
            servers.append(
                start_server(
                    "bare",
                    [
                        *python,
                        "bench.bare_app",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(bare_port),
                        "--workers",
                        "1",
                    ],
                    env,
                    bare_port,
                    tmp,
                )
            )
            app, bare = servers
            print(
                f"bench: authgate pid {app.serving_pid()}, bare pid {bare.serving_pid()}",
                flush=True,
            )

            hash_s = argon2_hash_seconds()
            emails = seed.seed(app.url, database_url, cfg.users)
            pairs = asyncio.run(seed.login_pairs(app.url, emails, 1 + 2 * cfg.connections))
            access = str(pairs[0]["access_token"])
            tokens_file = tmp / "refresh_tokens.txt"
            tokens_file.write_text("\n".join(str(p["refresh_token"]) for p in pairs[1:]) + "\n")
            rss_idle = rss_mb(app.serving_pid())
            idle_probe = probe_health(app.url, cfg.probe_rate, 2.0)

            password = {"BENCH_PASSWORD": seed.PASSWORD}
            scenarios = [
                (bare, Scenario("bare", "/", "get.lua", cfg.connections)),
                (
                    app,
                    Scenario(
                        "users_me",
                        f"{API}/users/me",
                        "get.lua",
                        cfg.connections,
                        {"BENCH_ACCESS_TOKEN": access},
                    ),
                ),
                (
                    app,
                    Scenario(
                        "refresh",
                        f"{API}/auth/refresh",
                        "refresh.lua",
                        cfg.connections,
                        {"BENCH_TOKENS_FILE": str(tokens_file)},
                    ),
                ),
                (
                    app,
                    Scenario(
                        "login",
                        f"{API}/auth/login",
                        "login.lua",
                        16,
                        {**password, "BENCH_USERS": ",".join(emails)},
                    ),
                ),
                (
                    app,
                    Scenario(
                        "register",
                        f"{API}/auth/register",
                        "register.lua",
                        16,
                        {**password, "BENCH_RUN_ID": str(os.getpid())},
                    ),
                ),
            ]
            results: dict[str, dict[str, Any]] = {}
            for server, scenario in scenarios:
                if scenario.script == "get.lua":  # cheap to warm up: statement caches, imports
                    run_wrk(wrk, cfg, server, scenario, duration=1)
                print(f"bench: {scenario.name} ...", flush=True)
                results[scenario.name] = run_wrk(wrk, cfg, server, scenario)

            print("bench: login storm + health probe ...", flush=True)
            storm = Scenario(
                "login_storm",
                f"{API}/auth/login",
                "login.lua",
                cfg.storm_connections,
                {**password, "BENCH_USERS": ",".join(emails)},
            )
            results["login_storm"], storm_probe, rss_storm = login_storm(wrk, cfg, app, storm)

            derived = derive(results, hash_s, storm_probe, rss_storm, machine["cores"] or 1)
            report = {
                "db": cfg.db,
                "duration_s": cfg.duration,
                "config": cfg.__dict__,
                "machine": machine,
                "scenarios": results,
                "health_probe": {
                    "idle": probe_summary(idle_probe, int(2.0 * cfg.probe_rate)),
                    "login_storm": storm_probe,
                },
                "rss_idle_mb": round(rss_idle, 1),
                "derived": derived,
                "targets": verdicts(derived),
                "wall_s": round(time.monotonic() - started, 1),
            }
    finally:
        for server in reversed(servers):
            stop(server.process)
        for server in servers:
            crashed = [
                ln
                for ln in server.log.read_text(errors="replace").splitlines()
                if "Traceback" in ln or " ERROR " in ln
            ]
            if crashed:
                print(f"bench: {server.name} logged {len(crashed)} error lines, see {server.log}")
    print_table(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(report, indent=2, default=str) + "\n"
    (RESULTS / "latest.json").write_text(payload)
    (RESULTS / f"latest-{cfg.db}.json").write_text(payload)
    print(f"results: {RESULTS / 'latest.json'} (wall {report['wall_s']} s)")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
