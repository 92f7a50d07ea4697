"""The built wheel, installed the way an operator installs it: into a fresh virtualenv, away
from this repository. ``authgate migrate`` must find the migrations inside the package
(``authgate/_migrations``, pyproject.toml ``force-include``), not in the source tree."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Every table the migrations make (and Alembic's own).
TABLES = {
    "action_tokens",
    "alembic_version",
    "audit_events",
    "auth_sessions",
    "email_outbox",
    "oauth_identities",
    "oauth_states",
    "provider_tokens",
    "refresh_tokens",
    "users",
}


def _uv() -> str:
    """The uv running this suite (``uv run`` sets ``UV``), else the one on PATH or the one
    ``make setup`` installs."""
    for candidate in (os.environ.get("UV"), shutil.which("uv"), Path.home() / ".local/bin/uv"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail("uv not found: run the suite with `make test` or `uv run pytest`")


def _env() -> dict[str, str]:
    """The caller's environment without authgate's settings or this repository's virtualenv."""
    drop = ("AUTHGATE_", "VIRTUAL_ENV", "PYTHONPATH", "UV_PROJECT_ENVIRONMENT")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _uv_run(*args: str, cwd: Path) -> None:
    """``uv <args>`` from the cache alone first (works without a network), then with the
    registry (a cold cache)."""
    offline = subprocess.run(
        [_uv(), *args, "--offline"], cwd=cwd, env=_env(), capture_output=True, text=True
    )
    if offline.returncode == 0:
        return
    online = subprocess.run([_uv(), *args], cwd=cwd, env=_env(), capture_output=True, text=True)
    assert online.returncode == 0, f"uv {' '.join(args)}:\n{offline.stderr}\n{online.stderr}"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_installed_wheel_migrates(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _uv_run("build", "--wheel", "--out-dir", str(dist), cwd=ROOT)
    (wheel,) = dist.glob("authgate-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = {n for n in names if n.startswith("authgate/_migrations/")}
    assert "authgate/_migrations/env.py" in migrations
    assert "authgate/_migrations/script.py.mako" in migrations
    assert {Path(n).name for n in migrations if n.startswith("authgate/_migrations/versions/")} == {
        p.name for p in (ROOT / "alembic" / "versions").glob("*.py")
    }
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]

    # The dependencies at the lock's versions (what the cache holds), then the wheel itself.
    requirements = tmp_path / "requirements.txt"
    subprocess.run(
        [
            _uv(),
            "export",
            "--frozen",
            "--no-dev",
            "--no-emit-project",
            "--no-hashes",
            "--quiet",
            "--output-file",
            str(requirements),
        ],
        cwd=ROOT,
        env=_env(),
        check=True,
        capture_output=True,
    )
    venv = tmp_path / "venv"
    subprocess.run(
        [_uv(), "venv", str(venv), "--python", "python3", "--quiet"],
        cwd=tmp_path,
        env={**_env(), "UV_PYTHON_DOWNLOADS": "never"},
        check=True,
        capture_output=True,
    )
    python = venv / "bin" / "python"
    _uv_run(
        "pip",
        "install",
        "--python",
        str(python),
        "--requirement",
        str(requirements),
        str(wheel),
        cwd=tmp_path,
    )

    # Run from a directory outside the repository, configured by the environment only.
    workdir = tmp_path / "run"
    workdir.mkdir()
    db_path = workdir / "data" / "authgate.db"
    env = {**_env(), "AUTHGATE_DATABASE_URL": f"sqlite+aiosqlite:///{db_path}"}
    located = subprocess.run(
        [str(python), "-c", "from authgate.core.migrate import migrations_dir as d; print(d())"],
        cwd=workdir,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert Path(located).parts[-2:] == ("authgate", "_migrations")
    assert Path(located).is_relative_to(venv)

    migrate = subprocess.run(
        [str(venv / "bin" / "authgate"), "migrate"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert migrate.returncode == 0, migrate.stderr
    connection = sqlite3.connect(db_path)
    try:
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
        tables = {row[0] for row in connection.execute(query)}
        (head,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    finally:
        connection.close()
    assert tables >= TABLES
    assert head == max(p.name.split("_", 1)[0] for p in (ROOT / "alembic/versions").glob("*.py"))
