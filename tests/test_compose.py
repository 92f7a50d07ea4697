"""The container deployment (docker-compose.yml, Dockerfile, .env.example), checked without Docker.

There is no container engine where the suite runs, so these tests check what can be checked
without one:

* the files themselves: services, dependencies, volumes, that every ``AUTHGATE_*`` variable
  is a real setting and that every secret comes from the operator;
* the configuration compose hands the containers: the ``environment`` of docker-compose.yml,
  interpolated the way compose does it with values made by the ``generate:`` commands of
  .env.example, passes ``Settings.production_problems()``;
* the containers' commands, run as processes on this machine with that environment: the
  ``init`` script through ``/bin/sh`` and two ``app`` replicas as the Dockerfile's
  ENTRYPOINT + CMD, against real PostgreSQL, Redis and the SES stand-in (moto), with the
  service hostnames swapped for their loopback ports.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
import yaml

from authgate.cli import build_parser
from authgate.config import Settings
from authgate.core.security.crypto import parse_key_ring
from tests.support.flows import TEST_PASSWORD
from tests.support.servers import PostgresServer, free_port, moto_server, redis_server

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"
#: Where `authgate` and `python` come from, as /app/.venv/bin does in the image.
VENV_BIN = Path(sys.executable).parent

#: What compose must refuse to start without (``${VAR:?message}``).
REQUIRED = (
    "POSTGRES_PASSWORD",
    "AUTHGATE_SECRET_KEY",
    "AUTHGATE_ENCRYPTION_KEYS",
    "AUTHGATE_PUBLIC_URL",
    "AUTHGATE_FRONTEND_URL",
    "AUTHGATE_EMAIL_FROM",
    "AUTHGATE_SES_ENDPOINT_URL",
)
#: Secrets: empty in .env.example, made by its ``generate:`` commands.
SECRETS = ("POSTGRES_PASSWORD", "AUTHGATE_SECRET_KEY", "AUTHGATE_ENCRYPTION_KEYS")
#: What an operator writes into .env for the rest (the SES stand-in stays as in the example).
OPERATOR_VALUES = {
    "AUTHGATE_PUBLIC_URL": "https://auth.example.test",
    "AUTHGATE_FRONTEND_URL": "https://app.example.test",
    "AUTHGATE_EMAIL_FROM": "authgate <no-reply@example.test>",
}
#: Environment names whose values are secret: never a literal in docker-compose.yml.
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY|_KEYS?$|CLIENTS|PROVIDERS")
SETTING_NAMES = {f"AUTHGATE_{name.upper()}" for name in Settings.model_fields}


# -- compose interpolation ---------------------------------------------------------------------

_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<invalid>))"
)


class MissingVariable(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def interpolate(value: Any, variables: Mapping[str, str]) -> Any:
    """What compose makes of ``value``: ``$$`` is ``$``; ``${VAR}``, ``${VAR:-default}``,
    ``${VAR-default}``, ``${VAR:?message}``, ``${VAR?message}``; ``:`` also treats an empty
    value as unset. Nested references and a stray ``$`` are refused (docker-compose.yml uses none)."""
    if isinstance(value, dict):
        return {key: interpolate(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("invalid") is not None:
            raise ValueError(f"stray $ in {value!r}")
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        if "$" in arg:
            raise ValueError(f"nested interpolation in {value!r}")
        current = variables.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":?", "?"):
            if unset:
                raise MissingVariable(name, arg)
            return str(current)
        if op in (":-", "-"):
            return arg if unset else str(current)
        return current or ""

    return _REFERENCE.sub(substitute, value)


def references(text: str) -> list[tuple[str, str | None]]:
    """``(name, operator)`` of every reference in ``text`` (escaped ``$$`` skipped)."""
    found = []
    for match in _REFERENCE.finditer(text):
        name = match.group("name") or match.group("bare")
        if name:
            found.append((name, match.group("op")))
    return found


# -- the files ---------------------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile_exec(keyword: str) -> list[str]:
    (arguments,) = [rest for kw, rest in dockerfile() if kw == keyword]
    if keyword == "HEALTHCHECK":
        arguments = arguments.split(" CMD ", 1)[1]
    argv = json.loads(arguments)
    assert isinstance(argv, list), f"{keyword} is not in exec form"
    return [str(item) for item in argv]


def container_argv(service: Mapping[str, Any]) -> list[str]:
    """What the container runs: compose's entrypoint/command over the image's (a compose
    entrypoint drops the image's CMD)."""

    def as_list(value: Any) -> list[str]:
        return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]

    entrypoint = as_list(service.get("entrypoint", dockerfile_exec("ENTRYPOINT")))
    default = [] if "entrypoint" in service else dockerfile_exec("CMD")
    return entrypoint + as_list(service.get("command", default))


def env_example() -> tuple[dict[str, str], set[str], dict[str, str]]:
    """(uncommented ``NAME=value`` lines, names in commented ``# NAME=`` lines, the
    ``# generate:`` command for a name)."""
    values: dict[str, str] = {}
    commented: set[str] = set()
    generators: dict[str, str] = {}
    pending: str | None = None
    for raw in ENV_EXAMPLE.read_text().splitlines():
        line = raw.strip()
        if match := re.fullmatch(r"#\s*generate:\s*(.+)", line):
            pending = match.group(1)
        elif match := re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=.*", line):
            commented.add(match.group(1))
        elif match := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line):
            values[match.group(1)] = match.group(2)
            if pending is not None:
                generators[match.group(1)] = pending
            pending = None
        elif not line:
            pending = None
    return values, commented, generators


def run_generator(command: str) -> str:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        ["/bin/sh", "-c", command], capture_output=True, text=True, env=env, timeout=30, check=False
    )
    assert result.returncode == 0, (command, result.stderr)
    return result.stdout.strip()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def operator_env() -> dict[str, str]:
    """The operator's .env: .env.example with each secret generated as its comment says."""
    values, _, generators = env_example()
    env = dict(values)
    for name in SECRETS:
        env[name] = run_generator(generators[name])
    env.update(OPERATOR_VALUES)
    return env


# -- static checks -----------------------------------------------------------------------------


def test_services_and_their_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "ses", "init", "app"} <= set(services)

    assert services["postgres"]["image"] == "postgres:15"
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["redis"]["image"] == "redis:7"
    assert "ping" in services["redis"]["healthcheck"]["test"]
    # The stand-in is the moto release the test suite's SES tests run against.
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (moto,) = [p["version"] for p in lock["package"] if p["name"] == "moto"]
    assert services["ses"]["image"] == f"motoserver/moto:{moto}"

    init, app = services["init"], services["app"]
    assert init["build"] == app["build"] == "."
    assert init["image"] == app["image"]
    assert init["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert init["restart"] == "no"
    assert app["depends_on"] == {
        "init": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    # Nothing waits for the stand-in: with real SES it can be ignored.
    for service in services.values():
        assert "ses" not in service.get("depends_on", {})
    assert app["restart"] == "unless-stopped"
    assert "command" not in app  # the image's `serve`


def test_app_scales(compose: dict[str, Any]) -> None:
    app = compose["services"]["app"]
    assert "container_name" not in app
    (port,) = interpolate(app["ports"], {})
    bind, host_ports, container_port = port.rsplit(":", 2)
    assert bind == "127.0.0.1"
    first, last = (int(p) for p in host_ports.split("-"))
    assert last - first + 1 >= 3, "one host port per replica"
    (exposed,) = [rest for kw, rest in dockerfile() if kw == "EXPOSE"]
    assert container_port == exposed == "8000"
    assert "--port" in dockerfile_exec("CMD")
    assert dockerfile_exec("CMD")[dockerfile_exec("CMD").index("--port") + 1] == "8000"


def test_keys_live_in_a_shared_volume(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("init", "app"):
        keys_dir = services[name]["environment"]["AUTHGATE_SIGNING_KEYS_DIR"]
        assert f"keys:{keys_dir}" in services[name]["volumes"], name
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert {"keys", "postgres-data"} <= set(compose["volumes"])
    # The image makes that directory for its non-root user (a fresh volume inherits it).
    run = " ".join(rest for kw, rest in dockerfile() if kw == "RUN")
    assert "-o authgate -g authgate -m 0700" in run
    assert services["app"]["environment"]["AUTHGATE_SIGNING_KEYS_DIR"] in run


def test_environment_names_are_settings(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: environment as a mapping"
        unknown = {k for k in environment if k.startswith("AUTHGATE_")} - SETTING_NAMES
        assert not unknown, f"{name}: not settings: {sorted(unknown)}"


def test_secrets_come_from_the_operator(
    compose: dict[str, Any], operator_env: dict[str, str]
) -> None:
    text = COMPOSE_FILE.read_text()
    for name in REQUIRED:
        assert (name, ":?") in references(text), name
        for missing in (
            {k: v for k, v in operator_env.items() if k != name},
            {**operator_env, name: ""},
        ):
            with pytest.raises(MissingVariable) as caught:
                interpolate(compose, missing)
            assert caught.value.name == name

    for service_name, service in compose["services"].items():
        for key, raw in service.get("environment", {}).items():
            if SECRET_NAME.search(key):
                # Only a reference, and no default but an empty one.
                match = re.fullmatch(r"\$\{(\w+)(:\?[^}]*|:-)?\}", str(raw))
                assert match, f"{service_name}: {key} = {raw!r} holds a literal"
    database_url = compose["services"]["app"]["environment"]["AUTHGATE_DATABASE_URL"]
    assert ":${POSTGRES_PASSWORD:?" in database_url
    postgres_password = compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert postgres_password.startswith("${POSTGRES_PASSWORD:?")


def test_env_example_documents_every_variable() -> None:
    values, commented, generators = env_example()
    used = {name for name, _ in references(COMPOSE_FILE.read_text())}
    for name in REQUIRED:
        assert name in values, f"{name} missing from .env.example"
    for name in SECRETS:
        assert values[name] == "", f".env.example holds a value for the secret {name}"
        assert name in generators, f"no generate: command for {name}"
    assert used == set(values) | commented, "docker-compose.yml and .env.example disagree"


def test_generated_secrets_are_valid(operator_env: dict[str, str]) -> None:
    assert len(operator_env["AUTHGATE_SECRET_KEY"].encode()) >= 32
    assert len(parse_key_ring(operator_env["AUTHGATE_ENCRYPTION_KEYS"])) == 1
    assert re.fullmatch(r"[A-Za-z0-9_-]{32,}", operator_env["POSTGRES_PASSWORD"])
    # A fresh run makes fresh secrets.
    _, _, generators = env_example()
    assert run_generator(generators["AUTHGATE_SECRET_KEY"]) != operator_env["AUTHGATE_SECRET_KEY"]


def test_dockerfile() -> None:
    instructions = dockerfile()
    keywords = [kw for kw, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")

    def position(keyword: str, fragment: str) -> int:
        (index,) = [
            i for i, (kw, rest) in enumerate(instructions) if kw == keyword and fragment in rest
        ]
        return index

    assert re.search(
        r'pip install "uv>=[\d.]+,<[\d.]+"', instructions[position("RUN", "pip install")][1]
    )
    deps = position("RUN", "uv sync --frozen --no-dev --no-install-project")
    assert position("COPY", "pyproject.toml uv.lock") < deps < position("COPY", "src")
    project = [
        i
        for i, (kw, rest) in enumerate(instructions)
        if kw == "RUN" and rest == "uv sync --frozen --no-dev"
    ]
    assert project and project[0] > position("COPY", "src")
    # The migrations: `authgate migrate` in this (editable) install reads /app/alembic.
    assert position("COPY", "alembic ./alembic") < project[0]
    assert position("COPY", "alembic.ini") < project[0]
    (user,) = [rest for kw, rest in instructions if kw == "USER"]
    assert user not in ("root", "0")
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    assert dockerfile_exec("ENTRYPOINT") == ["authgate"]
    assert build_parser().parse_args(dockerfile_exec("CMD")).command == "serve"
    healthcheck = dockerfile_exec("HEALTHCHECK")
    assert healthcheck[0] == "python"
    assert "urllib" in healthcheck[-1]
    assert "/health/live" in healthcheck[-1]

    ignored = {
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "var", ".env", "node_modules", "bench/results"} <= ignored
    assert ".pytest_cache" in ignored
    assert "README.md" not in ignored  # the package's readme: the build needs it
    assert not {"alembic", "alembic/", "alembic.ini", "*.ini"} & ignored  # the migrations


def test_compose_environment_passes_the_production_check(
    compose: dict[str, Any], operator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = interpolate(compose["services"], operator_env)
    assert services["init"]["environment"] == services["app"]["environment"]
    for key in list(os.environ):
        if key.startswith("AUTHGATE_"):
            monkeypatch.delenv(key)
    for key, value in services["app"]["environment"].items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)

    assert settings.is_production
    assert settings.production_problems() == []
    assert settings.database_url.startswith("postgresql+asyncpg://authgate:")
    assert settings.database_url.endswith("@postgres:5432/authgate")
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.email_backend == "ses"
    assert settings.ses_endpoint_url == "http://ses:5000"
    assert settings.trusted_proxies == []
    assert settings.cors_allowlist == [OPERATOR_VALUES["AUTHGATE_FRONTEND_URL"]]
    assert settings.oauth_providers == []
    assert settings.introspection_clients == []


# -- the containers' commands, run for real -----------------------------------------------------


class Deployment:
    """The containers' environment and commands with hostnames swapped for real servers."""

    def __init__(
        self,
        compose: dict[str, Any],
        operator_env: dict[str, str],
        workdir: Path,
        hosts: dict[str, str],
        database: str,
    ) -> None:
        self.services = interpolate(compose["services"], operator_env)
        self.workdir = workdir
        self.hosts = hosts
        self.database = database

    def env(self, service: str) -> dict[str, str]:
        definition = self.services[service]
        environment: dict[str, str] = {}
        for key, value in definition["environment"].items():
            text = str(value)
            for host, real in self.hosts.items():
                text = text.replace(f"//{host}", f"//{real}").replace(f"@{host}", f"@{real}")
            environment[key] = text
        url = environment["AUTHGATE_DATABASE_URL"]
        environment["AUTHGATE_DATABASE_URL"] = url.rsplit("/", 1)[0] + "/" + self.database
        for volume in definition.get("volumes", []):
            name, target = volume.split(":", 1)
            path = self.workdir / "volumes" / name
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            environment = {k: str(path) if v == target else v for k, v in environment.items()}
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHGATE_", "AWS_"))}
        return {
            **base,
            "PATH": f"{VENV_BIN}{os.pathsep}{base.get('PATH', '')}",
            # The image has no AWS configuration files; neither should the processes here.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            **environment,
        }

    def run(self, service: str, argv: list[str] | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            argv or container_argv(self.services[service]),
            env=self.env(service),
            cwd=self.workdir,  # no .env here, like the image
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert result.returncode == 0, (service, result.stdout, result.stderr)
        return result

    def keys(self) -> list[list[str]]:
        """`docker compose run --rm --no-deps app keys list`."""
        listing = self.run("app", [*dockerfile_exec("ENTRYPOINT"), "keys", "list"]).stdout
        return [line.split("\t") for line in listing.splitlines() if line.strip()]


def replica_argv(service: Mapping[str, Any], port: int) -> list[str]:
    argv = container_argv(service)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    return argv


def wait_until_serving(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"replica exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"replica on {port} does not answer:\n{log.read_text()}")


@pytest.fixture
def replicas() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


async def verification_token(http: httpx.AsyncClient, moto_url: str, address: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        data = (await http.get(f"{moto_url}/moto-api/data.json")).json()
        for message in data.get("ses", {}).get("Message", []):
            if address in message["destinations"]["ToAddresses"]:
                match = re.search(r"/verify-email\?token=(agv_[A-Za-z0-9_-]+)", message["body"])
                assert match, message["body"]
                return match.group(1)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no mail to {address} reached the SES stand-in")


async def create_database(server: PostgresServer, password: str) -> str:
    """What the postgres image makes of POSTGRES_USER/POSTGRES_PASSWORD: a login role owning the
    database (a fresh one per run on the shared test server)."""
    database = f"compose_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(
        host="127.0.0.1", port=server.port, user="postgres", database="postgres"
    )
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = 'authgate'"):
            await conn.execute(f"CREATE ROLE authgate LOGIN PASSWORD '{password}'")
        await conn.execute(f'CREATE DATABASE "{database}" OWNER authgate')
    finally:
        await conn.close()
    return database


@pytest.mark.slow
async def test_init_and_replicas_run_as_compose_would(
    compose: dict[str, Any],
    operator_env: dict[str, str],
    pg_server: PostgresServer,
    replicas: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    database = await create_database(pg_server, operator_env["POSTGRES_PASSWORD"])
    with redis_server() as redis, moto_server() as ses:
        hosts = {
            "postgres:5432": f"127.0.0.1:{pg_server.port}",
            "redis:6379": f"127.0.0.1:{redis.port}",
            "ses:5000": f"127.0.0.1:{ses.port}",
        }
        deployment = Deployment(compose, operator_env, tmp_path, hosts, database)

        # init: migrations, the first signing key, the sender registered at the stand-in.
        first = deployment.run("init")
        assert "database is at the latest revision" in first.stdout
        assert "new signing key" in first.stdout
        assert "no-reply@example.test is a verified sender" in first.stdout
        keys = deployment.keys()
        assert len(keys) == 1, keys
        kid, alg, _, flag = keys[0]
        assert (alg, flag) == ("EdDSA", "current")

        # Two app replicas (`--scale app=2`), each the image's ENTRYPOINT + CMD.
        bases = []
        for index in range(2):
            port = free_port()
            log = tmp_path / f"app-{index}.log"
            with log.open("wb") as handle:
                replicas.append(
                    subprocess.Popen(
                        replica_argv(deployment.services["app"], port),
                        env=deployment.env("app"),
                        cwd=tmp_path,
                        stdout=handle,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            bases.append((port, log))
        for process, (port, log) in zip(replicas, bases, strict=True):
            wait_until_serving(process, port, log)
        a, b = (f"http://127.0.0.1:{port}" for port, _ in bases)

        async with httpx.AsyncClient(timeout=15) as http:
            for base in (a, b):
                live = await http.get(f"{base}/health/live")
                assert live.status_code == 200 and live.json() == {"status": "ok"}
                ready = await http.get(f"{base}/health/ready")
                assert ready.status_code == 200, ready.text
                assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
                jwks = (await http.get(f"{base}/.well-known/jwks.json")).json()
                assert [key["kid"] for key in jwks["keys"]] == [kid]

            # The image's HEALTHCHECK, pointed at a replica's port.
            probe = [
                arg.replace("127.0.0.1:8000", a.removeprefix("http://"))
                for arg in dockerfile_exec("HEALTHCHECK")
            ]
            assert (
                subprocess.run(probe, env=deployment.env("app"), timeout=30, check=False).returncode
                == 0
            )

            # One user across both replicas: mail through the stand-in, shared revocation.
            email = f"compose-{uuid.uuid4().hex[:8]}@example.com"
            credentials = {"email": email, "password": TEST_PASSWORD}
            registered = await http.post(f"{a}/api/v1/auth/register", json=credentials)
            assert registered.status_code == 202, registered.text
            token = await verification_token(http, f"http://{hosts['ses:5000']}", email)
            verified = await http.post(f"{b}/api/v1/auth/verify-email", json={"token": token})
            assert verified.status_code == 200, verified.text
            login = await http.post(f"{a}/api/v1/auth/login", json=credentials)
            assert login.status_code == 200, login.text
            pair = login.json()
            assert jwt.get_unverified_header(pair["access_token"])["kid"] == kid
            claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
            assert claims["iss"] == OPERATOR_VALUES["AUTHGATE_PUBLIC_URL"]
            bearer = {"Authorization": f"Bearer {pair['access_token']}"}
            me = await http.get(f"{b}/api/v1/users/me", headers=bearer)
            assert me.status_code == 200 and me.json()["email"] == email
            logout = await http.post(
                f"{b}/api/v1/auth/logout",
                json={"refresh_token": pair["refresh_token"]},
                headers=bearer,
            )
            assert logout.status_code == 204
            refused = await http.get(f"{a}/api/v1/users/me", headers=bearer)
            assert refused.status_code == 401

        # init again (every `docker compose up`): nothing new, the same single current key.
        again = deployment.run("init")
        assert "none created" in again.stdout
        assert "new signing key" not in again.stdout
        assert deployment.keys() == keys
